//! What a room plays: a YouTube video or a media URL, and the rules a URL must meet before
//! every viewer's browser is told to fetch it.

use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

/// Longest accepted video URL, in bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// Where the media library is served; a URL under it names a library file.
pub const LIBRARY_PREFIX: &str = "/media/";
/// Most subtitle tracks one video may carry.
pub const MAX_SUBTITLES: usize = 16;
/// Longest subtitle label, in characters.
pub const MAX_SUBTITLE_LABEL_CHARS: usize = 64;
/// Longest subtitle language tag, in bytes (BCP 47 tags are short; this leaves room).
pub const MAX_SUBTITLE_LANG_BYTES: usize = 35;

/// What a video is and where it comes from.
///
/// On the wire a `url` video is `{kind: "url", url, subtitles?}`. Inside the server one
/// with subtitles is the separate variant [`Video::Subtitled`], so that `Video::Url { url }`
/// stays the one-field value the room code builds everywhere; the two convert through
/// `WireVideo`, and a stored room without `subtitles` loads as before.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "WireVideo", into = "WireVideo")]
pub enum Video {
    /// A YouTube video, played through the IFrame API.
    Youtube {
        /// The 11-character video id.
        id: String,
    },
    /// A direct media URL or a file of the server's media library (`/media/...`); a URL
    /// ending in `.m3u8` is an HLS stream.
    Url {
        /// `http(s)://...` or a path under `/media/`.
        url: String,
    },
    /// A `url` video with subtitle tracks (never built with an empty list).
    Subtitled {
        /// `http(s)://...` or a path under `/media/`.
        url: String,
        /// WebVTT tracks each viewer may turn on.
        subtitles: Vec<Subtitle>,
    },
}

/// One WebVTT subtitle track of a video.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Subtitle {
    /// What the track menu shows ("English", "Deutsch (SDH)").
    pub label: String,
    /// Its language as a BCP 47 tag ("en", "pt-BR"), or empty when unknown.
    #[serde(default)]
    pub lang: String,
    /// Where the WebVTT file is: the same rules as a video URL.
    pub url: String,
}

/// The wire form of [`Video`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WireVideo {
    /// A YouTube video.
    Youtube {
        /// The 11-character video id.
        id: String,
    },
    /// A media URL, with its subtitle tracks if it has any.
    Url {
        /// `http(s)://...` or a path under `/media/`.
        url: String,
        /// Subtitle tracks; absent means none.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        subtitles: Vec<Subtitle>,
    },
}

impl From<WireVideo> for Video {
    fn from(wire: WireVideo) -> Self {
        match wire {
            WireVideo::Youtube { id } => Video::Youtube { id },
            WireVideo::Url { url, subtitles } if subtitles.is_empty() => Video::Url { url },
            WireVideo::Url { url, subtitles } => Video::Subtitled { url, subtitles },
        }
    }
}

impl From<Video> for WireVideo {
    fn from(video: Video) -> Self {
        match video {
            Video::Youtube { id } => WireVideo::Youtube { id },
            Video::Url { url } => WireVideo::Url {
                url,
                subtitles: Vec::new(),
            },
            Video::Subtitled { url, subtitles } => WireVideo::Url { url, subtitles },
        }
    }
}

impl Video {
    /// A `url` video with these subtitle tracks (none: a plain [`Video::Url`]).
    pub fn with_subtitles(url: String, subtitles: Vec<Subtitle>) -> Self {
        WireVideo::Url { url, subtitles }.into()
    }

    /// The media URL of a `url` video.
    pub fn url(&self) -> Option<&str> {
        match self {
            Video::Youtube { .. } => None,
            Video::Url { url } | Video::Subtitled { url, .. } => Some(url),
        }
    }

    /// The video's subtitle tracks (none for YouTube).
    pub fn subtitles(&self) -> &[Subtitle] {
        match self {
            Video::Subtitled { subtitles, .. } => subtitles,
            _ => &[],
        }
    }

    /// Checks the video's fields, explaining what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Video::Youtube { id } => {
                let ok = id.len() == 11
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if ok {
                    Ok(())
                } else {
                    Err("a YouTube id is 11 characters of A-Z, a-z, 0-9, '-' or '_'".into())
                }
            }
            Video::Url { url } => validate_url(url),
            Video::Subtitled { url, subtitles } => {
                validate_url(url)?;
                validate_subtitles(subtitles)
            }
        }
    }

    /// Whether this is a remote URL whose host is a loopback, private or link-local address
    /// written as an IP, or a local-only name such as `localhost`. Every viewer's browser
    /// fetches a room's video, so such a URL makes them probe their own networks; operators
    /// can refuse them (`--refuse-private-urls`). A public name that resolves to a private
    /// address is not caught here: that would need the server to resolve it.
    pub fn points_at_private_network(&self) -> bool {
        let Some(url) = self.url() else {
            return false;
        };
        // Subtitle files are fetched by every viewer's browser just like the video.
        std::iter::once(url)
            .chain(self.subtitles().iter().map(|s| s.url.as_str()))
            .any(url_points_at_private_network)
    }
}

/// Whether one remote URL names a private-network host (see `points_at_private_network`).
fn url_points_at_private_network(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false; // a library path, or invalid anyway
    };
    match parsed.host() {
        Some(url::Host::Ipv4(ip)) => is_private_ip(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => is_private_ip(IpAddr::V6(ip)),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost"
                || [".localhost", ".local", ".internal", ".home.arpa"]
                    .iter()
                    .any(|suffix| name.ends_with(suffix))
        }
        None => false,
    }
}

/// Subtitle tracks: a bounded list of labelled WebVTT URLs under the video URL rules.
fn validate_subtitles(subtitles: &[Subtitle]) -> Result<(), String> {
    if subtitles.len() > MAX_SUBTITLES {
        return Err(format!("at most {MAX_SUBTITLES} subtitle tracks"));
    }
    for (i, track) in subtitles.iter().enumerate() {
        let n = i + 1;
        let label = track.label.trim();
        if label.is_empty() || track.label.chars().count() > MAX_SUBTITLE_LABEL_CHARS {
            return Err(format!(
                "subtitle track {n}: a label is 1 to {MAX_SUBTITLE_LABEL_CHARS} characters"
            ));
        }
        if track.label.chars().any(char::is_control) {
            return Err(format!(
                "subtitle track {n}: the label contains control characters"
            ));
        }
        let lang_ok = track.lang.len() <= MAX_SUBTITLE_LANG_BYTES
            && track
                .lang
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !lang_ok {
            return Err(format!(
                "subtitle track {n}: lang is a language tag such as \"en\" or \"pt-BR\""
            ));
        }
        validate_url(&track.url).map_err(|e| {
            format!(
                "subtitle track {n}: {}",
                e.replacen("video URL", "subtitle URL", 1)
            )
        })?;
    }
    Ok(())
}

/// A URL is either `http(s)://host/...` or a library path `/media/NAME...`.
fn validate_url(url: &str) -> Result<(), String> {
    if url.len() > MAX_URL_BYTES {
        return Err(format!("video URL longer than {MAX_URL_BYTES} bytes"));
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("video URL contains whitespace or control characters".into());
    }
    if let Some(path) = url.strip_prefix(LIBRARY_PREFIX) {
        return validate_library_path(path);
    }
    // Compared as bytes: the first characters may be multi-byte, and a `str` slice there
    // would panic.
    let bytes = url.as_bytes();
    let Some(scheme) = ["http://", "https://"].iter().find(|scheme| {
        bytes.len() > scheme.len() && bytes[..scheme.len()].eq_ignore_ascii_case(scheme.as_bytes())
    }) else {
        return Err("video URL must start with http://, https:// or /media/".into());
    };
    // A browser would read `https:///x` as host `x`; whoever wrote it meant something else.
    if matches!(bytes[scheme.len()], b'/' | b'\\') {
        return Err("video URL has no host".into());
    }
    let parsed = url::Url::parse(url).map_err(|e| format!("video URL is not valid: {e}"))?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("video URL has no host".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("video URL must not carry a user name or password".into());
    }
    Ok(())
}

/// Each segment of a library path must decode (percent-encoding) to a name the library
/// could hold: valid UTF-8, no separators or control characters, not hidden, not `.`/`..`.
/// Every viewer's page decodes it to show the file's name, so a bad escape must stop here.
fn validate_library_path(path: &str) -> Result<(), String> {
    const WHY: &str = "a library URL is /media/ followed by file names, percent-encoded as UTF-8";
    if path.is_empty() {
        return Err(WHY.into());
    }
    for segment in path.split('/') {
        let name = percent_encoding::percent_decode_str(segment)
            .decode_utf8()
            .map_err(|_| format!("{WHY}: {segment:?} does not decode to UTF-8"))?;
        let bad = name.is_empty()
            || name.starts_with('.')
            || name
                .chars()
                .any(|c| c.is_control() || c == '/' || c == '\\');
        if bad {
            return Err(format!("{WHY}: {segment:?} is not a file name"));
        }
    }
    Ok(())
}

/// Loopback, private, shared (carrier-grade NAT), link-local, unspecified and multicast
/// addresses, including IPv4 addresses written in IPv6 form.
fn is_private_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private_v4(v4);
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
        }
    }
}

fn is_private_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space 100.64.0.0/10
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(u: &str) -> Video {
        Video::Url { url: u.into() }
    }

    #[test]
    fn remote_and_library_urls_are_accepted() {
        for good in [
            "https://example.org/film.mp4",
            "HTTPS://x.org/a.mp4",
            "http://192.0.2.7:8080/a.webm?x=1#t=3",
            "/media/clip.mp4",
            "/media/my%20clip.mp4",
            "/media/%C3%A9t%C3%A9.mp4",
            "/media/show/index.m3u8",
        ] {
            assert_eq!(url(good).validate(), Ok(()), "{good}");
        }
    }

    #[test]
    fn bad_urls_are_refused_with_a_reason() {
        for bad in [
            "javascript:alert(1)",
            "http://",
            "https:///path",
            "http://user:pw@example.org/a.mp4",
            "/media/",
            "/media/../etc/passwd",
            "/media/./a.mp4",
            "/media/.hidden.mp4",
            "/media/a//b.mp4",
            "/media/%E0.mp4",
            "/media/a%2Fb.mp4",
            "/media/a%00.mp4",
            "ftp://example.org/a.mp4",
            "aaaaaaé.mp4",
            "httpé://x",
            "ééééé",
        ] {
            let result = url(bad).validate();
            assert!(result.is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn multibyte_characters_at_the_scheme_never_panic() {
        // Every way of placing a multi-byte character across the first eight bytes.
        for prefix in 0..9 {
            for c in ['é', '€', '𝄞'] {
                let text = format!("{}{c}rest", "a".repeat(prefix));
                let _ = url(&text).validate();
                let text = format!("{}{c}rest", &"https://"[..prefix.min(8)]);
                let _ = url(&text).validate();
            }
        }
    }

    #[test]
    fn private_network_urls_are_recognized() {
        for private in [
            "http://127.0.0.1/a.mp4",
            "http://10.1.2.3/a.mp4",
            "http://192.168.1.1:8080/a.mp4",
            "http://169.254.169.254/latest/meta-data",
            "http://100.64.0.1/a.mp4",
            "http://[::1]/a.mp4",
            "http://[fe80::1]/a.mp4",
            "http://[fd00::1]/a.mp4",
            "http://[::ffff:10.0.0.1]/a.mp4",
            "http://localhost:9000/a.mp4",
            "http://printer.local/a.mp4",
            "http://0.0.0.0/a.mp4",
        ] {
            assert!(url(private).points_at_private_network(), "{private}");
        }
        for public in [
            "https://example.org/a.mp4",
            "http://192.0.2.7/a.mp4",
            "http://[2001:db8::1]/a.mp4",
            "/media/clip.mp4",
        ] {
            assert!(!url(public).points_at_private_network(), "{public}");
        }
        assert!(!Video::Youtube {
            id: "dQw4w9WgXcQ".into()
        }
        .points_at_private_network());
    }

    fn track(label: &str, lang: &str, url: &str) -> Subtitle {
        Subtitle {
            label: label.into(),
            lang: lang.into(),
            url: url.into(),
        }
    }

    #[test]
    fn subtitles_travel_as_an_optional_field_of_url_videos() {
        let plain: Video = serde_json::from_str(r#"{"kind":"url","url":"/media/a.mp4"}"#)
            .expect("a url video without subtitles");
        assert_eq!(plain, url("/media/a.mp4"));
        assert_eq!(
            serde_json::to_string(&plain).expect("serializes"),
            r#"{"kind":"url","url":"/media/a.mp4"}"#
        );
        let empty: Video =
            serde_json::from_str(r#"{"kind":"url","url":"/media/a.mp4","subtitles":[]}"#)
                .expect("an empty list");
        assert_eq!(empty, plain);
        let json = r#"{"kind":"url","url":"/media/a.mp4","subtitles":[{"label":"English","lang":"en","url":"/media/a.en.vtt"}]}"#;
        let with: Video = serde_json::from_str(json).expect("a url video with subtitles");
        assert_eq!(with.url(), Some("/media/a.mp4"));
        assert_eq!(
            with.subtitles(),
            [track("English", "en", "/media/a.en.vtt")]
        );
        assert_eq!(serde_json::to_string(&with).expect("serializes"), json);
        assert_eq!(with.validate(), Ok(()));
        // lang may be left out.
        let no_lang: Video = serde_json::from_str(
            r#"{"kind":"url","url":"/media/a.mp4","subtitles":[{"label":"Subs","url":"/media/a.vtt"}]}"#,
        )
        .expect("lang defaults to empty");
        assert_eq!(no_lang.subtitles()[0].lang, "");
        assert!(serde_json::from_str::<Video>(
            r#"{"kind":"url","url":"/media/a.mp4","subtitles":[{"lang":"en"}]}"#
        )
        .is_err());
    }

    #[test]
    fn bad_subtitle_tracks_are_refused_with_a_reason() {
        let video = |tracks: Vec<Subtitle>| Video::with_subtitles("/media/a.mp4".into(), tracks);
        for (tracks, why) in [
            (vec![track("", "en", "/media/a.vtt")], "label"),
            (vec![track(&"x".repeat(65), "en", "/media/a.vtt")], "label"),
            (vec![track("a\u{7}b", "en", "/media/a.vtt")], "control"),
            (vec![track("English", "en us", "/media/a.vtt")], "lang"),
            (
                vec![track("English", "en", "javascript:alert(1)")],
                "subtitle URL",
            ),
            (
                vec![track("English", "en", "/media/../x.vtt")],
                "library URL",
            ),
            (vec![track("English", "en", "/media/a.vtt"); 17], "at most"),
        ] {
            let err = video(tracks).validate().expect_err(why);
            assert!(err.contains(why), "{err:?} should mention {why}");
        }
        let private = Video::with_subtitles(
            "https://example.org/a.mp4".into(),
            vec![track("English", "en", "http://10.0.0.1/a.vtt")],
        );
        assert!(private.points_at_private_network());
    }
}
