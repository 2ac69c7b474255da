//! What every request passes before its route: the per-client connection cap and the host
//! check (a request on a connection over the cap gets 429 and the connection is closed; one
//! for a host this server does not answer to gets 403), and the security headers every
//! answer carries.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::ConnectionType;
use actix_web::{web, Error, ResponseError};

use crate::app::AppState;
use crate::error::ApiError;
use crate::limits::per_ip::SessionSlot;

/// Set on each connection when it is accepted: its place in the per-client connection count,
/// or `None` when the client already had as many connections as allowed.
pub struct ConnectionSlot(pub Option<SessionSlot>);

/// Where the app's pages may load things from. The page's own scripts and styles only; the
/// YouTube IFrame API and its player; videos from anywhere (a room may play any http(s)
/// URL), and requests to anywhere for them (hls.js fetches an HLS stream's playlist and
/// segments itself); no framing by other sites, no plugins, no base-URL games.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; \
    script-src 'self' https://www.youtube.com https://s.ytimg.com; \
    frame-src https://www.youtube.com https://www.youtube-nocookie.com; \
    img-src 'self' data: https://i.ytimg.com; \
    media-src 'self' http: https: blob:; \
    connect-src 'self' http: https:; \
    style-src 'self'; \
    object-src 'none'; \
    base-uri 'none'; \
    form-action 'self'; \
    frame-ancestors 'none'";

/// Headers on every response: the content policy, no MIME sniffing, no framing (also for
/// browsers that predate `frame-ancestors`), and referrers reduced to the origin (YouTube's
/// embed needs one; a room link should not leak through it).
const SECURITY_HEADERS: [(HeaderName, &str); 4] = [
    (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "strict-origin-when-cross-origin"),
];

/// The guard as actix middleware, wrapped around the whole app.
///
/// Its future is boxed, which costs one allocation per request. An inline future (as
/// `middleware::from_fn` and `DefaultHeaders` have) is part of every connection's task,
/// which actix sizes for the largest future it may hold: measured with heaptrack, it made
/// each connection 1.5 KiB larger for its whole life, WebSocket sessions included.
pub struct Guard;

impl<S, B> Transform<S, ServiceRequest> for Guard
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = GuardService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(GuardService {
            service: Rc::new(service),
        }))
    }
}

/// The app behind its guard.
pub struct GuardService<S> {
    /// The app.
    service: Rc<S>,
}

impl<S, B> Service<ServiceRequest> for GuardService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Error>>>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let refusal = match &state {
            Some(state) => check(&req, state),
            None => Ok(()),
        };
        // Which node answered: behind a balancer, the only way to tell from outside.
        let served_by = state.and_then(|s| HeaderValue::from_str(s.node_id()).ok());
        match refusal {
            Ok(()) => {
                let response = self.service.call(req);
                Box::pin(async move {
                    let mut response = response.await?;
                    add_headers(response.headers_mut(), served_by);
                    Ok(response.map_into_left_body())
                })
            }
            Err((err, close)) => {
                let mut response = err.error_response();
                if close {
                    response
                        .head_mut()
                        .set_connection_type(ConnectionType::Close);
                }
                add_headers(response.headers_mut(), served_by);
                Box::pin(ready(Ok(req.into_response(response).map_into_right_body())))
            }
        }
    }
}

fn add_headers(headers: &mut HeaderMap, served_by: Option<HeaderValue>) {
    for (name, value) in SECURITY_HEADERS {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    if let Some(node) = served_by {
        headers.insert(HeaderName::from_static("x-served-by"), node);
    }
}

/// The refusal, if any, and whether it also ends the connection.
fn check(req: &ServiceRequest, state: &AppState) -> Result<(), (ApiError, bool)> {
    if let Some(ConnectionSlot(None)) = req.conn_data::<ConnectionSlot>() {
        state.metrics.reject("connections_per_ip");
        return Err((
            ApiError::RateLimited(format!(
                "too many open connections from your address (at most {})",
                state.config.max_connections_per_ip
            )),
            true,
        ));
    }
    state
        .access
        .check_host(req.request())
        .map_err(|err| (err, false))
}

/// Whether a header value is a JSON media type (`application/json`, any parameters).
pub fn is_json(content_type: &HeaderValue) -> bool {
    content_type
        .to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}
