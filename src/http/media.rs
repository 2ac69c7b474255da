//! The media library: files of one directory, listed at `/api/media` and served under
//! `/media/{name}` with range requests (actix-files does the HTTP range and content-type work).

use std::path::{Path, PathBuf};

use actix_files::NamedFile;
use actix_web::{web, HttpRequest, HttpResponse};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Serialize;

use crate::app::AppState;
use crate::config::Config;
use crate::error::ApiError;

/// File endings offered as playable media.
const MEDIA_EXTENSIONS: &[&str] = &[
    "mp4", "webm", "m4v", "mov", "ogv", "ogg", "mp3", "m4a", "wav",
];

/// Bytes escaped in a library URL: all but the unreserved characters of RFC 3986, so any
/// file name (spaces, `#`, `?`, `%`, non-ASCII) becomes a URL that plays.
const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The URL a library file is played from: `/media/` and its percent-encoded name.
pub fn library_url(name: &str) -> String {
    format!("/media/{}", utf8_percent_encode(name, ESCAPED))
}

/// Whether a file name has a playable media ending: only these are listed or served.
fn is_media(name: &str) -> bool {
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| MEDIA_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// A directory of media files.
#[derive(Debug, Clone)]
pub struct MediaLibrary {
    /// The directory, canonicalized so every served path can be checked to lie inside it.
    root: PathBuf,
}

/// One library entry in `GET /api/media`.
#[derive(Debug, Serialize)]
struct MediaEntry {
    /// File name.
    name: String,
    /// Size in bytes.
    size: u64,
    /// Where to fetch it.
    url: String,
}

impl MediaLibrary {
    /// The library from `--media-dir`, or `./media` when that exists.
    pub fn from_config(config: &Config) -> Option<Self> {
        let dir = match &config.media_dir {
            Some(dir) => dir.clone(),
            None if Path::new("media").is_dir() => PathBuf::from("media"),
            None => return None,
        };
        match dir.canonicalize() {
            Ok(root) if root.is_dir() => Some(MediaLibrary { root }),
            _ => {
                tracing::warn!(dir = %dir.display(), "media directory not found; library disabled");
                None
            }
        }
    }

    /// A file of the library by bare name, or `None` for anything that is not a plain file
    /// directly inside the directory (no separators, no dot-files, no links leading out).
    fn resolve(&self, name: &str) -> Option<PathBuf> {
        if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\', '\0']) {
            return None;
        }
        if !is_media(name) {
            return None;
        }
        let path = self.root.join(name).canonicalize().ok()?;
        (path.parent() == Some(self.root.as_path()) && path.is_file()).then_some(path)
    }

    fn entries(&self) -> std::io::Result<Vec<MediaEntry>> {
        let mut entries = Vec::new();
        for item in std::fs::read_dir(&self.root)? {
            let item = item?;
            let name = item.file_name().to_string_lossy().into_owned();
            if self.resolve(&name).is_none() {
                continue;
            }
            entries.push(MediaEntry {
                url: library_url(&name),
                size: item.metadata()?.len(),
                name,
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }
}

pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let Some(library) = state.media.clone() else {
        return Ok(HttpResponse::Ok().json(Vec::<()>::new()));
    };
    let entries = web::block(move || library.entries())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(format!("cannot read media directory: {e}")))?;
    Ok(HttpResponse::Ok().json(entries))
}

pub async fn serve(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    let not_found = || ApiError::NotFound(format!("no media file {name:?}"));
    let file = state
        .media
        .as_ref()
        .and_then(|library| library.resolve(&name))
        .ok_or_else(not_found)?;
    let file = NamedFile::open_async(&file)
        .await
        .map_err(|_| not_found())?;
    Ok(file
        .use_etag(true)
        .use_last_modified(true)
        .into_response(&req))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_stays_inside_the_directory() {
        let dir = std::env::temp_dir().join(format!("wt-media-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("clip.mp4"), b"x").unwrap();
        std::fs::write(dir.join(".hidden.mp4"), b"x").unwrap();
        let lib = MediaLibrary {
            root: dir.canonicalize().unwrap(),
        };
        assert!(lib.resolve("clip.mp4").is_some());
        for bad in [
            "",
            "..",
            "../etc/passwd",
            "a/b.mp4",
            ".hidden.mp4",
            "missing.mp4",
            "x\\y",
        ] {
            assert!(lib.resolve(bad).is_none(), "{bad:?} resolved");
        }
        let names: Vec<_> = lib.entries().unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["clip.mp4"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn library_urls_are_percent_encoded_and_pass_the_url_rules() {
        use crate::protocol::Video;
        for (name, url) in [
            ("clip.mp4", "/media/clip.mp4"),
            ("my clip.mp4", "/media/my%20clip.mp4"),
            ("été #1?.mp4", "/media/%C3%A9t%C3%A9%20%231%3F.mp4"),
            ("100%.mp4", "/media/100%25.mp4"),
        ] {
            assert_eq!(library_url(name), url);
            let video = Video::Url { url: url.into() };
            assert_eq!(video.validate(), Ok(()), "{url}");
        }
    }
}
