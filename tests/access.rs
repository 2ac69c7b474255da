//! Which requests the server serves: host names (DNS rebinding), origins and content types
//! of room creation, request body deadlines, per-client caps on connections and rooms, and
//! the headers every answer carries (issue 14, items 3–6 and 12).

use std::time::Duration;

use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::util::{read_response, TestServer};

/// A GET for `path` naming `host`, closing the connection after the answer.
fn get(path: &str, host: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n")
}

/// A POST of `body` to /api/rooms with the given extra header lines.
fn post_room(host: &str, extra: &str, body: &str) -> String {
    format!(
        "POST /api/rooms HTTP/1.1\r\nHost: {host}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Item 5: a page that points its own name at the server (DNS rebinding) is "same origin"
/// to the browser; the server answers only to names it knows.
#[actix_rt::test]
async fn a_rebound_host_name_is_refused_everywhere() {
    let srv = TestServer::start().await;
    let (room, _) = srv.create_room(json!({})).await;
    let evil = format!("evil.example:{}", srv.addr().port());
    let origin = format!("Origin: http://{evil}\r\n");
    for path in [
        "/api/media".to_owned(),
        format!("/api/rooms/{room}"),
        "/media/clip-a-60s.mp4".to_owned(),
        "/".to_owned(),
    ] {
        let r = srv.raw(&get(&path, &evil, &origin)).await;
        assert_eq!(r.status, 403, "{path}: {}", r.head);
        assert!(r.body.contains("host_not_allowed"), "{}", r.body);
    }
    let r = srv.raw(&post_room(&evil, &origin, "")).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        srv.try_connect(
            &room,
            &[("host", &evil), ("origin", &format!("http://{evil}"))]
        )
        .await
        .err(),
        Some(403)
    );
    // Addresses and localhost always work; other names when the operator lists them.
    let port = srv.addr().port();
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        assert_eq!(srv.raw(&get("/api/health", &host, "")).await.status, 200);
    }
    let srv = TestServer::with(|c| c.allowed_hosts = vec!["watch.example".into()]).await;
    let host = format!("watch.example:{}", srv.addr().port());
    assert_eq!(srv.raw(&get("/api/health", &host, "")).await.status, 200);
}

/// Items 5 and 6: another site's page cannot create rooms from its visitor's browser, by
/// script (its Origin) or by form (forms cannot send JSON).
#[actix_rt::test]
async fn rooms_are_created_only_with_json_from_our_own_origin() {
    let srv = TestServer::start().await;
    let host = srv.addr().to_string();
    let json_type = "Content-Type: application/json\r\n";
    let form = srv
        .raw(&post_room(
            &host,
            "Content-Type: text/plain\r\n",
            "{\"name\":\"x\"}",
        ))
        .await;
    assert_eq!(form.status, 415, "{}", form.head);
    assert!(form.body.contains("unsupported_media_type"));
    let empty_form = srv
        .raw(&post_room(
            &host,
            "Content-Type: application/x-www-form-urlencoded\r\n",
            "",
        ))
        .await;
    assert_eq!(empty_form.status, 415);
    let untyped = srv.raw(&post_room(&host, "", "{\"name\":\"x\"}")).await;
    assert_eq!(untyped.status, 415);
    let foreign = srv
        .raw(&post_room(
            &host,
            &format!("{json_type}Origin: https://evil.example\r\n"),
            "{}",
        ))
        .await;
    assert_eq!(foreign.status, 403);
    assert!(foreign.body.contains("origin_not_allowed"));
    let own = srv
        .raw(&post_room(
            &host,
            &format!("{json_type}Origin: http://{host}\r\n"),
            "{\"name\":\"Ours\"}",
        ))
        .await;
    assert_eq!(own.status, 201, "{}", own.body);
    let with_charset = srv
        .raw(&post_room(
            &host,
            "Content-Type: Application/JSON; charset=utf-8\r\n",
            "{}",
        ))
        .await;
    assert_eq!(with_charset.status, 201);
    assert_eq!(
        srv.raw(&post_room(&host, "", "")).await.status,
        201,
        "no body, no type"
    );
}

/// Item 4: a body trickled in slower than the deadline is refused with 408.
#[actix_rt::test]
async fn a_trickled_body_times_out() {
    let srv = TestServer::with(|c| c.body_timeout = Duration::from_millis(300)).await;
    let mut stream = tokio::net::TcpStream::connect(srv.addr()).await.unwrap();
    let head = format!(
        "POST /api/rooms HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{{\"na",
        srv.addr()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // The rest never comes; the answer does.
    let r = read_response(&mut stream).await;
    assert_eq!(r.status, 408, "{}", r.head);
    assert!(r.body.contains("request_timeout"));
    assert_eq!(srv.state.rooms.len(), 0);
}

/// Item 4: plain HTTP connections are capped per client like WebSocket sessions.
#[actix_rt::test]
async fn open_connections_are_capped_per_client() {
    let srv = TestServer::with(|c| {
        c.max_connections_per_ip = 2;
        c.workers = Some(1); // accepted in the order they were opened
    })
    .await;
    let host = srv.addr().to_string();
    let mut first = tokio::net::TcpStream::connect(srv.addr()).await.unwrap();
    let _second = tokio::net::TcpStream::connect(srv.addr()).await.unwrap();
    let over = srv.raw(&get("/api/health", &host, "")).await;
    assert_eq!(over.status, 429, "{}", over.head);
    assert_eq!(over.header("connection"), Some("close"));
    first
        .write_all(get("/api/health", &host, "").as_bytes())
        .await
        .unwrap();
    assert_eq!(read_response(&mut first).await.status, 200);
    // `first` is closed now: its place comes back once the server has dropped it.
    let deadline = tokio::time::Instant::now() + crate::util::PATIENCE;
    while srv.raw(&get("/api/health", &host, "")).await.status != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot never came back"
        );
    }
    assert!(srv.metric("watch_together_rejected_total{limit=\"connections_per_ip\"}") >= 1.0);
}

/// Item 3: one client may hold only so many rooms at once, and an IPv6 /64 is one client.
#[actix_rt::test]
async fn live_rooms_are_capped_per_client_and_per_ipv6_prefix() {
    let srv = TestServer::with(|c| {
        c.max_rooms_per_ip = 2;
        c.rooms_per_ip_per_minute = 0;
        c.trust_proxy = true;
    })
    .await;
    let post_from = |ip: &str| {
        post_room(
            &srv.addr().to_string(),
            &format!("X-Forwarded-For: {ip}\r\n"),
            "",
        )
    };
    for ip in ["2001:db8:1:2::1", "2001:db8:1:2::ffff"] {
        assert_eq!(srv.raw(&post_from(ip)).await.status, 201);
    }
    let r = srv.raw(&post_from("2001:db8:1:2:aaaa::7")).await;
    assert_eq!(r.status, 429, "the same /64: {}", r.body);
    assert!(r.body.contains("rate_limited"));
    assert_eq!(srv.raw(&post_from("2001:db8:1:3::1")).await.status, 201);
    assert_eq!(srv.raw(&post_from("192.0.2.1")).await.status, 201);
}

/// Item 12: security headers on every answer, pages and errors alike.
#[actix_rt::test]
async fn every_answer_carries_the_security_headers() {
    let srv = TestServer::start().await;
    let host = srv.addr().to_string();
    for path in ["/", "/api/health", "/api/nope", "/js/room.js"] {
        let r = srv.raw(&get(path, &host, "")).await;
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        let csp = r.header("content-security-policy").unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{path}");
        // Which node answered, as /api/health names it (host name and port by default).
        let node = r.header("x-served-by").unwrap_or_default();
        assert!(
            node.ends_with(&format!(":{}", srv.addr().port())),
            "{path}: {node}"
        );
    }
    let (_, health) = srv.get("/api/health").await;
    assert!(health["node"]
        .as_str()
        .unwrap()
        .ends_with(&format!(":{}", srv.addr().port())));
}

/// Item 12: with --refuse-private-urls, videos on private or local networks are refused,
/// over REST and the WebSocket.
#[actix_rt::test]
async fn private_network_videos_can_be_refused() {
    let srv = TestServer::with(|c| c.refuse_private_urls = true).await;
    let (status, v) = srv
        .post(
            "/api/rooms",
            json!({"video": {"kind": "url", "url": "http://169.254.169.254/latest"}}),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    let (room, token) = srv.create_room(json!({})).await;
    let (mut host, _) = srv
        .join(&room, json!({"name": "Host", "host_token": token}))
        .await;
    for url in ["http://192.168.1.10/a.mp4", "http://localhost:9000/a.mp4"] {
        host.send(json!({"type": "load", "video": {"kind": "url", "url": url}}))
            .await;
        assert_eq!(host.expect_error().await, "bad_message", "{url}");
    }
    host.send(
        json!({"type": "load", "video": {"kind": "url", "url": "https://example.org/a.mp4"}}),
    )
    .await;
    host.expect("playback").await;
    // Off by default.
    let open = TestServer::start().await;
    let (status, _) = open
        .post(
            "/api/rooms",
            json!({"video": {"kind": "url", "url": "http://192.168.1.10/a.mp4"}}),
        )
        .await;
    assert_eq!(status, 201);
}
