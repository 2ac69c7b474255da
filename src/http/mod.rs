//! HTTP routes: REST API, media library, metrics and the embedded browser app.

pub mod frontend;
pub mod media;
mod rooms;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::app::AppState;
use crate::error::ApiError;

/// Largest accepted REST request body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Registers every route.
///
/// Every request but the WebSocket upgrade gets a span (method, route, status, latency,
/// peer) from tracing-actix-web. That middleware enters its span on every poll of the
/// response body, which for a WebSocket is every frame of the session's whole life, a cost
/// paid thousands of times per broadcast in a big room; sessions log with their room and
/// connection ids instead.
pub fn routes(cfg: &mut web::ServiceConfig, state: web::Data<AppState>) {
    cfg.app_data(state)
        .route("/api/rooms/{room_id}/ws", web::get().to(crate::ws::connect))
        .service(
            web::scope("")
                .wrap(tracing_actix_web::TracingLogger::default())
                .route("/api/health", web::get().to(health))
                .route("/metrics", web::get().to(metrics))
                .route("/api/rooms", web::post().to(rooms::create))
                .route("/api/rooms/{room_id}", web::get().to(rooms::get))
                .route("/api/media", web::get().to(media::list))
                .route("/media/{name}", web::get().to(media::serve))
                .route("/api/{rest:.*}", web::route().to(api_not_found))
                .route("/r/{room_id}", web::get().to(frontend::room_page))
                .default_service(web::to(frontend::asset)),
        );
}

async fn health(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": if state.is_shutting_down() { "shutting_down" } else { "ok" },
        "rooms": state.rooms.len(),
        "sessions": state.metrics.sessions.get(),
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}

async fn api_not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no API route {} {}",
        req.method(),
        req.path()
    )))
}

/// The client's IP: the peer address, or behind a trusted proxy the last X-Forwarded-For
/// entry (the one the proxy itself appended; earlier entries are client-controlled).
///
/// The last entry is the last value of the last header line: a client may send its own
/// `X-Forwarded-For` line, and the proxy adds another or appends to it.
pub fn client_ip(req: &HttpRequest, trust_proxy: bool) -> IpAddr {
    let peer = req
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    if !trust_proxy {
        return peer;
    }
    req.headers()
        .get_all("x-forwarded-for")
        .last()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|last| parse_forwarded_ip(last.trim()))
        .unwrap_or(peer)
}

/// An address as proxies write it: `203.0.113.7`, `2001:db8::1`, or either with a port
/// (`203.0.113.7:5123`, `[2001:db8::1]:5123`).
fn parse_forwarded_ip(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            let bracketed = entry.strip_prefix('[')?.strip_suffix(']')?;
            bracketed.parse().ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_entries_parse_with_and_without_ports() {
        for (entry, ip) in [
            ("203.0.113.7", "203.0.113.7"),
            ("203.0.113.7:5123", "203.0.113.7"),
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]:5123", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
        ] {
            assert_eq!(parse_forwarded_ip(entry), ip.parse().ok(), "{entry}");
        }
        for junk in ["", "unknown", "_hidden", "203.0.113.7:x", "[203.0.113.7"] {
            assert_eq!(parse_forwarded_ip(junk), None, "{junk}");
        }
    }
}
