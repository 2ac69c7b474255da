//! Shared helpers: start the real server on 127.0.0.1:0, talk to it over real HTTP and
//! WebSocket connections.
//!
//! Waiting is always for an event (a frame, a close, a condition on server state) with a
//! generous upper bound that only turns a hang into a failure; nothing sleeps and hopes.

use std::time::Duration;

use actix_http::ws::{Item, ProtocolError};
use actix_web::web;
use awc::ws::{self, Frame};
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use watch_together::app::AppState;
use watch_together::{Config, ShutdownHandle};

/// Upper bound for any single wait; far above what a loaded 2-core machine needs.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A server started for one test.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The server's shared state (metrics, rooms).
    pub state: web::Data<AppState>,
    /// Stops it gracefully (tests of shutdown use it).
    #[allow(dead_code)]
    pub shutdown: ShutdownHandle,
}

/// Test defaults: generous limits, short timers where tests wait for them.
pub fn test_config() -> Config {
    let mut c = Config::defaults();
    c.port = 0;
    c.workers = Some(2);
    // Rooms in memory unless a test asks for a store (tests/durability.rs).
    c.ephemeral = true;
    c
}

/// Lifts the per-session message and chat limits, for tests that send floods on purpose.
pub fn unthrottled(c: &mut Config) {
    c.msg_rate = 10_000.0;
    c.msg_burst = 10_000;
    c.chat_rate = 10_000.0;
    c.chat_burst = 10_000;
}

impl TestServer {
    /// Starts a server with the test defaults.
    pub async fn start() -> Self {
        Self::with(|_| {}).await
    }

    /// Starts a server with the test defaults adjusted by `adjust`.
    pub async fn with(adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = test_config();
        adjust(&mut config);
        let server = watch_together::start(config).await.expect("server starts");
        let base = format!("http://{}", server.addr);
        let state = server.state.clone();
        let shutdown = server.shutdown_handle();
        actix_rt::spawn(server.run());
        TestServer {
            base,
            state,
            shutdown,
        }
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &Config {
        &self.state.config
    }

    /// `ws://` URL of a room's socket.
    pub fn ws_url(&self, room_id: &str) -> String {
        format!(
            "{}/api/rooms/{room_id}/ws",
            self.base.replacen("http", "ws", 1)
        )
    }

    /// Creates a room; returns `(room_id, host_token)`.
    pub async fn create_room(&self, body: Value) -> (String, String) {
        let (status, v) = self.post("/api/rooms", body).await;
        assert_eq!(status, 201, "create room: {v}");
        (
            v["room_id"].as_str().expect("room_id").to_owned(),
            v["host_token"].as_str().expect("host_token").to_owned(),
        )
    }

    /// POSTs JSON; returns status and parsed body.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let mut resp = awc::Client::new()
            .post(format!("{}{path}", self.base))
            .send_json(&body)
            .await
            .expect("POST");
        let bytes = resp.body().await.expect("body");
        (
            resp.status().as_u16(),
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// GETs a path; returns status and parsed JSON body (Null if not JSON).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let (status, bytes) = self.get_raw(path, &[]).await;
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// GETs a path with extra headers; returns status and raw body.
    pub async fn get_raw(&self, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<u8>) {
        let mut req = awc::Client::new().get(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.insert_header((*k, *v));
        }
        let mut resp = req.send().await.expect("GET");
        let bytes = resp.body().limit(8 << 20).await.expect("body");
        (resp.status().as_u16(), bytes.to_vec())
    }

    /// Sends `request` (a whole HTTP/1.1 request, headers and body) on a new connection and
    /// reads the answer until the server closes; returns status, head and body. For requests
    /// that clients normally cannot make (a foreign `Host`, odd content types).
    pub async fn raw(&self, request: &str) -> RawResponse {
        let mut stream = tokio::net::TcpStream::connect(self.addr())
            .await
            .expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        read_response(&mut stream).await
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.base
            .trim_start_matches("http://")
            .parse()
            .expect("base is http://IP:PORT")
    }

    /// Connects a WebSocket to a room (no join yet).
    pub async fn connect(&self, room_id: &str) -> Client {
        self.try_connect(room_id, &[])
            .await
            .unwrap_or_else(|status| panic!("WebSocket refused with {status}"))
    }

    /// Connects with extra headers (a name given twice makes two header lines); `Err(status)`
    /// when the upgrade is refused.
    pub async fn try_connect(
        &self,
        room_id: &str,
        headers: &[(&str, &str)],
    ) -> Result<Client, u16> {
        let mut req = awc::Client::builder()
            .timeout(PATIENCE)
            .finish()
            .ws(self.ws_url(room_id))
            .max_frame_size(4 << 20);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        match req.connect().await {
            Ok((_, framed)) => Ok(Client::from_framed(framed)),
            Err(awc::error::WsClientError::InvalidResponseStatus(status)) => Err(status.as_u16()),
            Err(e) => panic!("WebSocket connect failed: {e}"),
        }
    }

    /// Connects and joins; returns the client and its `welcome`.
    pub async fn join(&self, room_id: &str, join: Value) -> (Client, Value) {
        let mut client = self.connect(room_id).await;
        client.send(json!({"type": "join"}).merge(join)).await;
        let welcome = client.expect("welcome").await;
        (client, welcome)
    }

    /// Current value of a metric line (e.g. `watch_together_sessions`), 0 if absent.
    pub fn metric(&self, name: &str) -> f64 {
        self.state
            .metrics
            .render()
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }

    /// Waits until `condition` holds on the server, checking after each event loop turn.
    pub async fn wait_until(&self, what: &str, condition: impl Fn(&TestServer) -> bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !condition(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// An HTTP answer read off a raw connection.
#[derive(Debug)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// The status line and headers, as sent.
    pub head: String,
    /// The body.
    pub body: String,
}

impl RawResponse {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Reads one HTTP response from `stream` until the server closes the connection (the
/// requests sent this way ask for `Connection: close`).
pub async fn read_response(stream: &mut tokio::net::TcpStream) -> RawResponse {
    let mut bytes = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut bytes))
        .await
        .expect("a response in time")
        .expect("read");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    RawResponse {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// Merging of JSON objects, for building join messages.
pub trait Merge {
    /// `self` with `other`'s fields added.
    fn merge(self, other: Value) -> Value;
}

impl Merge for Value {
    fn merge(mut self, other: Value) -> Value {
        if let (Some(a), Value::Object(b)) = (self.as_object_mut(), other) {
            a.extend(b);
        }
        self
    }
}

/// What came off a socket.
#[derive(Debug)]
pub enum Event {
    /// A JSON text frame.
    Json(Value),
    /// A close frame, with its code.
    Closed(Option<u16>),
}

/// A WebSocket client.
pub struct Client {
    /// The connection.
    framed: actix_codec::Framed<awc::BoxedSocket, ws::Codec>,
    /// Every JSON message received so far, in order (for asserting what did not happen).
    pub seen: Vec<Value>,
    /// A fragmented text message being reassembled (the server fragments large ones).
    partial: Option<Vec<u8>>,
    /// How many messages arrived in fragments.
    pub fragmented: usize,
}

impl Client {
    /// Wraps an established WebSocket connection.
    pub fn from_framed(framed: actix_codec::Framed<awc::BoxedSocket, ws::Codec>) -> Self {
        Client {
            framed,
            seen: Vec::new(),
            partial: None,
            fragmented: 0,
        }
    }

    /// Sends a JSON message.
    pub async fn send(&mut self, msg: Value) {
        self.send_text(&msg.to_string()).await;
    }

    /// Queues a JSON message without flushing: several go out in one write with the next
    /// [`Client::flush`], for tests that need a tight burst.
    pub async fn feed(&mut self, msg: Value) {
        self.framed
            .feed(ws::Message::Text(msg.to_string().into()))
            .await
            .expect("feed");
    }

    /// Writes out what [`Client::feed`] queued.
    pub async fn flush(&mut self) {
        self.framed.flush().await.expect("flush");
    }

    /// Sends a raw text frame.
    pub async fn send_text(&mut self, text: &str) {
        self.framed
            .send(ws::Message::Text(text.to_owned().into()))
            .await
            .expect("send");
    }

    /// Sends a raw WebSocket message.
    pub async fn send_raw(&mut self, msg: ws::Message) {
        self.framed.send(msg).await.expect("send");
    }

    /// The next JSON message or close, answering pings on the way. The patience covers the
    /// whole wait: the server's heartbeat pings do not extend it.
    pub async fn next_event(&mut self) -> Event {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.framed.next())
                .await
                .expect("timed out waiting for a message");
            let text = match frame {
                Some(Ok(Frame::Text(bytes))) => {
                    assert!(
                        self.partial.is_none(),
                        "text frame inside a fragmented message"
                    );
                    Some(bytes.to_vec())
                }
                Some(Ok(Frame::Continuation(item))) => match item {
                    Item::FirstText(b) => {
                        assert!(
                            self.partial.is_none(),
                            "two fragmented messages interleaved"
                        );
                        self.partial = Some(b.to_vec());
                        None
                    }
                    Item::Continue(b) => {
                        let partial = self.partial.as_mut().expect("continuation without a start");
                        partial.extend_from_slice(&b);
                        None
                    }
                    Item::Last(b) => {
                        let mut whole = self.partial.take().expect("last fragment without a start");
                        whole.extend_from_slice(&b);
                        self.fragmented += 1;
                        Some(whole)
                    }
                    Item::FirstBinary(_) => panic!("the server sent binary"),
                },
                other => {
                    if let Some(event) = self.control_frame(other).await {
                        return event;
                    }
                    None
                }
            };
            if let Some(bytes) = text {
                let v: Value = serde_json::from_slice(&bytes).expect("server sent JSON");
                self.seen.push(v.clone());
                return Event::Json(v);
            }
        }
    }

    /// The next frame exactly as it came, answering nothing: for tests of the heartbeat.
    pub async fn next_frame(&mut self) -> Frame {
        tokio::time::timeout(PATIENCE, self.framed.next())
            .await
            .expect("timed out waiting for a frame")
            .expect("the stream ended")
            .expect("protocol error")
    }

    /// Handles a non-text frame: answers pings, reports a close or the end of the stream.
    async fn control_frame(
        &mut self,
        frame: Option<Result<Frame, ProtocolError>>,
    ) -> Option<Event> {
        match frame {
            Some(Ok(Frame::Ping(p))) => {
                let _ = self.framed.send(ws::Message::Pong(p)).await;
                None
            }
            Some(Ok(Frame::Close(reason))) => Some(Event::Closed(reason.map(|r| r.code.into()))),
            Some(Ok(_)) => None,
            // The connection broke without a close frame (a killed server resets it).
            Some(Err(ProtocolError::Io(_))) => Some(Event::Closed(None)),
            Some(Err(e)) => panic!("protocol error: {e}"),
            None => Some(Event::Closed(None)),
        }
    }

    /// Takes in whatever has already arrived, without waiting. A client that only sends must
    /// still read, or the server's kernel eventually gives up on its full socket.
    pub fn drain_ready(&mut self) {
        while let Some(Event::Json(_)) = self.next_event().now_or_never() {}
    }

    /// The next JSON message (panics on close).
    pub async fn next(&mut self) -> Value {
        match self.next_event().await {
            Event::Json(v) => v,
            Event::Closed(code) => panic!("socket closed ({code:?}) while a message was expected"),
        }
    }

    /// Skips messages until one of `kind` arrives.
    pub async fn expect(&mut self, kind: &str) -> Value {
        let search = async {
            loop {
                let v = self.next().await;
                if v["type"] == kind {
                    return v;
                }
            }
        };
        tokio::time::timeout(PATIENCE, search)
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for a `{kind}` message"))
    }

    /// Skips messages until an `error` arrives; returns its code.
    pub async fn expect_error(&mut self) -> String {
        let v = self.expect("error").await;
        assert!(
            v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "error without message: {v}"
        );
        v["code"].as_str().expect("error code").to_owned()
    }

    /// Skips messages until the socket closes; returns the close code.
    pub async fn expect_close(&mut self) -> Option<u16> {
        loop {
            if let Event::Closed(code) = self.next_event().await {
                return code;
            }
        }
    }

    /// A ping/pong round trip: returns the pong. Also proves the session still works.
    pub async fn ping(&mut self, t0: f64) -> Value {
        self.send(json!({"type": "ping", "t0": t0})).await;
        self.expect("pong").await
    }

    /// Closes the connection cleanly.
    pub async fn close(mut self) {
        let _ = self.framed.send(ws::Message::Close(None)).await;
        // Wait for the server's close so the room has seen it before the test goes on.
        let _ = tokio::time::timeout(PATIENCE, async {
            while let Some(frame) = self.framed.next().await {
                if matches!(frame, Ok(Frame::Close(_)) | Err(_)) {
                    break;
                }
            }
        })
        .await;
    }

    /// Waits until the server's clock (read through pongs) has passed `server_ms`.
    ///
    /// Each round sleeps for the remaining difference and then asks the server again, so
    /// it ends on the server's word, in a couple of pings (well within the rate limit).
    pub async fn wait_for_server_time(&mut self, server_ms: f64) {
        loop {
            let now = self.ping(0.0).await["t2"].as_f64().expect("t2");
            if now >= server_ms {
                return;
            }
            tokio::time::sleep(Duration::from_secs_f64((server_ms - now) / 1000.0)).await;
        }
    }
}

/// Position of a `Playback` at server time `t`, by the documented formula.
pub fn position_at(playback: &Value, t: f64) -> f64 {
    let position = playback["position"].as_f64().expect("position");
    if playback["paused"].as_bool().expect("paused") {
        return position;
    }
    let anchor = playback["anchor"].as_f64().expect("anchor");
    let rate = playback["rate"].as_f64().expect("rate");
    position + (t - anchor).max(0.0) / 1000.0 * rate
}
