//! One simulated viewer: a WebSocket session that behaves like the browser app.
//!
//! It connects, joins, syncs its clock with a burst of `ping`s and then one every few seconds,
//! reports `status` once a second, reads every frame (the WebSocket library answers the
//! server's pings), and, in the hold phase, sends controls (the host) or chat. Timestamps the
//! bench needs to measure latency travel inside the messages themselves: a control's
//! `position` and a chat's text carry the send time in microseconds since the run's time zero,
//! so any member can compute the latency of what it receives without shared lookup tables.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{sleep, sleep_until, timeout, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{client_async, WebSocketStream};

use super::plan::Plan;
use super::stats::{Phase, RoomTally, Stats};

/// Longest wait for TCP connect plus the WebSocket upgrade.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for `welcome` after `join`.
const WELCOME_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the server's side of the closing handshake.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Clock-sync pings sent right after joining, like the app does to get a first estimate.
const PING_BURST: u32 = 5;
/// Spacing of the burst pings.
const PING_BURST_GAP: Duration = Duration::from_millis(100);
/// Spacing of pings after the burst.
const PING_INTERVAL: Duration = Duration::from_secs(5);
/// The app reports status about once a second.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);
/// How long a simulated buffering spell lasts.
const BUFFERING_SPELL: Duration = Duration::from_secs(2);
/// Upper bound on a churning member's lives (keeps the loop bounded whatever the options).
const MAX_LIVES: u32 = 100_000;
/// Latencies beyond this mean the timestamp was not one of ours.
const MAX_PLAUSIBLE_US: i64 = 600_000_000;

/// What every session shares: the plan, the server, the rooms, the counters.
pub struct Ctx {
    /// The run's plan.
    pub plan: Plan,
    /// The server's address.
    pub addr: SocketAddr,
    /// The rooms, indexed like the plan's rooms.
    pub rooms: Vec<RoomCtx>,
    /// Where measurements go (also held by the driver, to report after the sessions end).
    pub stats: Arc<Stats>,
}

/// One room as the sessions need it.
pub struct RoomCtx {
    /// Room id, for the WebSocket path.
    pub id: String,
    /// Given by member 0 in `join` to become host.
    pub host_token: String,
    /// Highest seq and chat id seen by any member, to find members left behind at the end.
    pub tally: RoomTally,
}

/// Small, fast, deterministic pseudo-random numbers (splitmix64): spreads timers and
/// drift values without a dependency.
struct Rng(
    /// The generator's state, advanced by a constant on every draw.
    u64,
);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform duration in [lo, hi).
    fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        lo + (hi.saturating_sub(lo)).mul_f64(self.unit())
    }
}

/// How one connection ended.
enum End {
    /// The run is over (or never reached this session).
    Stop,
    /// A churning member left on purpose and should come back.
    Leave,
    /// Something went wrong; already counted.
    Failed,
}

/// Runs member `member` of room `room` from `start` until the run ends, rejoining as a new
/// participant after each planned departure when churning.
pub async fn member(
    ctx: Arc<Ctx>,
    room: usize,
    member: usize,
    start: Instant,
    mut phase: watch::Receiver<Phase>,
) {
    sleep_until(start).await;
    if *phase.borrow() >= Phase::Drain {
        // Admission was abandoned before this session's turn.
        ctx.stats.admit_failed.fetch_add(1, Relaxed);
        return;
    }
    let mut rng = Rng::new((room as u64) << 32 | member as u64);
    let mut first = true;
    for _ in 0..MAX_LIVES {
        let end = life(&ctx, room, member, first, &mut rng, &mut phase).await;
        first = false;
        match end {
            End::Leave => {
                // A pause before coming back, as a person reloading or returning would take.
                sleep(rng.between(Duration::from_millis(200), Duration::from_millis(1000))).await;
                if *phase.borrow() != Phase::Hold {
                    break;
                }
            }
            End::Stop | End::Failed => break,
        }
    }
}

/// One connection of a member: connect, join, run until told to stop or to leave.
async fn life(
    ctx: &Ctx,
    room_ix: usize,
    member_ix: usize,
    first: bool,
    rng: &mut Rng,
    phase: &mut watch::Receiver<Phase>,
) -> End {
    let stats = &ctx.stats;
    let room = &ctx.rooms[room_ix];
    let began = Instant::now();
    let fail_admission = || {
        if first {
            stats.admit_failed.fetch_add(1, Relaxed);
        }
    };
    let ws = match connect(ctx.addr, &room.id).await {
        Ok((ws, node)) => {
            if let Some(node) = node {
                stats.served(&room.tally, &node);
            }
            ws
        }
        Err(e) => {
            stats.problem(&stats.connect_failures, || {
                format!("connect room {room_ix} member {member_ix}: {e}")
            });
            fail_admission();
            return End::Failed;
        }
    };
    let is_host = member_ix == 0;
    let mut s = Session {
        stats,
        plan: &ctx.plan,
        tally: &room.tally,
        ws,
        me: String::new(),
        is_host,
        last_seq: 0,
        last_chat: 0,
        rtt_ms: 0.0,
        buffering_until: None,
        reported_buffering: false,
        controls: 0,
        label: member_ix,
    };
    let join = if is_host {
        serde_json::json!({"type": "join", "name": format!("host {room_ix}"), "host_token": room.host_token})
    } else {
        serde_json::json!({"type": "join", "name": format!("viewer {room_ix}-{member_ix}")})
    };
    if let Err(e) = s.send(join.to_string()).await {
        stats.problem(&stats.join_failures, || format!("sending join: {e}"));
        fail_admission();
        return End::Failed;
    }
    match timeout(WELCOME_TIMEOUT, s.await_welcome()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            stats.problem(&stats.join_failures, || {
                format!("join room {room_ix} member {member_ix}: {e}")
            });
            fail_admission();
            return End::Failed;
        }
        Err(_) => {
            stats.problem(&stats.join_failures, || {
                format!(
                    "join room {room_ix} member {member_ix}: no welcome within {WELCOME_TIMEOUT:?}"
                )
            });
            fail_admission();
            return End::Failed;
        }
    }
    let took = began.elapsed().as_micros() as u64;
    if first {
        stats.join.record(took);
        stats.admitted.fetch_add(1, Relaxed);
        stats.last_admit_us.fetch_max(stats.now_us(), Relaxed);
    } else {
        stats.rejoin.record(took);
    }
    s.run(rng, phase).await
}

/// TCP connect and WebSocket upgrade (no Origin header, as a non-browser client); with the
/// node that accepted it, from its `X-Served-By` (behind a balancer, one of several).
async fn connect(
    addr: SocketAddr,
    room: &str,
) -> Result<(WebSocketStream<TcpStream>, Option<String>), String> {
    let attempt = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("TCP: {e}"))?;
        // Like browsers: small frames leave at once.
        tcp.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
        let url = format!("ws://{addr}/api/rooms/{room}/ws");
        let (ws, response) = client_async(url, tcp)
            .await
            .map_err(|e| format!("upgrade: {e}"))?;
        let node = response
            .headers()
            .get("x-served-by")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok((ws, node))
    };
    timeout(CONNECT_TIMEOUT, attempt)
        .await
        .map_err(|_| format!("no connection within {CONNECT_TIMEOUT:?}"))?
}

/// A joined connection and what it remembers between frames.
struct Session<'a> {
    /// Where measurements go.
    stats: &'a Stats,
    /// Rates and amplitudes.
    plan: &'a Plan,
    /// The room's high-water marks.
    tally: &'a RoomTally,
    /// The connection.
    ws: WebSocketStream<TcpStream>,
    /// Own participant id, to tell own echoes from others' messages.
    me: String,
    /// Whether this session is its room's host (sends the controls).
    is_host: bool,
    /// Last playback seq seen, to detect missed updates.
    last_seq: u64,
    /// Last chat id seen, to detect missed messages.
    last_chat: u64,
    /// Latest ping round trip, reported in `status` like the app does.
    rtt_ms: f64,
    /// End of the current simulated buffering spell.
    buffering_until: Option<Instant>,
    /// The buffering state last reported, to notice flips.
    reported_buffering: bool,
    /// Controls sent, to cycle through play/seek/seek/pause.
    controls: u64,
    /// Member index, for chat text.
    label: usize,
}

/// The `type` of a server frame, borrowed.
#[derive(Deserialize)]
struct Head<'a> {
    /// The tag.
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
}

/// `{id}` of a participant reference.
#[derive(Deserialize)]
struct IdRef<'a> {
    /// Participant id.
    #[serde(borrow)]
    id: Cow<'a, str>,
}

/// A chat id.
#[derive(Deserialize)]
struct ChatId {
    /// Per-room increasing id.
    id: u64,
}

/// The playback fields the bench uses.
#[derive(Deserialize)]
struct PlaybackLite {
    /// Carries the host's send time.
    position: f64,
    /// Detects gaps.
    seq: u64,
    /// After a pause: the room's clock when it applied it.
    anchor: f64,
    /// Tells pauses (whose anchor is "now" at the room) from scheduled starts.
    paused: bool,
}

/// The parts of `welcome` the bench uses.
#[derive(Deserialize)]
struct WelcomeFrame<'a> {
    /// Own id.
    #[serde(borrow)]
    you: IdRef<'a>,
    /// Starting seq.
    playback: PlaybackLite,
    /// Starting chat id.
    chat: Vec<ChatId>,
}

/// `playback`.
#[derive(Deserialize)]
struct PlaybackFrame<'a> {
    /// The new clock.
    playback: PlaybackLite,
    /// Who changed it.
    #[serde(borrow)]
    by: Option<Cow<'a, str>>,
}

/// The chat message inside `chat`.
#[derive(Deserialize)]
struct ChatLite<'a> {
    /// Per-room id.
    id: u64,
    /// Sender.
    #[serde(borrow)]
    from: IdRef<'a>,
    /// Starts with the send time.
    #[serde(borrow)]
    text: Cow<'a, str>,
}

/// `chat`.
#[derive(Deserialize)]
struct ChatFrame<'a> {
    /// The message.
    #[serde(borrow)]
    message: ChatLite<'a>,
}

/// The entry fields the host needs to time buffering flips.
#[derive(Deserialize)]
struct EntryLite<'a> {
    /// Participant id.
    #[serde(borrow)]
    id: Cow<'a, str>,
    /// Reported buffering state (left out when false).
    #[serde(default)]
    buffering: bool,
}

/// `presence`, as far as the host reads it.
#[derive(Deserialize)]
struct PresenceFrame<'a> {
    /// Changed entries.
    #[serde(borrow)]
    participants: Vec<EntryLite<'a>>,
}

/// `pong`.
#[derive(Deserialize)]
struct PongFrame {
    /// Our send time (ms since time zero).
    t0: f64,
    /// Server receive time (server ms).
    t1: f64,
    /// Server send time (server ms).
    t2: f64,
}

/// `error`.
#[derive(Deserialize)]
struct ErrorFrame<'a> {
    /// Error code.
    #[serde(borrow)]
    code: Cow<'a, str>,
    /// Explanation.
    #[serde(borrow)]
    message: Cow<'a, str>,
}

/// The `type` of a frame: read straight from the front when the server puts it first (it
/// does, being serde's internally tagged encoding), else from a full parse.
fn frame_type(text: &str) -> Option<Cow<'_, str>> {
    if let Some(rest) = text.strip_prefix("{\"type\":\"") {
        if let Some(end) = rest.find('"') {
            return Some(Cow::Borrowed(&rest[..end]));
        }
    }
    serde_json::from_str::<Head>(text).ok().map(|h| h.kind)
}

impl Session<'_> {
    /// Reads frames until `welcome` (an `error` first means the join was refused).
    async fn await_welcome(&mut self) -> Result<(), String> {
        loop {
            let text = match self.ws.next().await {
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(Message::Close(c))) => return Err(format!("closed: {c:?}")),
                Some(Ok(other)) => {
                    self.on_other(&other);
                    continue;
                }
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("connection ended".into()),
            };
            let traffic = self.stats.traffic_now();
            traffic.bytes.fetch_add(text.len() as u64, Relaxed);
            traffic.frames.fetch_add(1, Relaxed);
            match frame_type(&text).as_deref() {
                Some("welcome") => {
                    traffic.welcome_bytes.fetch_add(text.len() as u64, Relaxed);
                    let w: WelcomeFrame =
                        serde_json::from_str(&text).map_err(|e| format!("bad welcome: {e}"))?;
                    self.me = w.you.id.into_owned();
                    self.last_seq = w.playback.seq;
                    self.last_chat = w.chat.last().map_or(0, |c| c.id);
                    self.tally.max_seq.fetch_max(self.last_seq, Relaxed);
                    self.tally.max_chat_id.fetch_max(self.last_chat, Relaxed);
                    return Ok(());
                }
                Some("error") => {
                    let e: Option<ErrorFrame> = serde_json::from_str(&text).ok();
                    return Err(e.map_or(text.clone(), |e| format!("{}: {}", e.code, e.message)));
                }
                // Anything else before welcome would be a protocol surprise; the main loop
                // judges it the same way.
                _ => self.on_text(&text, Instant::now()),
            }
        }
    }

    /// Handles one text frame after joining.
    fn on_text(&mut self, text: &str, arrived: Instant) {
        let stats = self.stats;
        let traffic = stats.traffic_now();
        traffic.bytes.fetch_add(text.len() as u64, Relaxed);
        traffic.frames.fetch_add(1, Relaxed);
        let now_us = arrived.into_std().duration_since(stats.epoch).as_micros() as i64;
        let kind = frame_type(text);
        if kind.as_deref() == Some("playback") {
            traffic.playback_bytes.fetch_add(text.len() as u64, Relaxed);
        }
        match kind.as_deref() {
            Some("playback") => match serde_json::from_str::<PlaybackFrame>(text) {
                Ok(p) => {
                    let seq = p.playback.seq;
                    let gap = advance(&mut self.last_seq, seq);
                    if gap > 0 {
                        stats.playback_drops.fetch_add(gap - 1, Relaxed);
                        stats.problem(&stats.playback_drops, || {
                            format!("member {} missed {gap} playback updates", self.label)
                        });
                    }
                    self.tally.max_seq.fetch_max(seq, Relaxed);
                    // A pause is stamped with the room's clock when applied: it splits the
                    // latency into the way to the room and the way out to the members.
                    if let (true, Some(offset)) = (p.playback.paused, stats.clock_offset_ms()) {
                        let applied_us = ((p.playback.anchor - offset) * 1000.0) as i64;
                        if p.by.as_deref() == Some(self.me.as_str()) {
                            let sent_us = (p.playback.position * 1e6).round() as i64;
                            stats
                                .control_up
                                .record((applied_us - sent_us).max(0) as u64);
                        } else {
                            stats
                                .control_down
                                .record((now_us - applied_us).max(0) as u64);
                        }
                    }
                    if p.by.as_deref().is_some_and(|by| by != self.me) {
                        let sent_us = (p.playback.position * 1e6).round() as i64;
                        let latency = now_us - sent_us;
                        if (0..MAX_PLAUSIBLE_US).contains(&latency) {
                            stats.fanout.record(latency as u64);
                        } else {
                            stats.problem(&stats.unmatched, || {
                                format!(
                                    "playback position {} is no bench timestamp",
                                    p.playback.position
                                )
                            });
                        }
                    }
                }
                Err(e) => stats.problem(&stats.bad_frames, || format!("bad playback: {e}")),
            },
            Some("chat") => match serde_json::from_str::<ChatFrame>(text) {
                Ok(c) => {
                    let id = c.message.id;
                    let gap = advance(&mut self.last_chat, id);
                    if gap > 0 {
                        stats.chat_drops.fetch_add(gap - 1, Relaxed);
                        stats.problem(&stats.chat_drops, || {
                            format!("member {} missed {gap} chat messages", self.label)
                        });
                    }
                    self.tally.max_chat_id.fetch_max(id, Relaxed);
                    if c.message.from.id != self.me {
                        let sent = c
                            .message
                            .text
                            .split(' ')
                            .next()
                            .and_then(|t| t.parse::<i64>().ok());
                        match sent.map(|s| now_us - s) {
                            Some(l) if (0..MAX_PLAUSIBLE_US).contains(&l) => {
                                stats.chat.record(l as u64)
                            }
                            _ => stats.problem(&stats.unmatched, || {
                                format!("chat text {:?} carries no bench timestamp", c.message.text)
                            }),
                        }
                    }
                }
                Err(e) => stats.problem(&stats.bad_frames, || format!("bad chat: {e}")),
            },
            Some("pong") => match serde_json::from_str::<PongFrame>(text) {
                Ok(p) => {
                    let t3 = now_us as f64 / 1000.0;
                    let rtt_ms = t3 - p.t0;
                    self.rtt_ms = rtt_ms.max(0.0);
                    stats.clock_sample(p.t0, p.t1, p.t2, t3);
                    if stats.phase() == Phase::Hold {
                        let us = |ms: f64| (ms * 1000.0).max(0.0) as u64;
                        stats.ping.record(us(rtt_ms));
                        if let Some(offset) = stats.clock_offset_ms() {
                            stats.ping_up.record(us(p.t1 - offset - p.t0));
                            stats.ping_down.record(us(t3 - (p.t2 - offset)));
                        }
                    }
                }
                Err(e) => stats.problem(&stats.bad_frames, || format!("bad pong: {e}")),
            },
            Some(kind @ ("presence" | "joined" | "left" | "host" | "room")) => {
                traffic
                    .membership_bytes
                    .fetch_add(text.len() as u64, Relaxed);
                traffic.membership_frames.fetch_add(1, Relaxed);
                if kind == "presence" && stats.phase() == Phase::Hold {
                    let tenth = (now_us.rem_euclid(1_000_000) / 100_000) as usize;
                    stats.presence_phase[tenth.min(9)].fetch_add(1, Relaxed);
                }
                if self.is_host && kind == "presence" {
                    self.time_flips(text, now_us);
                }
            }
            Some("error") => {
                let e: Option<ErrorFrame> = serde_json::from_str(text).ok();
                stats.problem(&stats.error_frames, || match e {
                    Some(e) => format!("error frame: {}: {}", e.code, e.message),
                    None => format!("error frame: {text}"),
                });
            }
            // Sent before the 1012 close, which is counted as the problem.
            Some("server_restarting") => {}
            _ => {
                let head: String = text.chars().take(80).collect();
                stats.problem(&stats.bad_frames, || format!("unexpected frame: {head}"));
            }
        }
    }

    /// Counts a frame without text (a ping from the server, and the pong the WebSocket
    /// library sends back for it), so the server's frames per CPU second are all counted.
    fn on_other(&self, frame: &Message) {
        let traffic = self.stats.traffic_now();
        traffic.other_frames.fetch_add(1, Relaxed);
        if matches!(frame, Message::Ping(_)) {
            traffic.sent_frames.fetch_add(1, Relaxed);
        }
    }

    /// The host times how long members' buffering flips take to show up in `presence`.
    fn time_flips(&self, text: &str, now_us: i64) {
        let stats = self.stats;
        let Ok(p) = serde_json::from_str::<PresenceFrame>(text) else {
            stats.problem(&stats.bad_frames, || "bad presence frame".into());
            return;
        };
        let mut flips = self.tally.flips.lock().unwrap_or_else(|p| p.into_inner());
        for entry in &p.participants {
            if let Some(&(state, sent_us)) = flips.get(entry.id.as_ref()) {
                if state == entry.buffering {
                    flips.remove(entry.id.as_ref());
                    stats
                        .presence_lag
                        .record((now_us - sent_us as i64).max(0) as u64);
                }
            }
        }
    }

    /// Sends one text frame, counted as a frame the server has to read.
    async fn send(&mut self, text: String) -> Result<(), String> {
        self.stats.traffic_now().sent_frames.fetch_add(1, Relaxed);
        self.ws
            .send(Message::Text(text))
            .await
            .map_err(|e| e.to_string())
    }

    /// Reads frames and sends on schedule until the run ends or the member leaves.
    async fn run(mut self, rng: &mut Rng, phase: &mut watch::Receiver<Phase>) -> End {
        let stats = self.stats;
        let plan = self.plan;
        let start = Instant::now();
        let mut pings_sent = 0u32;
        let mut next_ping = start;
        let mut next_status = start + STATUS_INTERVAL.mul_f64(rng.unit());
        let mut next_control: Option<Instant> = None;
        let mut next_chat: Option<Instant> = None;
        let mut leave_at: Option<Instant> = None;
        let control_gap =
            (plan.control_rate > 0.0).then(|| Duration::from_secs_f64(1.0 / plan.control_rate));
        let chat_gap =
            (plan.chat_rate > 0.0).then(|| Duration::from_secs_f64(1.0 / plan.chat_rate));
        let mut current = *phase.borrow_and_update();
        let is_host = self.is_host;
        // Sets the hold-phase timers; called when the hold starts or on joining during it.
        let enter = |p: Phase,
                     rng: &mut Rng,
                     control: &mut Option<Instant>,
                     chat: &mut Option<Instant>,
                     leave: &mut Option<Instant>| {
            let now = Instant::now();
            if p == Phase::Hold {
                if is_host {
                    *control = control_gap.map(|g| now + g.mul_f64(rng.unit()));
                }
                *chat = chat_gap.map(|g| now + g.mul_f64(rng.unit()));
                if !is_host {
                    *leave = plan
                        .churn_lifetime
                        .map(|(lo, hi)| now + rng.between(lo, hi));
                }
            } else {
                *control = None;
                *chat = None;
                *leave = None;
            }
        };
        enter(
            current,
            rng,
            &mut next_control,
            &mut next_chat,
            &mut leave_at,
        );
        // The timer and the phase watch live across iterations: rebuilding them for every
        // frame read would cost the bench timer-wheel and notify work per frame, on the same
        // cores as the server it measures.
        let timer = sleep_until(next_ping);
        tokio::pin!(timer);
        let mut phase_change = Box::pin(next_phase(phase.clone()));
        loop {
            if current == Phase::Done {
                return self.close(End::Stop).await;
            }
            let deadline = [
                Some(next_ping),
                Some(next_status),
                next_control,
                next_chat,
                leave_at,
            ]
            .into_iter()
            .flatten()
            .min()
            // unwrap: the array holds two Some values
            .unwrap();
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            tokio::select! {
                frame = self.ws.next() => {
                    let arrived = Instant::now();
                    match frame {
                        Some(Ok(Message::Text(t))) => self.on_text(&t, arrived),
                        Some(Ok(Message::Close(c))) => {
                            return self.lost(format!("server closed the connection: {c:?}"));
                        }
                        Some(Ok(other)) => self.on_other(&other),
                        Some(Err(e)) => return self.lost(format!("connection error: {e}")),
                        None => return self.lost("connection ended".into()),
                    }
                }
                _ = &mut timer => {
                    let now = Instant::now();
                    if leave_at.is_some_and(|t| now >= t) {
                        stats.churn_leaves.fetch_add(1, Relaxed);
                        return self.close(End::Leave).await;
                    }
                    let mut out = Vec::new();
                    if now >= next_ping {
                        pings_sent += 1;
                        next_ping = now + if pings_sent < PING_BURST { PING_BURST_GAP } else { PING_INTERVAL };
                        stats.pings_sent.fetch_add(1, Relaxed);
                        out.push(format!(r#"{{"type":"ping","t0":{}}}"#, stats.now_us() as f64 / 1000.0));
                    }
                    if now >= next_status {
                        next_status += STATUS_INTERVAL;
                        stats.statuses_sent.fetch_add(1, Relaxed);
                        out.push(self.status(rng, now));
                    }
                    if let (Some(t), Some(gap)) = (next_control, control_gap) {
                        if now >= t {
                            next_control = Some(t + gap);
                            stats.controls_sent.fetch_add(1, Relaxed);
                            out.push(self.control());
                        }
                    }
                    if let (Some(t), Some(gap)) = (next_chat, chat_gap) {
                        if now >= t {
                            next_chat = Some(t + gap);
                            stats.chats_sent.fetch_add(1, Relaxed);
                            out.push(format!(
                                r#"{{"type":"chat","text":"{} hello from viewer {}, what a scene"}}"#,
                                stats.now_us(),
                                self.label
                            ));
                        }
                    }
                    for text in out {
                        if let Err(e) = self.send(text).await {
                            return self.lost(format!("send failed: {e}"));
                        }
                    }
                }
                (changed, mut watch) = &mut phase_change => {
                    current = if changed.is_ok() { *watch.borrow_and_update() } else { Phase::Done };
                    phase_change = Box::pin(next_phase(watch));
                    if current == Phase::Done {
                        self.check_behind();
                    }
                    enter(current, rng, &mut next_control, &mut next_chat, &mut leave_at);
                }
            }
        }
    }

    /// The next host control: cycles play, seek, seek, pause, each carrying the send time
    /// (seconds since time zero, to the microsecond) as its position.
    fn control(&mut self) -> String {
        let kind = ["play", "seek", "seek", "pause"][(self.controls % 4) as usize];
        self.controls += 1;
        let position = self.stats.now_us() as f64 / 1e6;
        format!(r#"{{"type":"{kind}","position":{position}}}"#)
    }

    /// A status report: measured round trip, small random drift, occasional buffering.
    fn status(&mut self, rng: &mut Rng, now: Instant) -> String {
        let plan = self.plan;
        if self.buffering_until.is_some_and(|t| now >= t) {
            self.buffering_until = None;
        }
        if self.buffering_until.is_none()
            && rng.unit() < plan.buffering_rate * STATUS_INTERVAL.as_secs_f64()
        {
            self.buffering_until = Some(now + BUFFERING_SPELL);
        }
        let buffering = self.buffering_until.is_some();
        // Flips after the hold are not timed: they could not be shown before the end.
        if buffering != self.reported_buffering && self.stats.phase() <= Phase::Hold {
            self.stats.flips_sent.fetch_add(1, Relaxed);
            self.tally
                .flips
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(self.me.clone(), (buffering, self.stats.now_us()));
        }
        self.reported_buffering = buffering;
        let drift = (rng.unit() * 2.0 - 1.0) * plan.drift_jitter_ms;
        format!(
            r#"{{"type":"status","rtt_ms":{:.1},"drift_ms":{:.1},"buffering":{}}}"#,
            self.rtt_ms, drift, buffering
        )
    }

    /// At the end: updates the room saw that this member never got count as dropped.
    fn check_behind(&self) {
        let stats = self.stats;
        let seq = self.tally.max_seq.load(Relaxed);
        if seq > self.last_seq {
            stats
                .playback_drops
                .fetch_add(seq - self.last_seq - 1, Relaxed);
            stats.problem(&stats.playback_drops, || {
                format!(
                    "member {} ended {} playback updates behind its room",
                    self.label,
                    seq - self.last_seq
                )
            });
        }
        if self.is_host {
            let unseen = self
                .tally
                .flips
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .len();
            stats.flips_unseen.fetch_add(unseen as u64, Relaxed);
        }
        let chat = self.tally.max_chat_id.load(Relaxed);
        if chat > self.last_chat {
            stats
                .chat_drops
                .fetch_add(chat - self.last_chat - 1, Relaxed);
            stats.problem(&stats.chat_drops, || {
                format!(
                    "member {} ended {} chat messages behind its room",
                    self.label,
                    chat - self.last_chat
                )
            });
        }
    }

    /// The server ended a connection the bench still wanted.
    fn lost(&self, why: String) -> End {
        let stats = self.stats;
        stats.problem(&stats.unexpected_closes, || {
            format!("member {}: {why}", self.label)
        });
        End::Failed
    }

    /// Closes cleanly: our close frame, then the server's, within a bound.
    async fn close(mut self, end: End) -> End {
        let _ = self.ws.close(None).await;
        let drain = async {
            while let Some(Ok(frame)) = self.ws.next().await {
                if let Message::Text(t) = frame {
                    // Late frames still count as traffic, but are not judged.
                    let traffic = self.stats.traffic_now();
                    traffic.bytes.fetch_add(t.len() as u64, Relaxed);
                    traffic.frames.fetch_add(1, Relaxed);
                }
            }
        };
        let _ = timeout(CLOSE_TIMEOUT, drain).await;
        end
    }
}

/// Waits for the run's next phase; hands the receiver back so the caller can wait again.
async fn next_phase(
    mut watch: watch::Receiver<Phase>,
) -> (Result<(), watch::error::RecvError>, watch::Receiver<Phase>) {
    let changed = watch.changed().await;
    (changed, watch)
}

/// Moves a sequence `last` seen forward to `seen`; returns how many numbers were skipped.
fn advance(last: &mut u64, seen: u64) -> u64 {
    let skipped = seen.saturating_sub(*last + 1);
    *last = (*last).max(seen);
    skipped
}
