//! `POST /api/rooms` and `GET /api/rooms/{room_id}`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::access::client_ip;
use crate::app::AppState;
use crate::error::ApiError;
use crate::http::guard::is_json;
use crate::http::MAX_BODY_BYTES;
use crate::ids::RoomId;
use crate::protocol::{clean_room_name, ControlMode, Video};
use crate::registry::NewRoom;
use crate::room::mailbox::GetSummary;

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
    // A page of another site may not create rooms from its visitor's browser: not with a
    // script (Origin), and not with a form (forms cannot send JSON).
    state.access.check_origin(&req)?;
    let content_type = req.headers().get(header::CONTENT_TYPE);
    if content_type.is_some_and(|t| !is_json(t)) {
        return Err(ApiError::UnsupportedMediaType(
            "the body of POST /api/rooms must be JSON (Content-Type: application/json)".into(),
        ));
    }
    let timeout = state.config.body_timeout;
    let body = tokio::time::timeout(timeout, payload.to_bytes_limited(MAX_BODY_BYTES))
        .await
        .map_err(|_| ApiError::BodyTimeout(timeout.as_secs()))?
        .map_err(|_| ApiError::TooLarge(MAX_BODY_BYTES))?
        .map_err(|e| ApiError::BadRequest(format!("could not read the request body: {e}")))?;
    let request: CreateRoom = if body.iter().all(u8::is_ascii_whitespace) {
        CreateRoom::default()
    } else if content_type.is_none() {
        return Err(ApiError::UnsupportedMediaType(
            "a room with settings needs Content-Type: application/json".into(),
        ));
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("invalid room: {e}")))?
    };
    let name =
        clean_room_name(request.name.as_deref().unwrap_or("")).map_err(ApiError::BadRequest)?;
    if let Some(video) = &request.video {
        video.validate().map_err(ApiError::BadRequest)?;
        state
            .config
            .room_settings()
            .check_video(video)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    }
    let ip = client_ip(&req, state.config.trust_proxy);
    state.admit(&state.room_rate, ip, "rooms_per_ip", || {
        format!(
            "at most {} rooms per minute from one address",
            state.config.rooms_per_ip_per_minute
        )
    })?;
    let (room_id, host_token) = state
        .rooms
        .create(
            NewRoom {
                name,
                control: request.control.unwrap_or_default(),
                video: request.video,
            },
            ip,
        )
        .await?;
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
        .get_or_load(&id)
        .await?
        .ok_or_else(|| ApiError::RoomNotFound(raw.clone()))?;
    let summary = room
        .send(GetSummary)
        .await
        .map_err(|_| ApiError::RoomNotFound(raw))?;
    Ok(HttpResponse::Ok().json(summary))
}
