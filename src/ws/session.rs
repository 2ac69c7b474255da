//! `WsSession`: one WebSocket connection.
//!
//! The session decodes frames, answers `ping` with server timestamps itself (so clock sync
//! never waits behind room work), enforces the per-session rate limit, forwards everything
//! else to its room, and writes whatever the room sends back. It runs the WebSocket heartbeat
//! and the join deadline. It holds no room rules.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_http::ws::Item;
use actix_web_actors::ws::{self, CloseReason, ProtocolError};
use bytestring::ByteString;

use crate::clock;
use crate::config::Config;
use crate::error::{RoomError, SessionError, WireError};
use crate::ids::{ParticipantId, RoomId};
use crate::limits::per_ip::SessionSlot;
use crate::limits::TokenBucket;
use crate::metrics::Metrics;
use crate::protocol::{
    decode, ClientMessage, CloseCode, JoinRequest, PingRequest, RoomCommand, ServerMessage,
};
use crate::room::actor::RoomActor;
use crate::room::link::{Outgoing, Report, SessionLink, Shared, Wake, Wakes};
use crate::room::mailbox::{Disconnect, FromMember, Join, SessionEnd};
use crate::room::state::ConnId;
use crate::ws::fragments::{Fragments, Piece, FRAGMENT_BYTES};

/// Rate-limited messages within one window after which the connection is closed (1008).
const ABUSE_WINDOW: Duration = Duration::from_secs(10);
/// Pause between the fragments of a large message, so each is written out before the next
/// is encoded (see `ws::fragments`): 4 KiB per millisecond, far above what a viewer needs.
const FRAGMENT_PACE: Duration = Duration::from_millis(1);

/// Session timing and limits, from the configuration.
#[derive(Clone, Debug)]
pub struct SessionSettings {
    /// Interval of server pings.
    pub heartbeat_interval: Duration,
    /// Silence after which the connection is closed.
    pub client_timeout: Duration,
    /// Time allowed before `join`.
    pub join_timeout: Duration,
    /// Sustained messages per second.
    pub msg_rate: f64,
    /// Burst of messages.
    pub msg_burst: u32,
}

impl SessionSettings {
    /// Settings from the server configuration.
    pub fn from_config(c: &Config) -> Self {
        SessionSettings {
            heartbeat_interval: c.heartbeat_interval,
            client_timeout: c.client_timeout,
            join_timeout: c.join_timeout,
            msg_rate: c.msg_rate,
            msg_burst: c.msg_burst,
        }
    }
}

/// What a heartbeat does, given how long the client has been silent.
#[derive(Debug, PartialEq, Eq)]
enum Beat {
    /// Heard from within the last interval: plainly alive, and a ping would only cost both
    /// sides a frame (a browser reports `status` every second).
    Quiet,
    /// Silent for an interval or more: ask for a sign of life.
    Ping,
    /// Silent past the timeout: give up on it.
    GiveUp,
}

impl Beat {
    fn after(silent: Duration, settings: &SessionSettings) -> Beat {
        if silent > settings.client_timeout {
            Beat::GiveUp
        } else if silent >= settings.heartbeat_interval {
            Beat::Ping
        } else {
            Beat::Quiet
        }
    }
}

/// Where the session is in its life.
#[derive(Debug, Clone, PartialEq)]
enum Membership {
    /// Connected, no `join` yet.
    Anonymous,
    /// `join` sent to the room, waiting for its answer.
    Joining,
    /// A participant.
    Joined(ParticipantId),
}

/// One WebSocket connection.
pub struct WsSession {
    /// Unique id of this connection.
    conn: ConnId,
    /// The room this connection belongs to.
    room: Addr<RoomActor>,
    /// The room's id, for logs.
    room_id: RoomId,
    /// Whether (and as whom) the client has joined.
    membership: Membership,
    /// The queue the room fills and the last sign of life, shared with the room (which
    /// watches the latter when this actor is stuck).
    shared: Arc<Shared>,
    /// Last sign of life, for the session's own heartbeat.
    last_heard: Instant,
    /// Per-session message budget.
    bucket: TokenBucket,
    /// Start of the current abuse window and rate-limited messages in it.
    abuse: (Instant, u32),
    /// Timing and limits.
    settings: SessionSettings,
    /// Server metrics.
    metrics: Arc<Metrics>,
    /// How the session is ending, for the room (`Closed` unless it timed out).
    ended: SessionEnd,
    /// The large message being written in paced fragments, if any.
    fragments: Fragments,
    /// The session's own frames (pongs, errors) that came while a fragmented message was
    /// being written, which nothing may interleave.
    held: VecDeque<ByteString>,
    /// Reused buffer for what is taken from the queue.
    batch: Vec<Outgoing>,
    /// Whether the next fragment step is already scheduled.
    pacing: bool,
    /// The buffering flag last passed on to the room since joining (`None`: none yet).
    /// Reports go to the room through `shared`; only a change of buffering is sent at once.
    forwarded_buffering: Option<bool>,
    /// This connection's place in the per-IP session count, released when the session drops.
    _slot: SessionSlot,
}

impl WsSession {
    /// A session for a connection to `room`.
    pub fn new(
        room: Addr<RoomActor>,
        room_id: RoomId,
        settings: SessionSettings,
        metrics: Arc<Metrics>,
        slot: SessionSlot,
    ) -> Self {
        static NEXT_CONN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let now = clock::now_ms();
        let shared = Arc::new(Shared::default());
        shared.heard(now);
        WsSession {
            conn: NEXT_CONN.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            room,
            room_id,
            membership: Membership::Anonymous,
            shared,
            last_heard: Instant::now(),
            bucket: TokenBucket::new(settings.msg_burst, settings.msg_rate, now),
            fragments: Fragments::default(),
            held: VecDeque::new(),
            batch: Vec::new(),
            abuse: (Instant::now(), 0),
            settings,
            metrics,
            ended: SessionEnd::Closed,
            pacing: false,
            forwarded_buffering: None,
            _slot: slot,
        }
    }

    fn heard(&mut self, now: f64) {
        self.last_heard = Instant::now();
        self.shared.heard(now);
    }

    fn send(&mut self, ctx: &mut ws::WebsocketContext<Self>, msg: &ServerMessage) {
        self.write(ctx, msg.encode());
    }

    /// Writes one of the session's own frames (a pong, an error, the welcome), or holds it
    /// while a fragmented message is unfinished. A large one goes out in fragments too.
    fn write(&mut self, ctx: &mut ws::WebsocketContext<Self>, frame: ByteString) {
        if self.fragments.mid_message() {
            self.held.push_back(frame);
        } else if frame.len() > FRAGMENT_BYTES {
            self.fragments.start(frame);
            self.pump(ctx);
        } else {
            ctx.text(frame);
        }
    }

    /// Writes what may go out now: the next fragment of a large message, or else the held
    /// frames and everything the room queued, up to and including the first fragment of the
    /// next large message. What the room queues meanwhile comes with a new wake.
    fn pump(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if self.pacing {
            return;
        }
        loop {
            if let Some(piece) = self.fragments.next_piece() {
                ctx.write_raw(match piece {
                    Piece::First(bytes) => ws::Message::Continuation(Item::FirstText(bytes)),
                    Piece::Middle(bytes) => ws::Message::Continuation(Item::Continue(bytes)),
                    Piece::Last(bytes) => ws::Message::Continuation(Item::Last(bytes)),
                });
                if self.fragments.mid_message() {
                    self.pacing = true;
                    ctx.run_later(FRAGMENT_PACE, |session, ctx| {
                        session.pacing = false;
                        session.pump(ctx);
                    });
                    return;
                }
                // Finished: what waited behind it may go now.
                continue;
            }
            while let Some(frame) = self.held.pop_front() {
                if frame.len() > FRAGMENT_BYTES {
                    self.fragments.start(frame);
                    break;
                }
                ctx.text(frame);
            }
            if self.fragments.mid_message() {
                continue;
            }
            let mut batch = std::mem::take(&mut self.batch);
            self.shared.take(FRAGMENT_BYTES, &mut batch);
            for item in batch.drain(..) {
                match item {
                    Outgoing::Frame(frame) if frame.len() <= FRAGMENT_BYTES => ctx.text(frame),
                    Outgoing::Frame(frame) => self.fragments.start(frame),
                    Outgoing::Close(code, reason) => {
                        // The room has already let go of this participant.
                        self.membership = Membership::Anonymous;
                        Self::close(ctx, code, reason);
                        return;
                    }
                }
            }
            self.batch = batch;
            if !self.fragments.mid_message() {
                return;
            }
        }
    }

    fn send_error(&mut self, ctx: &mut ws::WebsocketContext<Self>, err: &impl WireError) {
        self.metrics.errors_sent.inc();
        self.send(ctx, &err.to_message());
    }

    fn close(ctx: &mut ws::WebsocketContext<Self>, code: CloseCode, reason: &str) {
        ctx.close(Some(CloseReason {
            code: code.code().into(),
            description: Some(reason.to_owned()),
        }));
        ctx.stop();
    }

    /// Counts a rate-limited message; true when the client has been abusive long enough to
    /// be disconnected.
    fn strike(&mut self) -> bool {
        let (start, count) = &mut self.abuse;
        if start.elapsed() > ABUSE_WINDOW {
            *start = Instant::now();
            *count = 0;
        }
        *count += 1;
        *count > self.settings.msg_burst.max(10)
    }

    /// Counts a data frame (text, binary or a fragment) against the session's message
    /// budget, answering or closing when it is spent; true when the frame may be handled.
    fn admit(&mut self, now: f64, ctx: &mut ws::WebsocketContext<Self>) -> bool {
        self.heard(now);
        if self.bucket.try_take(now) {
            return true;
        }
        self.metrics.reject("message_rate");
        if self.strike() {
            tracing::info!(room = %self.room_id, conn = self.conn, "closing abusive connection");
            Self::close(
                ctx,
                CloseCode::Policy,
                "message rate limit exceeded repeatedly",
            );
        } else {
            let err = SessionError::RateLimited {
                rate: self.settings.msg_rate,
                burst: self.settings.msg_burst,
            };
            self.send_error(ctx, &err);
        }
        false
    }

    fn on_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        let received = Instant::now();
        let t1 = clock::now_ms();
        if !self.admit(t1, ctx) {
            return;
        }
        let msg = match decode(text) {
            Ok(msg) => msg,
            Err(err) => {
                self.metrics.message_in("invalid");
                self.send_error(ctx, &err);
                return;
            }
        };
        self.metrics.message_in(msg.kind());
        match msg {
            ClientMessage::Ping(PingRequest { t0 }) => {
                let pong = ServerMessage::Pong {
                    t0,
                    t1,
                    t2: clock::now_ms(),
                };
                self.send(ctx, &pong);
            }
            ClientMessage::Join(request) => self.join(request, ctx),
            ClientMessage::Room(RoomCommand::Status {
                rtt_ms,
                drift_ms,
                buffering,
            }) if matches!(self.membership, Membership::Joined(_))
                && self.forwarded_buffering == Some(buffering) =>
            {
                // Nothing the room must act on now: it collects the report on its tick.
                self.metrics.client_report(rtt_ms, drift_ms);
                self.shared.report(Report { rtt_ms, drift_ms });
            }
            ClientMessage::Room(command) => match &self.membership {
                Membership::Joined(id) => {
                    if let RoomCommand::Status {
                        rtt_ms,
                        drift_ms,
                        buffering,
                    } = command
                    {
                        // A change of buffering (or the first report since joining) may
                        // put the room on hold or end one: the room hears it at once.
                        self.metrics.client_report(rtt_ms, drift_ms);
                        self.forwarded_buffering = Some(buffering);
                    }
                    self.room.do_send(FromMember {
                        id: id.clone(),
                        conn: self.conn,
                        command,
                        received,
                    });
                }
                _ => self.send_error(ctx, &SessionError::NotJoined),
            },
        }
    }

    fn join(&mut self, request: JoinRequest, ctx: &mut ws::WebsocketContext<Self>) {
        if self.membership != Membership::Anonymous {
            self.send_error(ctx, &SessionError::AlreadyJoined);
            return;
        }
        self.membership = Membership::Joining;
        let join = Join {
            conn: self.conn,
            link: SessionLink::new(Arc::clone(&self.shared)),
            request,
        };
        // `wait` holds back the session's other events until the room answers: nothing the
        // client sends after `join` overtakes it, and the welcome is written before any
        // broadcast the room queued for this session meanwhile.
        self.room
            .send(join)
            .into_actor(self)
            .map(|result, session, ctx| match result {
                Ok(Ok(admitted)) => {
                    tracing::debug!(room = %session.room_id, participant = %admitted.id, "joined");
                    session.membership = Membership::Joined(admitted.id);
                    // The room may remember this member buffering from an earlier connection.
                    session.forwarded_buffering = None;
                    session.write(ctx, admitted.welcome);
                }
                Ok(Err(err)) => {
                    session.membership = Membership::Anonymous;
                    let full = matches!(err, RoomError::RoomFull(_));
                    session.send_error(ctx, &err);
                    if full {
                        Self::close(ctx, CloseCode::Policy, "room is full");
                    }
                }
                Err(_) => {
                    session.send_error(ctx, &SessionError::RoomGone);
                    Self::close(ctx, CloseCode::RoomClosed, "room closed");
                }
            })
            .wait(ctx);
    }
}

impl Actor for WsSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.metrics.sessions.inc();
        // Rooms queue frames in `shared` and wake the session through it; the mailbox
        // carries only join answers.
        ctx.set_mailbox_capacity(16);
        ctx.add_stream(Wakes(Arc::clone(&self.shared)));
        ctx.run_interval(self.settings.heartbeat_interval, |session, ctx| {
            match Beat::after(session.last_heard.elapsed(), &session.settings) {
                Beat::Quiet => {}
                Beat::Ping => ctx.ping(b""),
                Beat::GiveUp => {
                    tracing::debug!(room = %session.room_id, conn = session.conn, "heartbeat timeout");
                    session.ended = SessionEnd::TimedOut;
                    Self::close(ctx, CloseCode::Timeout, "no sign of life");
                }
            }
        });
        ctx.run_later(self.settings.join_timeout, |session, ctx| {
            if !matches!(session.membership, Membership::Joined(_)) {
                Self::close(ctx, CloseCode::Policy, "no join within the time limit");
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.metrics.sessions.dec();
        if let Membership::Joined(id) = &self.membership {
            self.room.do_send(Disconnect {
                id: id.clone(),
                conn: self.conn,
                ended: self.ended,
            });
        }
    }
}

impl StreamHandler<Wake> for WsSession {
    fn handle(&mut self, _wake: Wake, ctx: &mut Self::Context) {
        self.pump(ctx);
    }
}

impl StreamHandler<Result<ws::Message, ProtocolError>> for WsSession {
    fn handle(&mut self, item: Result<ws::Message, ProtocolError>, ctx: &mut Self::Context) {
        match item {
            Ok(ws::Message::Text(text)) => self.on_text(&text, ctx),
            Ok(ws::Message::Ping(payload)) => {
                self.heard(clock::now_ms());
                ctx.pong(&payload);
            }
            Ok(ws::Message::Pong(_)) => self.heard(clock::now_ms()),
            Ok(ws::Message::Binary(_)) | Ok(ws::Message::Continuation(_)) => {
                // Refused, but only after paying for it like any other frame: answering
                // every one for free would make the server write as fast as a client sends.
                if self.admit(clock::now_ms(), ctx) {
                    self.send_error(ctx, &SessionError::BinaryUnsupported);
                }
            }
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Ok(ws::Message::Nop) => {}
            Err(ProtocolError::Overflow) => {
                self.metrics.reject("frame_size");
                Self::close(ctx, CloseCode::TooBig, "frame too big");
            }
            Err(ProtocolError::Io(err)) if is_invalid_utf8(&err) => {
                Self::close(ctx, CloseCode::InvalidData, "text frame is not valid UTF-8");
            }
            Err(err) => {
                tracing::debug!(room = %self.room_id, conn = self.conn, error = %err, "protocol error");
                Self::close(ctx, CloseCode::Policy, "WebSocket protocol error");
            }
        }
    }
}

/// Whether a stream error is actix-web-actors' report of a text frame that is not UTF-8.
///
/// It wraps the `Utf8Error` in an `io::Error` of kind `Other` holding only its message, so
/// the message is all there is to recognise (the unit test below pins the wording).
fn is_invalid_utf8(err: &std::io::Error) -> bool {
    err.kind() == std::io::ErrorKind::Other && err.to_string().contains("utf-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_is_recognised_as_actix_reports_it() {
        use actix_web::web::Bytes;
        let (invalid, incomplete): (&[u8], &[u8]) = (b"a\xE0\x80", b"a\xE0");
        for bytes in [invalid, incomplete] {
            // What actix-web-actors' WsStream builds from a failed `ByteString::try_from`.
            let e = ByteString::try_from(Bytes::copy_from_slice(bytes)).unwrap_err();
            let wrapped = std::io::Error::other(format!("{e}"));
            assert!(is_invalid_utf8(&wrapped), "{wrapped}");
        }
        let other = std::io::Error::other("payload reached EOF");
        assert!(!is_invalid_utf8(&other));
    }

    fn settings() -> SessionSettings {
        SessionSettings {
            heartbeat_interval: Duration::from_secs(5),
            client_timeout: Duration::from_secs(15),
            join_timeout: Duration::from_secs(10),
            msg_rate: 20.0,
            msg_burst: 40,
        }
    }

    #[test]
    fn a_client_heard_within_the_interval_is_not_pinged() {
        let s = settings();
        assert_eq!(Beat::after(Duration::ZERO, &s), Beat::Quiet);
        assert_eq!(Beat::after(Duration::from_millis(4999), &s), Beat::Quiet);
    }

    #[test]
    fn a_silent_client_is_pinged_until_the_timeout_then_given_up() {
        let s = settings();
        assert_eq!(Beat::after(Duration::from_secs(5), &s), Beat::Ping);
        assert_eq!(Beat::after(Duration::from_secs(15), &s), Beat::Ping);
        assert_eq!(Beat::after(Duration::from_millis(15_001), &s), Beat::GiveUp);
    }
}
