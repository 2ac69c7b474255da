//! The browser app, embedded in the binary (or served from `--frontend-dir` during
//! development).

use std::borrow::Cow;

use actix_web::http::{header, Method};
use actix_web::{web, HttpRequest, HttpResponse};
use rust_embed::RustEmbed;

use crate::app::AppState;
use crate::error::ApiError;

/// The `frontend/` directory, compiled into the binary.
#[derive(RustEmbed)]
#[folder = "frontend/"]
struct Assets;

/// `/r/{room_id}`: the room page (it validates the id itself and explains unknown rooms).
pub async fn room_page(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    file(&state, "room.html").await
}

/// Any other path: a file of the app, `/` being `index.html`.
pub async fn asset(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return Err(ApiError::MethodNotAllowed(req.method().to_string()));
    }
    let path = req.path().trim_start_matches('/');
    file(&state, if path.is_empty() { "index.html" } else { path }).await
}

async fn file(state: &AppState, path: &str) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::NotFound(format!("no page /{path}"));
    if path
        .split('/')
        .any(|seg| seg == ".." || seg.starts_with('.'))
    {
        return Err(not_found());
    }
    let body: Cow<'static, [u8]> = match &state.config.frontend_dir {
        Some(dir) => Cow::Owned(
            tokio::fs::read(dir.join(path))
                .await
                .map_err(|_| not_found())?,
        ),
        None => Assets::get(path).ok_or_else(not_found)?.data,
    };
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            mime.essence_str().to_owned() + charset(&mime),
        ))
        // The app is small and changes with the binary: revalidate rather than cache stale JS.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body.into_owned()))
}

fn charset(mime: &mime_guess::Mime) -> &'static str {
    if mime.type_() == mime_guess::mime::TEXT || mime.subtype() == mime_guess::mime::JAVASCRIPT {
        "; charset=utf-8"
    } else {
        ""
    }
}
