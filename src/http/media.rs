//! The media library: files of one directory, listed at `/api/media` and served under
//! `/media/{path}` with range requests (actix-files does the HTTP range work).
//!
//! What it offers: media files directly in the directory; HLS folders (a folder directly
//! in it holding an `.m3u8` playlist), whose playlists and segments are served one or more
//! levels down; and WebVTT subtitles, `name.vtt` or `name.LANG.vtt` next to `name.mp4` (or
//! next to the HLS folder `name`), listed with the video they belong to.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use actix_files::NamedFile;
use actix_web::{web, HttpRequest, HttpResponse};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Serialize;

use crate::app::AppState;
use crate::config::Config;
use crate::error::ApiError;
use crate::protocol::Subtitle;

/// File endings offered as playable media.
const MEDIA_EXTENSIONS: &[&str] = &[
    "mp4", "webm", "m4v", "mov", "ogv", "ogg", "mp3", "m4a", "wav",
];
/// File endings served from inside an HLS folder: playlists, MPEG-TS and fMP4 segments
/// (the init segment is `.mp4`), audio renditions and WebVTT subtitle segments.
const HLS_EXTENSIONS: &[&str] = &["m3u8", "ts", "m4s", "mp4", "m4a", "aac", "vtt"];
/// The subtitle file ending.
const SUBTITLE_EXTENSION: &str = "vtt";
/// Playlists preferred as an HLS folder's entry point, before any other `.m3u8`.
const PREFERRED_PLAYLISTS: &[&str] = &["master.m3u8", "index.m3u8", "playlist.m3u8"];
/// Deepest library path served (`folder/variant/segment.ts` is three).
const MAX_PATH_SEGMENTS: usize = 4;
/// Longest language tag taken from a subtitle file name (`name.LANG.vtt`).
const MAX_LANG_BYTES: usize = 35;

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

/// The URL of a file inside an HLS folder: each name percent-encoded, joined by `/`.
pub fn library_path_url(names: &[&str]) -> String {
    let encoded: Vec<String> = names
        .iter()
        .map(|n| utf8_percent_encode(n, ESCAPED).to_string())
        .collect();
    format!("/media/{}", encoded.join("/"))
}

/// A file name's ending, lower-cased.
fn extension(name: &str) -> Option<String> {
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
}

/// Whether a file name has a playable media ending: only these are listed at the top.
fn is_media(name: &str) -> bool {
    extension(name).is_some_and(|e| MEDIA_EXTENSIONS.contains(&e.as_str()))
}

/// Whether a name could be a library file or folder: not empty, not hidden, no separators.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\', '\0'])
}

/// The content type a library file is served with. Set here rather than guessed: the
/// usual tables call `.m3u8` `audio/x-mpegurl` and `.ts` a DLNA type, which players
/// and `nosniff` browsers may refuse.
fn content_type(path: &Path) -> mime_guess::Mime {
    let guessed = || mime_guess::from_path(path).first_or_octet_stream();
    let known = match extension(&path.to_string_lossy()).as_deref() {
        Some("m3u8") => "application/vnd.apple.mpegurl",
        Some("ts") => "video/mp2t",
        Some("m4s") => "video/iso.segment",
        Some("vtt") => "text/vtt; charset=utf-8",
        Some("aac") => "audio/aac",
        _ => return guessed(),
    };
    known.parse().unwrap_or_else(|_| guessed())
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
    /// `file` (a media file) or `hls` (a folder with an HLS playlist).
    kind: &'static str,
    /// File or folder name.
    name: String,
    /// Size in bytes (of all the folder's files for HLS).
    size: u64,
    /// Where to play it from (an HLS folder's playlist).
    url: String,
    /// Its WebVTT subtitle tracks, in the form a `url` video carries them.
    subtitles: Vec<Subtitle>,
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

    /// A served file of the library by its path below the directory (`/`-separated), or
    /// `None` for anything else: a media or subtitle file directly inside the directory, or
    /// an HLS file inside an HLS folder; every name plain (no dot-files, no `..`), and no
    /// link leading out of the directory.
    fn resolve(&self, path: &str) -> Option<PathBuf> {
        let names: Vec<&str> = path.split('/').collect();
        if names.len() > MAX_PATH_SEGMENTS || !names.iter().all(|n| is_plain_name(n)) {
            return None;
        }
        let file = *names.last()?;
        let ext = extension(file)?;
        if names.len() == 1 {
            if !(is_media(file) || ext == SUBTITLE_EXTENSION) {
                return None;
            }
            let path = self.root.join(file).canonicalize().ok()?;
            return (path.parent() == Some(self.root.as_path()) && path.is_file()).then_some(path);
        }
        if !HLS_EXTENSIONS.contains(&ext.as_str()) {
            return None;
        }
        let folder = self.root.join(names[0]).canonicalize().ok()?;
        if folder.parent() != Some(self.root.as_path()) || !is_hls_folder(&folder) {
            return None;
        }
        let path = self.root.join(path).canonicalize().ok()?;
        (path.starts_with(&folder) && path.is_file()).then_some(path)
    }

    fn entries(&self) -> std::io::Result<Vec<MediaEntry>> {
        let mut files = Vec::new();
        let mut folders = Vec::new();
        // Subtitle files by the stem of the video they belong to.
        let mut subtitles: BTreeMap<String, Vec<Subtitle>> = BTreeMap::new();
        for item in std::fs::read_dir(&self.root)? {
            let item = item?;
            let name = item.file_name().to_string_lossy().into_owned();
            if !is_plain_name(&name) {
                continue;
            }
            let kind = item.file_type()?;
            // Links are followed only where they stay inside (resolve checks that).
            if kind.is_dir() || (kind.is_symlink() && item.path().is_dir()) {
                folders.push(name);
            } else if extension(&name).as_deref() == Some(SUBTITLE_EXTENSION) {
                if self.resolve(&name).is_some() {
                    if let Some((stem, track)) = subtitle_track(&name) {
                        subtitles.entry(stem).or_default().push(track);
                    }
                }
            } else if self.resolve(&name).is_some() {
                files.push((name, item.metadata()?.len()));
            }
        }
        let mut take_subtitles = |stem: &str| {
            let mut tracks = subtitles.remove(stem).unwrap_or_default();
            tracks.sort_by(|a, b| (a.lang.is_empty(), &a.lang).cmp(&(b.lang.is_empty(), &b.lang)));
            tracks
        };
        let mut entries = Vec::new();
        for (name, size) in files {
            let stem = Path::new(&name)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            entries.push(MediaEntry {
                kind: "file",
                url: library_url(&name),
                size,
                subtitles: take_subtitles(&stem),
                name,
            });
        }
        for name in folders {
            let Ok(folder) = self.root.join(&name).canonicalize() else {
                continue;
            };
            if folder.parent() != Some(self.root.as_path()) {
                continue;
            }
            let Some(playlist) = playlist_of(&folder) else {
                continue;
            };
            entries.push(MediaEntry {
                kind: "hls",
                url: library_path_url(&[&name, &playlist]),
                size: folder_size(&folder, MAX_PATH_SEGMENTS - 1),
                subtitles: take_subtitles(&name),
                name,
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }
}

/// The playlist that plays an HLS folder: a preferred name if present, else the first
/// `.m3u8` by name; `None` when the folder holds none (then it is not an HLS folder).
fn playlist_of(folder: &Path) -> Option<String> {
    let mut playlists: Vec<String> = std::fs::read_dir(folder)
        .ok()?
        .filter_map(Result::ok)
        .map(|item| item.file_name().to_string_lossy().into_owned())
        .filter(|name| is_playlist_name(name))
        .collect();
    playlists.sort();
    PREFERRED_PLAYLISTS
        .iter()
        .find(|p| playlists.iter().any(|n| n == *p))
        .map(|p| (*p).to_owned())
        .or_else(|| playlists.into_iter().next())
}

/// Whether `folder` holds a playlist, that is whether [`playlist_of`] finds one, answered
/// without listing the whole folder: this runs for every segment a player fetches, and a
/// long stream's folder holds thousands of segments. A preferred name is looked up
/// directly; only a folder without one is read, and only up to its first playlist.
fn is_hls_folder(folder: &Path) -> bool {
    PREFERRED_PLAYLISTS
        .iter()
        .any(|name| folder.join(name).symlink_metadata().is_ok())
        || std::fs::read_dir(folder).is_ok_and(|items| {
            items
                .filter_map(Result::ok)
                .any(|item| is_playlist_name(&item.file_name().to_string_lossy()))
        })
}

/// A file name an HLS folder's playlist may have.
fn is_playlist_name(name: &str) -> bool {
    is_plain_name(name) && extension(name).as_deref() == Some("m3u8")
}

/// Bytes of the plain files in a folder and its plain subfolders, `depth` levels down.
fn folder_size(folder: &Path, depth: usize) -> u64 {
    let Ok(items) = std::fs::read_dir(folder) else {
        return 0;
    };
    items
        .filter_map(Result::ok)
        .filter(|item| is_plain_name(&item.file_name().to_string_lossy()))
        .map(|item| match item.file_type() {
            Ok(t) if t.is_file() => item.metadata().map(|m| m.len()).unwrap_or(0),
            Ok(t) if t.is_dir() && depth > 1 => folder_size(&item.path(), depth - 1),
            _ => 0,
        })
        .sum()
}

/// `name.vtt` (no language) or `name.LANG.vtt`: the stem of the video it belongs to and the
/// track to list. A middle part that is not a language tag belongs to the stem
/// (`my.film.vtt` subtitles `my.film.mp4`).
fn subtitle_track(file: &str) -> Option<(String, Subtitle)> {
    let base = file.get(..file.len().checked_sub(SUBTITLE_EXTENSION.len() + 1)?)?;
    let url = library_url(file);
    if let Some((stem, lang)) = base.rsplit_once('.') {
        let is_lang = (2..=MAX_LANG_BYTES).contains(&lang.len())
            && lang.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && lang.as_bytes()[0].is_ascii_alphabetic()
            && lang
                .split('-')
                .next()
                .is_some_and(|primary| primary.len() <= 3);
        if is_lang && !stem.is_empty() {
            let track = Subtitle {
                label: language_label(lang),
                lang: lang.to_owned(),
                url,
            };
            return Some((stem.to_owned(), track));
        }
    }
    (!base.is_empty()).then(|| {
        let track = Subtitle {
            label: "Subtitles".to_owned(),
            lang: String::new(),
            url,
        };
        (base.to_owned(), track)
    })
}

/// A readable label for a language tag: the language's own name for common ones, with
/// any region after it; the tag itself otherwise.
fn language_label(tag: &str) -> String {
    const NAMES: &[(&str, &str)] = &[
        ("ar", "العربية"),
        ("de", "Deutsch"),
        ("en", "English"),
        ("es", "Español"),
        ("fr", "Français"),
        ("hi", "हिन्दी"),
        ("it", "Italiano"),
        ("ja", "日本語"),
        ("ko", "한국어"),
        ("nl", "Nederlands"),
        ("pl", "Polski"),
        ("pt", "Português"),
        ("ru", "Русский"),
        ("sv", "Svenska"),
        ("tr", "Türkçe"),
        ("uk", "Українська"),
        ("zh", "中文"),
    ];
    let (primary, region) = tag.split_once('-').unwrap_or((tag, ""));
    let primary = primary.to_ascii_lowercase();
    match NAMES.iter().find(|(code, _)| *code == primary) {
        Some((_, name)) if region.is_empty() => (*name).to_owned(),
        Some((_, name)) => format!("{name} ({region})"),
        None => tag.to_owned(),
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
    let mime = content_type(&file);
    let file = NamedFile::open_async(&file)
        .await
        .map_err(|_| not_found())?;
    Ok(file
        .set_content_type(mime)
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
        // An HLS folder: its files are served, a folder without a playlist's are not.
        std::fs::create_dir_all(dir.join("show")).unwrap();
        std::fs::create_dir_all(dir.join("other")).unwrap();
        std::fs::write(dir.join("show/x.m3u8"), b"#EXTM3U").unwrap();
        std::fs::write(dir.join("show/s.ts"), b"x").unwrap();
        std::fs::write(dir.join("other/s.ts"), b"x").unwrap();
        assert!(lib.resolve("show/x.m3u8").is_some());
        assert!(lib.resolve("show/s.ts").is_some());
        for bad in [
            "other/s.ts",
            "show",
            "show/",
            "show/../clip.mp4",
            "show/./s.ts",
        ] {
            assert!(lib.resolve(bad).is_none(), "{bad:?} resolved");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn subtitle_files_name_their_video_and_language() {
        let track = |file: &str| subtitle_track(file).map(|(stem, t)| (stem, t.lang, t.label));
        let some =
            |stem: &str, lang: &str, label: &str| Some((stem.into(), lang.into(), label.into()));
        assert_eq!(track("film.vtt"), some("film", "", "Subtitles"));
        assert_eq!(track("film.en.vtt"), some("film", "en", "English"));
        assert_eq!(track("film.EN.vtt"), some("film", "EN", "English"));
        assert_eq!(
            track("film.pt-BR.vtt"),
            some("film", "pt-BR", "Português (BR)")
        );
        assert_eq!(track("film.tlh.vtt"), some("film", "tlh", "tlh"));
        // A middle part that is no language tag is part of the video's name.
        assert_eq!(track("my.film.vtt"), some("my.film", "", "Subtitles"));
        assert_eq!(track("film.2024.vtt"), some("film.2024", "", "Subtitles"));
        assert_eq!(track(".vtt"), None);
    }

    #[test]
    fn segments_and_playlists_get_their_content_types() {
        for (file, expected) in [
            ("a.m3u8", "application/vnd.apple.mpegurl"),
            ("a.ts", "video/mp2t"),
            ("a.m4s", "video/iso.segment"),
            ("a.vtt", "text/vtt; charset=utf-8"),
            ("a.mp4", "video/mp4"),
        ] {
            assert_eq!(
                content_type(Path::new(file)).to_string(),
                expected,
                "{file}"
            );
        }
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
