//! What every request passes before its route: the per-client connection cap and the host
//! check, and the security headers every answer carries.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::ConnectionType;
use actix_web::middleware::{DefaultHeaders, Next};
use actix_web::{web, Error, ResponseError};

use crate::app::AppState;
use crate::error::ApiError;
use crate::limits::per_ip::SessionSlot;

/// Set on each connection when it is accepted: its place in the per-client connection count,
/// or `None` when the client already had as many connections as allowed.
pub struct ConnectionSlot(pub Option<SessionSlot>);

/// Where the app's pages may load things from. The page's own scripts and styles only; the
/// YouTube IFrame API and its player; videos from anywhere (a room may play any http(s)
/// URL); no framing by other sites, no plugins, no base-URL games.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; \
    script-src 'self' https://www.youtube.com https://s.ytimg.com; \
    frame-src https://www.youtube.com https://www.youtube-nocookie.com; \
    img-src 'self' data: https://i.ytimg.com; \
    media-src 'self' http: https: blob:; \
    connect-src 'self'; \
    style-src 'self'; \
    object-src 'none'; \
    base-uri 'none'; \
    form-action 'self'; \
    frame-ancestors 'none'";

/// Headers on every response: the content policy, no MIME sniffing, no framing (also for
/// browsers that predate `frame-ancestors`), and referrers reduced to the origin (YouTube's
/// embed needs one; a room link should not leak through it).
pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::REFERRER_POLICY, "strict-origin-when-cross-origin"))
}

/// Refuses, before routing, a request on a connection over the per-client cap (429, and
/// the connection is closed) or for a host name this server does not answer to (403).
pub async fn admit(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let refusal = match req.app_data::<web::Data<AppState>>() {
        Some(state) => check(&req, state),
        None => Ok(()),
    };
    match refusal {
        Ok(()) => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body),
        Err((err, close)) => {
            let mut response = err.error_response();
            if close {
                response
                    .head_mut()
                    .set_connection_type(ConnectionType::Close);
            }
            Ok(req.into_response(response).map_into_right_body())
        }
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
