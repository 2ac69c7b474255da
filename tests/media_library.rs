//! The media library: listing, range requests, content types, no way out of the directory.

use crate::util::TestServer;

/// A media directory with one small file, unique to this test process.
fn media_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wt-media-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("clip.mp4"),
        (0..=255u8).cycle().take(4096).collect::<Vec<_>>(),
    )
    .unwrap();
    std::fs::write(dir.join("notes.txt"), b"not media").unwrap();
    dir
}

#[actix_rt::test]
async fn media_is_listed_and_served_with_ranges() {
    let dir = media_dir();
    let srv = TestServer::with(|c| c.media_dir = Some(dir.clone())).await;
    let (status, list) = srv.get("/api/media").await;
    assert_eq!(status, 200);
    assert_eq!(
        list,
        serde_json::json!([{"kind": "file", "name": "clip.mp4", "size": 4096, "url": "/media/clip.mp4", "subtitles": []}])
    );

    let mut resp = awc::Client::new()
        .get(format!("{}/media/clip.mp4", srv.base))
        .insert_header(("range", "bytes=10-19"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 206);
    assert_eq!(resp.headers().get("content-type").unwrap(), "video/mp4");
    assert_eq!(
        resp.headers().get("content-range").unwrap(),
        "bytes 10-19/4096"
    );
    assert_eq!(
        resp.body().await.unwrap().to_vec(),
        (10..20u8).collect::<Vec<_>>()
    );

    let (status, body) = srv.get_raw("/media/clip.mp4", &[]).await;
    assert_eq!((status, body.len()), (200, 4096));
    for bad in [
        "/media/..%2Fetc%2Fpasswd",
        "/media/%2E%2E",
        "/media/missing.mp4",
        "/media/.hidden",
    ] {
        assert_eq!(srv.get_raw(bad, &[]).await.0, 404, "{bad}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[actix_rt::test]
async fn an_empty_media_directory_lists_nothing() {
    let empty = std::env::temp_dir().join(format!("wt-media-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let srv = TestServer::with(|c| c.media_dir = Some(empty.clone())).await;
    assert_eq!(srv.get("/api/media").await, (200, serde_json::json!([])));
    assert_eq!(srv.get_raw("/media/clip.mp4", &[]).await.0, 404);
    std::fs::remove_dir_all(&empty).unwrap();
}

#[actix_rt::test]
async fn the_app_is_served_from_the_binary() {
    let srv = TestServer::start().await;
    let (status, body) = srv.get_raw("/", &[]).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("<title>"));
    let (status, _) = srv
        .get_raw("/r/00000000-0000-4000-8000-000000000000", &[])
        .await;
    assert_eq!(status, 200, "the room page explains unknown rooms itself");
    assert_eq!(srv.get_raw("/no-such-file.js", &[]).await.0, 404);
}

/// Issue 14, items 8 and 12: a file name with a space or non-ASCII characters is listed
/// with a percent-encoded URL that plays and that the video rules accept; HEAD works; a
/// URL whose escapes are not UTF-8 is not served.
#[actix_rt::test]
async fn odd_file_names_get_urls_that_play() {
    let dir = std::env::temp_dir().join(format!("wt-media-odd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("my clip #1.mp4"), b"0123456789").unwrap();
    std::fs::write(dir.join("été.webm"), b"abc").unwrap();
    let srv = TestServer::with(|c| c.media_dir = Some(dir.clone())).await;
    let (_, list) = srv.get("/api/media").await;
    let urls: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["url"].as_str().unwrap())
        .collect();
    assert_eq!(
        urls,
        ["/media/my%20clip%20%231.mp4", "/media/%C3%A9t%C3%A9.webm"]
    );
    for url in &urls {
        let (status, _) = srv.get_raw(url, &[]).await;
        assert_eq!(status, 200, "{url}");
        let (room, token) = srv.create_room(serde_json::json!({})).await;
        let (mut host, _) = srv
            .join(
                &room,
                serde_json::json!({"name": "Host", "host_token": token}),
            )
            .await;
        host.send(serde_json::json!({"type": "load", "video": {"kind": "url", "url": url}}))
            .await;
        assert_eq!(
            host.expect("playback").await["playback"]["video"]["url"],
            *url
        );
    }
    let head = srv
        .raw(&format!(
            "HEAD /media/my%20clip%20%231.mp4 HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            srv.addr()
        ))
        .await;
    assert_eq!(head.status, 200, "{}", head.head);
    assert_eq!(head.header("content-length"), Some("10"));
    assert!(head.body.is_empty());
    assert_eq!(srv.get_raw("/media/%E0.mp4", &[]).await.0, 404);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Issue 16: an HLS folder is listed as one entry that plays its playlist; the playlist,
/// its segments (also in a variant subfolder) and subtitles are served with their content
/// types and ranges; subtitles pair with their video by name; nothing else leaks out.
#[actix_rt::test]
async fn hls_folders_and_subtitles_are_listed_and_served() {
    let dir = std::env::temp_dir().join(format!("wt-media-hls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("show/720p")).unwrap();
    std::fs::create_dir_all(dir.join("plain folder")).unwrap();
    let write = |name: &str, body: &[u8]| std::fs::write(dir.join(name), body).unwrap();
    write("film.mp4", b"0123456789");
    write(
        "film.en.vtt",
        b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nHello\n",
    );
    write("film.vtt", b"WEBVTT\n");
    write("film.pt-BR.vtt", b"WEBVTT\n");
    write("show.de.vtt", b"WEBVTT\n");
    write("orphan.fr.vtt", b"WEBVTT\n");
    write(
        "show/index.m3u8",
        b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n720p/index.m3u8\n",
    );
    write("show/720p/index.m3u8", b"#EXTM3U\n#EXTINF:1.0,\nseg0.ts\n");
    write("show/720p/seg0.ts", &[0x47; 376]);
    write("show/720p/seg1.m4s", b"moof");
    write("show/notes.txt", b"not served");
    write("show/.hidden.ts", b"hidden");
    write("plain folder/clip.ts", b"not in an HLS folder");
    let srv = TestServer::with(|c| c.media_dir = Some(dir.clone())).await;
    // The folder's size counts its plain files (not the hidden one).
    let show_size: u64 = [
        "index.m3u8",
        "720p/index.m3u8",
        "720p/seg0.ts",
        "720p/seg1.m4s",
        "notes.txt",
    ]
    .iter()
    .map(|f| std::fs::metadata(dir.join("show").join(f)).unwrap().len())
    .sum();

    let (status, list) = srv.get("/api/media").await;
    assert_eq!(status, 200);
    let sub = |label: &str, lang: &str, url: &str| serde_json::json!({"label": label, "lang": lang, "url": url});
    assert_eq!(
        list,
        serde_json::json!([
            {"kind": "file", "name": "film.mp4", "size": 10, "url": "/media/film.mp4", "subtitles": [
                sub("English", "en", "/media/film.en.vtt"),
                sub("Português (BR)", "pt-BR", "/media/film.pt-BR.vtt"),
                sub("Subtitles", "", "/media/film.vtt"),
            ]},
            {"kind": "hls", "name": "show", "size": show_size, "url": "/media/show/index.m3u8", "subtitles": [
                sub("Deutsch", "de", "/media/show.de.vtt"),
            ]},
        ])
    );

    for (path, content_type) in [
        ("/media/show/index.m3u8", "application/vnd.apple.mpegurl"),
        (
            "/media/show/720p/index.m3u8",
            "application/vnd.apple.mpegurl",
        ),
        ("/media/show/720p/seg0.ts", "video/mp2t"),
        ("/media/show/720p/seg1.m4s", "video/iso.segment"),
        ("/media/film.en.vtt", "text/vtt; charset=utf-8"),
        ("/media/orphan.fr.vtt", "text/vtt; charset=utf-8"),
    ] {
        let resp = awc::Client::new()
            .get(format!("{}{path}", srv.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        assert_eq!(
            resp.headers().get("content-type").unwrap(),
            content_type,
            "{path}"
        );
    }
    let mut ranged = awc::Client::new()
        .get(format!("{}/media/show/720p/seg0.ts", srv.base))
        .insert_header(("range", "bytes=188-375"))
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status().as_u16(), 206);
    assert_eq!(ranged.body().await.unwrap().len(), 188);

    for bad in [
        "/media/show",
        "/media/show/",
        "/media/show/notes.txt",
        "/media/show/.hidden.ts",
        "/media/show/../film.mp4",
        "/media/show/%2E%2E/film.mp4",
        "/media/show/..%2Ffilm.mp4",
        "/media/plain%20folder/clip.ts",
        "/media/film.mp4/x.ts",
        "/media/show/720p/seg0.ts/x",
        "/media/a/b/c/d/e.ts",
        "/media/show//index.m3u8",
    ] {
        assert_eq!(srv.get_raw(bad, &[]).await.0, 404, "{bad}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
