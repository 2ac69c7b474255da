//! The server's heartbeat: a silent client is pinged, then given up on.
//!
//! (That a client heard from within the interval gets no ping is a unit test of
//! `ws::session::Beat`: proving an absence here would take a timed wait.)

use std::time::Duration;

use awc::ws::Frame;
use serde_json::json;

use crate::util::TestServer;

#[actix_rt::test]
async fn a_silent_client_is_pinged_and_then_closed_with_4008() {
    let srv = TestServer::with(|c| {
        c.heartbeat_interval = Duration::from_millis(200);
        c.client_timeout = Duration::from_millis(1000);
    })
    .await;
    let (room, _) = srv.create_room(json!({})).await;
    let (mut silent, _) = srv.join(&room, json!({"name": "Silent"})).await;
    let mut pings = 0;
    let code = loop {
        match silent.next_frame().await {
            Frame::Ping(_) => pings += 1,
            Frame::Close(reason) => break reason.map(|r| u16::from(r.code)),
            _ => {}
        }
    };
    assert!(
        pings >= 1,
        "a silent client must be asked for a sign of life"
    );
    assert_eq!(code, Some(4008));
}
