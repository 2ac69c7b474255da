//! Every error the server reports, mapped to its documented code and HTTP status here only:
//! REST errors ([`ApiError`]) to their status and code, and the three kinds of WebSocket
//! refusal ([`DecodeError`] for frames that do not decode, [`SessionError`] for what the
//! session refuses itself, [`RoomError`] for what the room's rules refuse) to their
//! `ErrorCode` through [`WireError`].

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::protocol::{DecodeError, ErrorCode, ServerMessage};

/// A refusal sent over the WebSocket as `error {code, message}`.
pub trait WireError: std::fmt::Display {
    /// The documented wire code.
    fn code(&self) -> ErrorCode;

    /// The `error` message telling the client.
    fn to_message(&self) -> ServerMessage {
        ServerMessage::error(self.code(), self.to_string())
    }
}

impl WireError for DecodeError {
    fn code(&self) -> ErrorCode {
        match self {
            DecodeError::BadJson(_) => ErrorCode::BadJson,
            DecodeError::UnknownType(_) => ErrorCode::UnknownType,
            DecodeError::BadMessage(_) => ErrorCode::BadMessage,
            DecodeError::InvalidName(_) => ErrorCode::InvalidName,
            DecodeError::InvalidChat(_) => ErrorCode::InvalidChat,
        }
    }
}

/// What a session refuses by itself, before any room sees the frame.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SessionError {
    /// The session's message budget is spent.
    #[error("too many messages: at most {rate} per second (bursts of {burst})")]
    RateLimited {
        /// Sustained messages per second.
        rate: f64,
        /// Burst size.
        burst: u32,
    },
    /// A room message before `join`.
    #[error("send join first: {{\"type\":\"join\",\"name\":\"...\"}}")]
    NotJoined,
    /// A second `join`.
    #[error("this connection already joined")]
    AlreadyJoined,
    /// A binary or continuation frame.
    #[error("only unfragmented text frames carry the protocol")]
    BinaryUnsupported,
    /// The room went away while the session was joining it.
    #[error("the room was closed")]
    RoomGone,
}

impl WireError for SessionError {
    fn code(&self) -> ErrorCode {
        match self {
            SessionError::RateLimited { .. } => ErrorCode::RateLimited,
            SessionError::NotJoined => ErrorCode::NotJoined,
            SessionError::AlreadyJoined => ErrorCode::AlreadyJoined,
            SessionError::BinaryUnsupported => ErrorCode::BinaryUnsupported,
            SessionError::RoomGone => ErrorCode::RoomNotFound,
        }
    }
}

/// Why a room refused a request from one of its participants (sent as `error {code}`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    /// Control by someone who may not control.
    #[error("only the host can do that in this room")]
    NotHost,
    /// The room is at its member limit.
    #[error("the room is full ({0} participants)")]
    RoomFull(usize),
    /// Bad display name.
    #[error("{0}")]
    InvalidName(String),
    /// Bad chat text.
    #[error("{0}")]
    InvalidChat(String),
    /// Chat flood control.
    #[error("you are sending chat messages too fast")]
    ChatRateLimited,
    /// The participant named in the request is not here (or not connected).
    #[error("no connected participant with id {0}")]
    NoSuchParticipant(String),
    /// The sender is no longer a member (evicted, or its membership expired).
    #[error("you are not a member of this room; join again")]
    NotMember,
    /// The video is well-formed but this server's policy refuses it.
    #[error("{0}")]
    VideoRefused(String),
    /// The queue is at its length limit.
    #[error("the queue is full ({0} items)")]
    QueueFull(usize),
    /// No queue item has that id.
    #[error("no queue item with id {0}")]
    NoSuchQueueItem(u64),
    /// `next` with nothing queued.
    #[error("the queue is empty")]
    QueueEmpty,
}

impl WireError for RoomError {
    fn code(&self) -> ErrorCode {
        match self {
            RoomError::NotHost => ErrorCode::NotHost,
            RoomError::RoomFull(_) => ErrorCode::RoomFull,
            RoomError::InvalidName(_) => ErrorCode::InvalidName,
            RoomError::InvalidChat(_) => ErrorCode::InvalidChat,
            RoomError::ChatRateLimited => ErrorCode::ChatRateLimited,
            RoomError::NoSuchParticipant(_) => ErrorCode::NotFound,
            RoomError::NotMember => ErrorCode::NotJoined,
            RoomError::VideoRefused(_) => ErrorCode::BadMessage,
            RoomError::QueueFull(_) => ErrorCode::QueueFull,
            RoomError::NoSuchQueueItem(_) => ErrorCode::NotFound,
            RoomError::QueueEmpty => ErrorCode::QueueEmpty,
        }
    }
}

/// A REST error: `{"error":{"code","message"}}` with its status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No room with that id.
    #[error("no room with id {0}")]
    RoomNotFound(String),
    /// The room id is not a UUID.
    #[error("{0:?} is not a valid room id")]
    BadRoomId(String),
    /// The request body or parameters are wrong.
    #[error("{0}")]
    BadRequest(String),
    /// The server holds as many rooms as it is allowed to.
    #[error("the server is at its room limit ({0})")]
    RoomLimit(usize),
    /// Too many requests from this client.
    #[error("{0}")]
    RateLimited(String),
    /// The request's origin is not allowed.
    #[error("origin {0:?} is not allowed")]
    OriginNotAllowed(String),
    /// The request names a host this server does not answer to.
    #[error(
        "this server does not answer to host {0:?}; its operator can allow it with --allowed-hosts"
    )]
    HostNotAllowed(String),
    /// The request body is not of a type the endpoint takes.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The request body did not arrive in time.
    #[error("the request body did not arrive within {0} s")]
    BodyTimeout(u64),
    /// No such file or route.
    #[error("{0}")]
    NotFound(String),
    /// The route exists, but not for this method.
    #[error("{0} is not allowed here")]
    MethodNotAllowed(String),
    /// The request body is over the limit.
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    /// The server is shutting down.
    #[error("the server is restarting")]
    ShuttingDown,
    /// Another node runs the room and has not handed it over yet (many-node mode).
    #[error("room is moving from node {0} to this one; try again in a moment")]
    RoomMoving(String),
    /// The room store cannot be read right now.
    #[error("rooms cannot be loaded right now: {0}")]
    StoreUnavailable(String),
    /// Something failed inside the server.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The documented code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::RoomNotFound(_) => "room_not_found",
            ApiError::BadRoomId(_) => "bad_room_id",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::RoomLimit(_) => "room_limit",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::OriginNotAllowed(_) => "origin_not_allowed",
            ApiError::HostNotAllowed(_) => "host_not_allowed",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::BodyTimeout(_) => "request_timeout",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::TooLarge(_) => "too_large",
            ApiError::ShuttingDown => "shutting_down",
            ApiError::StoreUnavailable(_) => "store_unavailable",
            ApiError::RoomMoving(_) => "room_moving",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::RoomNotFound(_) | ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRoomId(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::RoomLimit(_)
            | ApiError::ShuttingDown
            | ApiError::StoreUnavailable(_)
            | ApiError::RoomMoving(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::OriginNotAllowed(_) | ApiError::HostNotAllowed(_) => StatusCode::FORBIDDEN,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::RoomMoving(_)) {
            // The hand-over takes about a second.
            response.insert_header((actix_web::http::header::RETRY_AFTER, "1"));
        }
        response.json(json!({"error": {"code": self.code(), "message": self.to_string()}}))
    }
}
