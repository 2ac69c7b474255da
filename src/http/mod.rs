//! HTTP routes: REST API, media library, metrics and the embedded browser app.

pub mod frontend;
pub mod guard;
pub mod media;
mod rooms;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::app::AppState;
use crate::error::ApiError;
use crate::store::StoreHealth;

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
                // `{path:.+}`: an HLS folder's playlist and segments are one level down.
                .route("/media/{path:.+}", web::get().to(media::serve))
                .route("/media/{path:.+}", web::head().to(media::serve))
                .route("/api/{rest:.*}", web::route().to(api_not_found))
                .route("/r/{room_id}", web::get().to(frontend::room_page))
                .default_service(web::to(frontend::asset)),
        );
}

/// `GET /api/health`: `ok`, `degraded` (the store is failing; rooms still work from
/// memory) with the reason, or `shutting_down`.
async fn health(state: web::Data<AppState>) -> HttpResponse {
    let store = state.rooms.store();
    let (status, reason) = match store.health() {
        _ if state.is_shutting_down() => ("shutting_down", None),
        StoreHealth::Ok => ("ok", None),
        StoreHealth::Degraded { reason } => ("degraded", Some(reason)),
    };
    let mut body = json!({
        "status": status,
        "node": state.node_id(),
        "store": store.kind(),
        "rooms": state.rooms.len(),
        "sessions": state.metrics.sessions.get(),
        "version": env!("CARGO_PKG_VERSION"),
    });
    if let Some(reason) = reason {
        body["reason"] = reason.into();
    }
    HttpResponse::Ok().json(body)
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
