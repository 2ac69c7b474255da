//! The WebSocket transport: the upgrade handler and the per-connection session actor.
//!
//! This is the only module that knows about actix-web-actors; rooms see sessions only as a
//! `SessionLink` (a queue, a wake flag and the client's latest report), so the transport
//! could be replaced without touching room logic.

mod fragments;
mod session;

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;

use crate::access::client_ip;
use crate::app::AppState;
use crate::error::ApiError;
use crate::ids::RoomId;

pub use session::SessionSettings;
use session::WsSession;

/// `GET /api/rooms/{room_id}/ws`: checks origin, room and per-IP limits, then upgrades.
///
/// This route has no request span (see `http::routes`), so a refusal is logged here.
pub async fn connect(
    req: HttpRequest,
    stream: web::Payload,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let result = upgrade(&req, stream, path, &state).await;
    if let Err(err) = &result {
        tracing::debug!(
            path = req.path(),
            peer = %client_ip(&req, state.config.trust_proxy),
            error = %err,
            "WebSocket upgrade refused"
        );
    }
    result
}

async fn upgrade(
    req: &HttpRequest,
    stream: web::Payload,
    path: web::Path<String>,
    state: &AppState,
) -> Result<HttpResponse, ApiError> {
    if state.is_shutting_down() {
        return Err(ApiError::ShuttingDown);
    }
    state.access.check_origin(req)?;
    let raw = path.into_inner();
    let room_id: RoomId = raw.parse().map_err(|_| ApiError::BadRoomId(raw.clone()))?;
    let room = state
        .rooms
        .get_or_load(&room_id)
        .await?
        .ok_or_else(|| ApiError::RoomNotFound(raw.clone()))?;
    let ip = client_ip(req, state.config.trust_proxy);
    state.admit(&state.connect_rate, ip, "connect_rate", || {
        format!("too many connections from {ip}; try again in a minute")
    })?;
    let slot = state.sessions_per_ip.acquire(ip).ok_or_else(|| {
        state.metrics.reject("sessions_per_ip");
        ApiError::RateLimited(format!(
            "{ip} already has {} open sessions",
            state.config.max_sessions_per_ip
        ))
    })?;
    let session = WsSession::new(
        room,
        room_id,
        SessionSettings::from_config(&state.config),
        Arc::clone(&state.metrics),
        slot,
    );
    ws::WsResponseBuilder::new(session, req, stream)
        .frame_size(state.config.max_frame_bytes)
        .start()
        .map_err(|e| ApiError::BadRequest(format!("WebSocket handshake failed: {e}")))
}
