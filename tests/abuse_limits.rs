//! Per-IP limits, trusted proxies and the WebSocket origin check.

use serde_json::json;

use crate::util::TestServer;

#[actix_rt::test]
async fn sessions_per_ip_are_capped_and_released() {
    let srv = TestServer::with(|c| c.max_sessions_per_ip = 2).await;
    let (room, _) = srv.create_room(json!({})).await;
    let a = srv.connect(&room).await;
    let _b = srv.connect(&room).await;
    assert_eq!(srv.try_connect(&room, &[]).await.err(), Some(429));
    a.close().await;
    srv.wait_until("the closed session to release its slot", |s| {
        s.metric("watch_together_sessions") < 2.0
    })
    .await;
    assert!(srv.try_connect(&room, &[]).await.is_ok());
    assert!(srv.metric("watch_together_rejected_total{limit=\"sessions_per_ip\"}") >= 1.0);
}

#[actix_rt::test]
async fn connection_rate_per_ip_is_limited() {
    let srv = TestServer::with(|c| c.connects_per_ip_per_minute = 3).await;
    let (room, _) = srv.create_room(json!({})).await;
    for _ in 0..3 {
        srv.connect(&room).await.close().await;
    }
    assert_eq!(srv.try_connect(&room, &[]).await.err(), Some(429));
}

#[actix_rt::test]
async fn room_creation_rate_per_ip_is_limited() {
    let srv = TestServer::with(|c| c.rooms_per_ip_per_minute = 2).await;
    srv.create_room(json!({})).await;
    srv.create_room(json!({})).await;
    let (status, v) = srv.post("/api/rooms", json!({})).await;
    assert_eq!(status, 429);
    assert_eq!(v["error"]["code"], "rate_limited");
}

#[actix_rt::test]
async fn forwarded_for_counts_only_behind_a_trusted_proxy() {
    // Untrusted: X-Forwarded-For is ignored, so changing it does not escape the cap.
    let srv = TestServer::with(|c| c.max_sessions_per_ip = 1).await;
    let (room, _) = srv.create_room(json!({})).await;
    let _a = srv
        .try_connect(&room, &[("x-forwarded-for", "203.0.113.1")])
        .await
        .unwrap();
    assert_eq!(
        srv.try_connect(&room, &[("x-forwarded-for", "203.0.113.2")])
            .await
            .err(),
        Some(429)
    );

    // Trusted: the proxy-appended (last) address is the client, so clients are told apart.
    let srv = TestServer::with(|c| {
        c.max_sessions_per_ip = 1;
        c.trust_proxy = true;
    })
    .await;
    let (room, _) = srv.create_room(json!({})).await;
    let _a = srv
        .try_connect(&room, &[("x-forwarded-for", "198.51.100.7, 203.0.113.1")])
        .await
        .unwrap();
    let _b = srv
        .try_connect(&room, &[("x-forwarded-for", "203.0.113.2")])
        .await
        .unwrap();
    assert_eq!(
        srv.try_connect(&room, &[("x-forwarded-for", "10.9.9.9, 203.0.113.2")])
            .await
            .err(),
        Some(429),
        "a spoofed first entry does not help"
    );
    // Issue 14, item 9: the proxy's line is the last one, and entries may carry a port.
    assert_eq!(
        srv.try_connect(
            &room,
            &[
                ("x-forwarded-for", "10.9.9.9"),
                ("x-forwarded-for", "203.0.113.1:40000")
            ]
        )
        .await
        .err(),
        Some(429),
        "a client's own first header line does not help"
    );
    let _c = srv
        .try_connect(&room, &[("x-forwarded-for", "[2001:db8::7]:40000")])
        .await
        .expect("a new address behind the proxy, written with a port");
    assert_eq!(
        srv.try_connect(&room, &[("x-forwarded-for", "2001:db8::7")])
            .await
            .err(),
        Some(429),
        "the same address without the port"
    );
}

#[actix_rt::test]
async fn cross_origin_upgrades_are_refused_unless_allowed() {
    let srv = TestServer::start().await;
    let (room, _) = srv.create_room(json!({})).await;
    let own = srv.base.clone();
    assert!(
        srv.try_connect(&room, &[("origin", &own)]).await.is_ok(),
        "same origin"
    );
    assert_eq!(
        srv.try_connect(&room, &[("origin", "https://evil.example")])
            .await
            .err(),
        Some(403)
    );
    let srv =
        TestServer::with(|c| c.allowed_origins = vec!["https://friends.example".into()]).await;
    let (room, _) = srv.create_room(json!({})).await;
    assert!(srv
        .try_connect(&room, &[("origin", "https://friends.example")])
        .await
        .is_ok());
    assert_eq!(
        srv.try_connect(&room, &[("origin", "https://evil.example")])
            .await
            .err(),
        Some(403)
    );
}
