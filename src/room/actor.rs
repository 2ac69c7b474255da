//! `RoomActor`: runs one room's [`RoomState`] and delivers its messages.
//!
//! The actor translates messages and does nothing else: sessions send it commands, it applies
//! them to the state and delivers the resulting effects. Every message is encoded once and the
//! same bytes are offered to each recipient's [`SessionLink`] queue: a member whose queue
//! stays behind is evicted, so one stalled reader can neither delay the room nor make it
//! buffer without bound (docs/architecture.md, "Slow and dead clients").

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytestring::ByteString;

use crate::clock::{self, ServerMs};
use crate::error::{RoomError, WireError};
use crate::ids::ParticipantId;
use crate::metrics::Metrics;
use crate::protocol::{CloseCode, JoinRequest, RoomCommand, ServerMessage};
use crate::registry::Rooms;
use crate::room::link::{FrameKind, Offered, QueueLimits, Report, SessionLink};
use crate::room::mailbox::{
    Admitted, Disconnect, FromMember, GetSummary, Join, Leaving, RoomSummary, SessionEnd, Shutdown,
};
use crate::room::paced::PacedFanOut;
use crate::room::persist::{Persistence, WRITE_BEHIND};
use crate::room::state::{Audience, ConnId, Effect, RoomState};
use crate::store::{Fence, Store, StoreError};

/// How often the room flushes presence, ends grace periods and checks for silent members.
pub const TICK: Duration = Duration::from_secs(1);
/// Slices in which a big room hands out its presence, one every `TICK / PRESENCE_STEPS`, so
/// the last is out before the next tick (see `room::paced`).
pub const PRESENCE_STEPS: u32 = 20;

/// Timing rules the actor needs beyond the room's own settings.
#[derive(Clone, Debug)]
pub struct RoomTiming {
    /// A member silent this long is evicted by the room, whether or not its session noticed.
    pub silence_evict_ms: f64,
    /// An empty room is removed after this long.
    pub idle_ttl_ms: f64,
    /// A room nobody has joined yet is removed after this long.
    pub unjoined_ttl_ms: f64,
    /// A stored room without members is deleted after this long.
    pub room_ttl_ms: f64,
    /// When a member's queue counts as behind.
    pub queue: QueueLimits,
}

/// How a room came to be loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Created just now (`POST /api/rooms`).
    Created,
    /// Loaded from the store (after a restart, or after it was unloaded while idle).
    Loaded,
}

/// One room.
pub struct RoomActor {
    /// The rules and data.
    state: RoomState<SessionLink>,
    /// Timing for eviction and idle removal.
    timing: RoomTiming,
    /// The registry, to remove this room when it has been idle long enough.
    rooms: Arc<Rooms>,
    /// Counters and histograms.
    metrics: Arc<Metrics>,
    /// When the room became empty, if it is.
    empty_since: Option<ServerMs>,
    /// Whether anyone ever joined: a room nobody joins is removed sooner, so that rooms
    /// created and never used cannot fill the server.
    ever_joined: bool,
    /// A big room's presence still being handed out, to each member on the connection it
    /// was encoded for.
    paced: Option<PacedFanOut<(ParticipantId, ConnId)>>,
    /// Which pacing run is current, so a step scheduled for an earlier one does nothing.
    paced_run: u64,
    /// The timer set for the state's next deadline, and the deadline it is for.
    deadline: Option<(ServerMs, SpawnHandle)>,
    /// Keeps the room stored.
    persist: Persistence,
    /// The epoch this node holds the room's lease under (many-node mode), which every write
    /// carries; `None` on a server of its own.
    fence: Option<Fence>,
}

impl RoomActor {
    /// A room actor around `state`, kept in `store` under `fence`.
    pub fn new(
        state: RoomState<SessionLink>,
        origin: Origin,
        timing: RoomTiming,
        rooms: Arc<Rooms>,
        metrics: Arc<Metrics>,
        store: Store,
        fence: Option<Fence>,
    ) -> Self {
        let now = clock::now_ms();
        let persist = Persistence::new(
            store,
            fence,
            state.info().id,
            timing.room_ttl_ms,
            state.chat_keep(),
            now,
        );
        RoomActor {
            empty_since: state.is_empty().then_some(now),
            state,
            timing,
            rooms,
            metrics,
            // A stored room was in use before; only fresh ones get the short unjoined TTL.
            ever_joined: origin == Origin::Loaded,
            paced: None,
            paced_run: 0,
            deadline: None,
            persist,
            fence,
        }
    }

    /// The store refused a write: another node took the room over. The registry forgets
    /// this actor, and the room leaves without writing.
    fn lost(&mut self, ctx: &mut Context<Self>) {
        let id = self.state.info().id;
        tracing::warn!(room = %id, "another node owns this room now");
        self.rooms.lost(id, self.fence);
        self.leave(Leaving::Lost, ctx);
    }

    /// Schedules a write of the record if something durable changed (after every message,
    /// deadline and tick).
    fn persist_changes(&mut self, ctx: &mut Context<Self>) {
        if self.state.take_dirty() && self.persist.mark_dirty() {
            ctx.run_later(WRITE_BEHIND, |room, _| room.write_record());
        }
    }

    fn write_record(&mut self) {
        let record = self.state.to_record();
        self.persist
            .write_record(&record, self.empty_since, clock::now_ms());
    }

    /// Delivers a chat's effects once the store has committed the message (see
    /// `room::persist`), then measures the broadcast from the frame's arrival.
    fn deliver_chat(&mut self, effects: Vec<Effect>, received: Instant, ctx: &mut Context<Self>) {
        let message = effects.iter().find_map(|e| match &e.message {
            ServerMessage::Chat { message } => Some(message.clone()),
            _ => None,
        });
        let Some(message) = message.filter(|_| self.persist.is_durable()) else {
            self.deliver(effects);
            self.metrics
                .broadcast_seconds
                .observe(received.elapsed().as_secs_f64());
            return;
        };
        let (ticket, answer) = self.persist.hold_chat(&message, effects);
        ctx.spawn(answer.into_actor(self).map(move |outcome, room, ctx| {
            let outcome = match outcome {
                Ok(Ok(())) => Ok(()),
                Ok(Err(StoreError::Fenced { .. })) => {
                    // Another node runs this room now: this message was never stored, and
                    // nobody may see it. The room goes (its members reconnect there).
                    room.lost(ctx);
                    return;
                }
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("the store stopped".to_owned()),
            };
            let ready = room.persist.answered(ticket, outcome);
            room.deliver(ready);
            room.metrics
                .broadcast_seconds
                .observe(received.elapsed().as_secs_f64());
        }));
    }

    /// Delivers effects, evicting members that cannot keep up (which may cause more effects).
    /// A presence still being paced goes out first if any effect speaks of the members, so
    /// nobody gets it after newer news about them.
    fn deliver(&mut self, mut effects: Vec<Effect>) {
        if effects.iter().any(|e| speaks_of_members(&e.message)) {
            self.finish_paced();
        }
        let now = clock::now_ms();
        let limits = self.timing.queue;
        while !effects.is_empty() {
            let mut stalled: Vec<(ParticipantId, ConnId)> = Vec::new();
            for effect in effects.drain(..) {
                let message_kind = effect.message.kind();
                let kind = frame_kind(&effect.message);
                let frame = effect.message.encode();
                match &effect.to {
                    Audience::One(id) => {
                        if let Some((conn, link)) = self.state.link(id) {
                            self.metrics.frames_out(message_kind, 1);
                            if link.offer(&frame, kind, now, &limits) == Offered::Behind {
                                stalled.push((id.clone(), conn));
                            }
                        }
                    }
                    to => {
                        let skip = match to {
                            Audience::AllExcept(id) => Some(id),
                            _ => None,
                        };
                        let mut sent = 0u64;
                        for (id, conn, link) in self.state.links() {
                            if Some(id) == skip {
                                continue;
                            }
                            sent += 1;
                            if link.offer(&frame, kind, now, &limits) == Offered::Behind {
                                stalled.push((id.clone(), conn));
                            }
                        }
                        self.metrics.frames_out(message_kind, sent);
                    }
                }
            }
            for (id, conn) in stalled {
                effects.extend(self.evict(&id, conn, Eviction::Slow));
            }
        }
        self.note_occupancy();
    }

    /// Starts handing `presence` to the connected members a slice at a time; the first slice
    /// goes now. The host comes first (it watches the room for everyone), then members in
    /// the order they joined.
    fn start_paced(&mut self, presence: &ServerMessage, ctx: &mut Context<Self>) {
        self.finish_paced();
        // Slices are taken from the end of the list.
        let mut owed: Vec<(ParticipantId, ConnId)> = self
            .state
            .links()
            .map(|(id, conn, _)| (id.clone(), conn))
            .collect();
        owed.reverse();
        if let Some(host) = self.state.host() {
            if let Some(at) = owed.iter().position(|(id, _)| *id == host.id) {
                let host = owed.remove(at);
                owed.push(host);
            }
        }
        self.paced = Some(PacedFanOut::new(
            presence.encode(),
            owed,
            PRESENCE_STEPS as usize,
        ));
        self.paced_run += 1;
        self.paced_step(ctx);
    }

    /// Hands out the next slice of the paced presence and schedules the one after.
    fn paced_step(&mut self, ctx: &mut Context<Self>) {
        let Some(paced) = self.paced.as_mut() else {
            return;
        };
        let slice = paced.next_slice();
        let frame = paced.frame().clone();
        if paced.is_done() {
            self.paced = None;
        } else {
            let run = self.paced_run;
            ctx.run_later(TICK / PRESENCE_STEPS, move |room, ctx| {
                if room.paced_run == run {
                    room.paced_step(ctx);
                }
            });
        }
        self.hand_out(&frame, &slice);
    }

    /// Hands the rest of a paced presence out now, before something newer.
    fn finish_paced(&mut self) {
        if let Some(mut paced) = self.paced.take() {
            let rest = paced.rest();
            self.hand_out(paced.frame(), &rest);
        }
    }

    /// Offers `frame` to members still on the connection it was meant for; evicts those
    /// that cannot keep up.
    fn hand_out(&mut self, frame: &ByteString, to: &[(ParticipantId, ConnId)]) {
        let now = clock::now_ms();
        let mut stalled = Vec::new();
        let mut sent = 0u64;
        for (id, conn) in to {
            match self.state.link(id) {
                Some((now_on, link)) if now_on == *conn => {
                    sent += 1;
                    if link.offer(frame, FrameKind::Other, now, &self.timing.queue)
                        == Offered::Behind
                    {
                        stalled.push((id, *conn));
                    }
                }
                // Left, or resumed on a connection whose `welcome` is newer than this frame.
                _ => {}
            }
        }
        self.metrics.frames_out("presence", sent);
        let effects: Vec<Effect> = stalled
            .into_iter()
            .flat_map(|(id, conn)| self.evict(id, conn, Eviction::Slow))
            .collect();
        self.deliver(effects);
    }

    /// Sets a timer for the state's next deadline (a video's end, a hold's timeout, a start
    /// to check), replacing one set for another moment. Called after anything that may
    /// have moved it.
    fn schedule_deadline(&mut self, ctx: &mut Context<Self>) {
        let next = self.state.next_deadline();
        if self.deadline.as_ref().map(|(due, _)| *due) == next {
            return;
        }
        if let Some((_, timer)) = self.deadline.take() {
            ctx.cancel_future(timer);
        }
        if let Some(due) = next {
            let wait = Duration::from_secs_f64((due - clock::now_ms()).max(0.0) / 1000.0);
            let timer = ctx.run_later(wait, |room, ctx| {
                room.deadline = None;
                let effects = room.state.on_deadline(clock::now_ms());
                room.deliver(effects);
                room.schedule_deadline(ctx);
                room.persist_changes(ctx);
            });
            self.deadline = Some((due, timer));
        }
    }

    /// Removes a member at once, counts it, and ends its queue with a close in place of
    /// the backlog. The session writes the close when it next runs; a client that never
    /// reads again never gets it, and the kernel's TCP_USER_TIMEOUT reclaims the socket.
    fn evict(&mut self, id: &ParticipantId, conn: ConnId, why: Eviction) -> Vec<Effect> {
        let (link, effects) = self.state.evict(id, conn, clock::now_ms());
        if let Some(link) = link {
            let reason = why.reason();
            tracing::info!(room = %self.state.info().id, participant = %id, reason, "evicted");
            self.metrics.eviction(reason);
            link.close(CloseCode::Evicted, why.close_text(), false, clock::now_ms());
        }
        effects
    }

    fn reply_error(&mut self, id: &ParticipantId, err: RoomError) {
        self.metrics.errors_sent.inc();
        self.deliver(vec![Effect {
            to: Audience::One(id.clone()),
            message: err.to_message(),
        }]);
    }

    /// Notes whether the room is empty, and counts holds that ended (after every change).
    fn note_occupancy(&mut self) {
        for outcome in self.state.take_hold_outcomes() {
            self.metrics.hold(outcome.label());
        }
        if self.state.is_empty() {
            self.empty_since.get_or_insert_with(clock::now_ms);
        } else {
            self.empty_since = None;
        }
    }

    /// Tells every member to reconnect, closes their connections with 1012 and stops. A
    /// room that still owns its state first delivers the chats waiting for their commit
    /// (their writes stay queued for the store's flush) and writes its last state now, not
    /// behind; a room that lost it to another node does neither.
    fn leave(&mut self, why: Leaving, ctx: &mut Context<Self>) {
        if why.writes() {
            let held = self.persist.release_all();
            self.deliver(held);
            self.write_record();
        } else {
            self.persist.stop_writing();
        }
        tracing::info!(room = %self.state.info().id, reason = ?why, members = self.state.len(), "room leaving this server");
        let now = clock::now_ms();
        let frame = ServerMessage::ServerRestarting {}.encode();
        for (_, _, link) in self.state.links() {
            // Whatever the limits: the notice must reach a busy member too.
            link.force(frame.clone(), now);
            link.close(CloseCode::Restart, why.close_text(), true, now);
        }
        ctx.stop();
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        let now = clock::now_ms();
        let mut overdue: Vec<(ParticipantId, ConnId, Eviction)> = Vec::new();
        for (id, conn, link) in self.state.links() {
            if link.silent_for(now) > self.timing.silence_evict_ms {
                overdue.push((id.clone(), conn, Eviction::Silent));
            } else if link.is_behind(now, &self.timing.queue) {
                // Behind with nothing new offered since: a quiet room notices it here.
                overdue.push((id.clone(), conn, Eviction::Slow));
            }
        }
        let mut effects = Vec::new();
        for (id, conn, why) in overdue {
            effects.extend(self.evict(&id, conn, why));
        }
        // The reports sessions left since the last tick, for this tick's presence.
        let reports: Vec<(ParticipantId, Report)> = self
            .state
            .links()
            .filter_map(|(id, _, link)| link.take_report().map(|r| (id.clone(), r)))
            .collect();
        for (id, report) in reports {
            self.state.note_report(&id, report.rtt_ms, report.drift_ms);
        }
        effects.extend(self.state.tick(now));
        // A big room's presence is paced over the second; everything else goes now.
        let paced = if self.state.is_big() {
            effects
                .iter()
                .position(|e| matches!(e.message, ServerMessage::Presence { .. }))
                .map(|at| effects.remove(at))
        } else {
            None
        };
        self.deliver(effects);
        if let Some(presence) = paced {
            self.start_paced(&presence.message, ctx);
        }
        // Members leaving may have ended a hold (and with it, moved the deadline).
        self.schedule_deadline(ctx);
        self.persist_changes(ctx);
        let Some(since) = self.empty_since else {
            if self.persist.needs_refresh(now) {
                // Occupied but unchanged for long: keep the stored record from expiring.
                self.write_record();
            }
            return;
        };
        let id = self.state.info().id;
        let empty_for = now - since;
        if !self.ever_joined && empty_for >= self.timing.unjoined_ttl_ms {
            tracing::info!(room = %id, "removing a room nobody joined");
            self.persist.delete();
        } else if empty_for >= self.timing.room_ttl_ms {
            tracing::info!(room = %id, "removing an expired room");
            self.persist.delete();
        } else if self.ever_joined && empty_for >= self.timing.idle_ttl_ms {
            // Unloaded, not deleted: the stored room comes back when someone asks for it.
            tracing::info!(room = %id, "unloading an idle room");
            self.write_record();
        } else {
            return;
        }
        self.rooms.stopped(id, self.fence);
        ctx.stop();
    }
}

/// Why a member was removed without a clean close.
#[derive(Clone, Copy, Debug)]
enum Eviction {
    /// Its queue stayed behind: it cannot keep up.
    Slow,
    /// The room heard nothing from it for too long (its session may not even be polled).
    Silent,
    /// Its session's heartbeat gave up on it.
    Timeout,
}

impl Eviction {
    /// Label for logs and the `evictions_total` metric.
    fn reason(self) -> &'static str {
        match self {
            Eviction::Slow => "slow",
            Eviction::Silent => "silent",
            Eviction::Timeout => "timeout",
        }
    }

    /// Close reason sent to the client.
    fn close_text(self) -> &'static str {
        match self {
            Eviction::Slow => "evicted: the connection could not keep up",
            Eviction::Silent | Eviction::Timeout => "evicted: no sign of life",
        }
    }
}

/// Whether a message tells members something a presence also tells (who is here, who is
/// host), so it must not overtake a presence still being paced. Playback, chat and the
/// others may: a presence says nothing they change.
fn speaks_of_members(message: &ServerMessage) -> bool {
    matches!(
        message,
        ServerMessage::Presence { .. }
            | ServerMessage::Host { .. }
            | ServerMessage::Joined { .. }
            | ServerMessage::Left { .. }
    )
}

/// How a member's queue treats a message: a newer `playback` replaces one still queued.
fn frame_kind(message: &ServerMessage) -> FrameKind {
    match message {
        ServerMessage::Playback { .. } => FrameKind::Playback,
        _ => FrameKind::Other,
    }
}

impl Actor for RoomActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.metrics.rooms.inc();
        // Each room ticks at its own phase of the second. Rooms created in a burst would
        // otherwise flush presence in the same instant, and every session's frame would
        // queue behind theirs (docs/performance.md, finding 1).
        let phase = self.state.info().id.phase_within(TICK);
        ctx.run_later(phase, |room, ctx| {
            room.tick(ctx);
            ctx.run_interval(TICK, |room, ctx| room.tick(ctx));
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.metrics.rooms.dec();
    }
}

impl Handler<Join> for RoomActor {
    type Result = Result<Admitted, RoomError>;

    fn handle(&mut self, msg: Join, ctx: &mut Self::Context) -> Self::Result {
        let now = clock::now_ms();
        let JoinRequest {
            name,
            host_token,
            resume_token,
        } = msg.request;
        let joined = self.state.join(
            msg.conn,
            msg.link,
            name,
            host_token.as_deref(),
            resume_token.as_deref(),
            now,
        )?;
        if let Some(old) = joined.replaced {
            old.close(
                CloseCode::Replaced,
                "resumed on another connection",
                false,
                now,
            );
        }
        self.ever_joined = true;
        self.metrics.frames_out("welcome", 1);
        self.deliver(joined.effects);
        self.schedule_deadline(ctx);
        self.persist_changes(ctx);
        Ok(Admitted {
            id: joined.id,
            welcome: joined.welcome.encode(),
        })
    }
}

impl Handler<FromMember> for RoomActor {
    type Result = ();

    fn handle(&mut self, msg: FromMember, ctx: &mut Self::Context) {
        let now = clock::now_ms();
        let id = &msg.id;
        if self.state.link(id).map(|(conn, _)| conn) != Some(msg.conn) {
            // Evicted, expired or replaced: this connection no longer speaks for anyone.
            return;
        }
        let fans_out = msg.command.fans_out();
        let is_chat = matches!(msg.command, RoomCommand::Chat { .. });
        match self.state.apply(id, msg.command, now) {
            Ok(effects) if is_chat => self.deliver_chat(effects, msg.received, ctx),
            Ok(effects) => {
                self.deliver(effects);
                if fans_out {
                    self.metrics
                        .broadcast_seconds
                        .observe(msg.received.elapsed().as_secs_f64());
                }
            }
            Err(err) => self.reply_error(id, err),
        }
        self.schedule_deadline(ctx);
        self.persist_changes(ctx);
    }
}

impl Handler<Disconnect> for RoomActor {
    type Result = ();

    fn handle(&mut self, msg: Disconnect, ctx: &mut Self::Context) {
        let effects = match msg.ended {
            SessionEnd::Closed => self.state.disconnect(&msg.id, msg.conn, clock::now_ms()),
            SessionEnd::TimedOut => self.evict(&msg.id, msg.conn, Eviction::Timeout),
        };
        self.deliver(effects);
        self.schedule_deadline(ctx);
        self.persist_changes(ctx);
    }
}

impl Handler<GetSummary> for RoomActor {
    type Result = MessageResult<GetSummary>;

    fn handle(&mut self, _msg: GetSummary, _ctx: &mut Self::Context) -> Self::Result {
        let info = self.state.info();
        MessageResult(RoomSummary {
            room_id: info.id,
            name: info.name,
            control: info.control,
            wait_for_buffering: info.wait_for_buffering,
            buffering_timeout_s: info.buffering_timeout_s,
            participants: self.state.len(),
            host: self.state.host(),
            playback: self.state.playback(),
            queued: self.state.queued(),
        })
    }
}

impl Handler<Shutdown> for RoomActor {
    type Result = ();

    fn handle(&mut self, msg: Shutdown, ctx: &mut Self::Context) {
        self.leave(msg.0, ctx);
    }
}
