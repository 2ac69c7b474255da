//! `POST /api/rooms` and `GET /api/rooms/{room_id}`.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::app::AppState;
use crate::error::ApiError;
use crate::http::{client_ip, MAX_BODY_BYTES};
use crate::ids::RoomId;
use crate::protocol::{clean_room_name, ControlMode, Video};
use crate::registry::NewRoom;
use crate::room::actor::GetSummary;

/// Body of `POST /api/rooms`; every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRoom {
    /// Room name.
    #[serde(default)]
    name: Option<String>,
    /// Who may control playback.
    #[serde(default)]
    control: Option<ControlMode>,
    /// First video.
    #[serde(default)]
    video: Option<Video>,
}

pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if state.is_shutting_down() {
        return Err(ApiError::ShuttingDown);
    }
    let body = payload
        .to_bytes_limited(MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::TooLarge(MAX_BODY_BYTES))?
        .map_err(|e| ApiError::BadRequest(format!("could not read the request body: {e}")))?;
    let request: CreateRoom = if body.iter().all(u8::is_ascii_whitespace) {
        CreateRoom::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("invalid room: {e}")))?
    };
    let name =
        clean_room_name(request.name.as_deref().unwrap_or("")).map_err(ApiError::BadRequest)?;
    if let Some(video) = &request.video {
        video.validate().map_err(ApiError::BadRequest)?;
    }
    let ip = client_ip(&req, state.config.trust_proxy);
    state.admit(&state.room_rate, ip, "rooms_per_ip", || {
        format!(
            "at most {} rooms per minute from one address",
            state.config.rooms_per_ip_per_minute
        )
    })?;
    let (room_id, host_token) = state.rooms.create(
        NewRoom {
            name,
            control: request.control.unwrap_or_default(),
            video: request.video,
        },
        state.config.room_settings(),
        state.room_timing(),
        Arc::clone(&state.metrics),
    )?;
    tracing::info!(room = %room_id, %ip, "room created");
    Ok(HttpResponse::Created().json(json!({
        "room_id": room_id,
        "host_token": host_token.as_str(),
        "url": format!("/r/{room_id}"),
    })))
}

pub async fn get(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let raw = path.into_inner();
    let id: RoomId = raw.parse().map_err(|_| ApiError::BadRoomId(raw.clone()))?;
    let room = state
        .rooms
        .get(&id)
        .ok_or_else(|| ApiError::RoomNotFound(raw.clone()))?;
    let summary = room
        .send(GetSummary)
        .await
        .map_err(|_| ApiError::RoomNotFound(raw))?;
    Ok(HttpResponse::Ok().json(summary))
}
