//! `/metrics` in the Prometheus text format, and `/api/health`.

use serde_json::json;

use crate::util::TestServer;

/// The value of one sample line in a Prometheus text exposition.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[actix_rt::test]
async fn metrics_count_rooms_sessions_messages_and_broadcasts() {
    let srv = TestServer::start().await;
    let (room, _) = srv.create_room(json!({})).await;
    let (mut host, _) = srv.join(&room, json!({"name": "Host"})).await;
    let (mut guest, _) = srv.join(&room, json!({"name": "Guest"})).await;
    host.send(json!({"type": "chat", "text": "hi"})).await;
    guest.expect("chat").await;
    host.send(json!({"type": "seek", "position": 3})).await;
    guest.expect("playback").await;
    guest.send(json!({"type": "play"})).await;
    assert_eq!(guest.expect_error().await, "not_host");
    guest.send_text("nonsense").await;
    assert_eq!(guest.expect_error().await, "bad_json");

    let (status, body) = srv.get_raw("/metrics", &[]).await;
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("# TYPE watch_together_broadcast_seconds histogram"));
    assert_eq!(sample(&text, "watch_together_rooms"), Some(1.0));
    assert_eq!(sample(&text, "watch_together_sessions"), Some(2.0));
    assert_eq!(
        sample(&text, "watch_together_messages_in_total{type=\"chat\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "watch_together_messages_in_total{type=\"join\"}"),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, "watch_together_messages_in_total{type=\"invalid\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "watch_together_broadcast_seconds_count"),
        Some(2.0)
    );
    assert!(sample(&text, "watch_together_errors_sent_total").unwrap() >= 2.0);
    assert_eq!(
        sample(&text, "watch_together_frames_out_total{type=\"chat\"}"),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, "watch_together_frames_out_total{type=\"playback\"}"),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, "watch_together_frames_out_total{type=\"welcome\"}"),
        Some(2.0)
    );

    let (status, health) = srv.get("/api/health").await;
    assert_eq!(status, 200);
    assert_eq!(health["sessions"], 2);
    assert_eq!(health["rooms"], 1);
}
