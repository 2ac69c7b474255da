//! A room's rules as plain data: state in, new state and outgoing messages out.
//!
//! [`RoomState`] knows nothing about actors or sockets. Every operation takes the current
//! server time and returns [`Effect`]s, typed messages addressed to participants, which the
//! room actor encodes once and delivers. A member's request is one [`RoomCommand`], applied
//! by [`RoomState::apply`]; what the room does by itself when time passes (a video's end, a
//! hold's timeout) happens in [`RoomState::on_deadline`], at [`RoomState::next_deadline`].
//! It is generic over `L`, the handle used to reach a connected participant, so unit tests
//! use plain numbers where the actor uses mailboxes.

use indexmap::IndexMap;

use crate::clock::ServerMs;
use crate::error::RoomError;
use crate::ids::{ParticipantId, RoomId, Secret, SecretHash};
use crate::limits::TokenBucket;
use crate::protocol::{
    ChatMessage, ControlMode, Entry, ParticipantRef, Playback, RoomCommand, RoomInfo,
    ServerMessage, Video, Welcome,
};
use crate::room::chat::ChatLog;
use crate::room::hold::{Hold, HoldOutcome};
use crate::room::members::{Member, MemberRecord};
use crate::room::playback::{start_lead_ms, PlaybackClock};
use crate::room::presence::PendingPresence;
use crate::room::queue::Queue;
use crate::room::record::{RoomRecord, StoredMember, RECORD_VERSION};

/// Identifies one WebSocket connection, so a stale connection's events can be told apart
/// from those of the connection that resumed the same participant.
pub type ConnId = u64;

/// Per-room rules that operators can tune.
#[derive(Clone, Debug)]
pub struct RoomSettings {
    /// Chat messages kept and replayed to newcomers.
    pub chat_history: usize,
    /// Most bytes of chat text kept.
    pub chat_history_bytes: usize,
    /// Refuse `url` videos on private networks (see `Video::points_at_private_network`).
    pub refuse_private_urls: bool,
    /// Most participants (connected or within grace) in one room.
    pub max_members: usize,
    /// How long a dropped participant keeps its identity and (if host) the host role.
    pub grace_ms: f64,
    /// Rooms with more members than this batch membership changes into `presence`.
    pub presence_threshold: usize,
    /// Chat messages a participant may send in a burst.
    pub chat_burst: u32,
    /// Chat messages per second a participant may sustain.
    pub chat_per_second: f64,
    /// Most items in a room's queue.
    pub max_queue: usize,
}

impl RoomSettings {
    /// Checks a video against this server's policy (its form was checked when decoded).
    pub fn check_video(&self, video: &Video) -> Result<(), RoomError> {
        if self.refuse_private_urls && video.points_at_private_network() {
            return Err(RoomError::VideoRefused(
                "this server does not play videos from private or local network addresses".into(),
            ));
        }
        Ok(())
    }
}

impl Default for RoomSettings {
    fn default() -> Self {
        RoomSettings {
            chat_history: 100,
            chat_history_bytes: 64 * 1024,
            refuse_private_urls: false,
            max_members: 5000,
            grace_ms: 10_000.0,
            presence_threshold: 50,
            chat_burst: 5,
            chat_per_second: 1.0,
            max_queue: 200,
        }
    }
}

/// What the host of a room may change about it, besides who controls.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RoomOptions {
    /// Whether a buffering member puts the room on hold.
    pub wait_for_buffering: bool,
    /// Longest hold, in seconds.
    pub buffering_timeout_s: f64,
}

impl Default for RoomOptions {
    fn default() -> Self {
        RoomOptions {
            wait_for_buffering: true,
            buffering_timeout_s: 8.0,
        }
    }
}

/// Who receives a message.
#[derive(Clone, Debug, PartialEq)]
pub enum Audience {
    /// Every connected participant.
    All,
    /// Every connected participant but one.
    AllExcept(ParticipantId),
    /// One participant.
    One(ParticipantId),
}

/// A message to deliver.
#[derive(Clone, Debug)]
pub struct Effect {
    /// Recipients.
    pub to: Audience,
    /// The message.
    pub message: ServerMessage,
}

impl Effect {
    fn all(message: ServerMessage) -> Self {
        Effect {
            to: Audience::All,
            message,
        }
    }
}

/// What `join` produced.
#[derive(Debug)]
pub struct Joined<L> {
    /// The participant's id (the old one when resumed).
    pub id: ParticipantId,
    /// Whether an existing membership was resumed.
    pub resumed: bool,
    /// A previous connection of the same participant, to be closed as replaced.
    pub replaced: Option<L>,
    /// The joiner's `welcome`.
    pub welcome: ServerMessage,
    /// Messages for the others (joined, host changes).
    pub effects: Vec<Effect>,
}

/// The room: clock, members, host, chat, queue, hold, pending presence.
#[derive(Debug)]
pub struct RoomState<L> {
    /// The room's id.
    id: RoomId,
    /// Display name of the room.
    name: String,
    /// Who may control playback.
    control: ControlMode,
    /// The host's settings for holds.
    options: RoomOptions,
    /// Hash of the secret whose holder becomes host on joining as a new participant.
    host_token: SecretHash,
    /// Tunable rules.
    settings: RoomSettings,
    /// The authoritative clock.
    clock: PlaybackClock,
    /// Participants in order of arrival (the front has been here longest).
    members: IndexMap<ParticipantId, Member<L>>,
    /// The host, if any.
    host: Option<ParticipantId>,
    /// Recent chat.
    chat: ChatLog,
    /// What plays after the current video.
    queue: Queue,
    /// The members the room is paused for, while it waits for them.
    hold: Option<Hold>,
    /// The anchor of the last scheduled start at which the room checked for members still
    /// buffering (each start is checked once).
    start_checked: ServerMs,
    /// How holds ended since the actor last asked, for its metrics.
    hold_outcomes: Vec<HoldOutcome>,
    /// Lengths of the current video reported by members without control, with the video's
    /// `seq`: one such report alone could end the video for everyone, two that agree make
    /// the length known.
    length_reports: (u64, Vec<(ParticipantId, f64)>),
    /// Something durable changed since the actor last asked (see [`RoomState::to_record`]).
    dirty: bool,
    /// What the next `presence` messages still have to tell.
    presence: PendingPresence,
}

impl<L> RoomState<L> {
    /// A new, empty room.
    pub fn new(
        id: RoomId,
        name: String,
        control: ControlMode,
        video: Option<Video>,
        host_token: SecretHash,
        settings: RoomSettings,
        now: ServerMs,
    ) -> Self {
        RoomState {
            id,
            name,
            control,
            options: RoomOptions::default(),
            host_token,
            chat: ChatLog::new(settings.chat_history, settings.chat_history_bytes),
            queue: Queue::new(settings.max_queue),
            settings,
            clock: PlaybackClock::new(video, now),
            members: IndexMap::new(),
            host: None,
            hold: None,
            start_checked: f64::NEG_INFINITY,
            hold_outcomes: Vec::new(),
            length_reports: (0, Vec::new()),
            dirty: true,
            presence: PendingPresence::default(),
        }
    }

    // ---- storage -----------------------------------------------------------------------

    /// The room's durable state (see `room::record`).
    pub fn to_record(&self) -> RoomRecord {
        RoomRecord {
            version: RECORD_VERSION,
            id: self.id,
            name: self.name.clone(),
            control: self.control,
            options: self.options.clone(),
            host_token: self.host_token.clone(),
            clock: self.clock.clone(),
            held: self.hold.is_some(),
            host: self.host.clone(),
            members: self
                .members
                .iter()
                .map(|(id, m)| StoredMember {
                    id: id.clone(),
                    record: m.record.clone(),
                })
                .collect(),
            queue: self.queue.items(),
            queue_next_id: self.queue.next_id(),
            chat_next_id: self.chat.next_id(),
        }
    }

    /// Whether something durable changed since the last call: the actor then writes the
    /// record (behind, within a fraction of a second).
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// A room brought back from its `record` and stored `chat` (oldest first) at server time
    /// `now`. Every member is away, with its grace period counted from now: it keeps its
    /// identity, and the host the host role, until it resumes or the grace runs out. A room
    /// that was playing plays on at the live position; one paused by a hold plays on from
    /// where it held.
    pub fn from_record(
        record: RoomRecord,
        chat: Vec<ChatMessage>,
        settings: RoomSettings,
        now: ServerMs,
    ) -> Self {
        let chat = ChatLog::restore(
            chat,
            record.chat_next_id,
            settings.chat_history,
            settings.chat_history_bytes,
        );
        let queue = Queue::restore(record.queue, record.queue_next_id, settings.max_queue);
        let members = record
            .members
            .into_iter()
            .map(|stored| {
                let bucket = TokenBucket::new(settings.chat_burst, settings.chat_per_second, now);
                let mut member = Member::new(stored.record, None, bucket);
                member.away_since = Some(now);
                (stored.id, member)
            })
            .collect();
        let mut room = RoomState {
            id: record.id,
            name: record.name,
            control: record.control,
            options: record.options,
            host_token: record.host_token,
            chat,
            queue,
            settings,
            clock: record.clock,
            members,
            host: record.host,
            hold: None,
            start_checked: f64::NEG_INFINITY,
            hold_outcomes: Vec::new(),
            length_reports: (0, Vec::new()),
            dirty: false,
            presence: PendingPresence::default(),
        };
        if record.held {
            let start_at = now + room.start_lead_ms();
            room.clock.play(now, start_at, None);
            room.dirty = true;
        }
        room
    }

    /// Whether membership changes are batched into presence (rooms above the threshold).
    pub fn is_big(&self) -> bool {
        self.members.len() > self.settings.presence_threshold
    }

    /// Number of participants, including those within their grace period.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether nobody is in the room.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The room's public description.
    pub fn info(&self) -> RoomInfo {
        RoomInfo {
            id: self.id,
            name: self.name.clone(),
            control: self.control,
            wait_for_buffering: self.options.wait_for_buffering,
            buffering_timeout_s: self.options.buffering_timeout_s,
        }
    }

    /// The live clock, with whom a hold waits for and until when.
    pub fn playback(&self) -> Playback {
        let Some(hold) = &self.hold else {
            return self.clock.snapshot(Vec::new());
        };
        let mut playback = self.clock.snapshot(hold.waiting_for());
        playback.hold_until = Some(hold.deadline());
        playback
    }

    /// The host's id and name, if there is a host.
    pub fn host(&self) -> Option<ParticipantRef> {
        let id = self.host.as_ref()?;
        let member = self.members.get(id)?;
        Some(ParticipantRef {
            id: id.clone(),
            name: member.record.name.clone(),
        })
    }

    /// The connected participants' handles, with their ids.
    pub fn links(&self) -> impl Iterator<Item = (&ParticipantId, ConnId, &L)> {
        self.members
            .iter()
            .filter_map(|(id, m)| m.link.as_ref().map(|(conn, l)| (id, *conn, l)))
    }

    /// The connection id and handle of one connected participant.
    pub fn link(&self, id: &ParticipantId) -> Option<(ConnId, &L)> {
        self.members.get(id)?.link.as_ref().map(|(c, l)| (*c, l))
    }

    fn is_host(&self, id: &ParticipantId) -> bool {
        self.host.as_ref() == Some(id)
    }

    /// Every participant's entry, longest-present first.
    pub fn entries(&self) -> Vec<Entry> {
        self.members
            .iter()
            .map(|(id, m)| m.entry(id, self.is_host(id)))
            .collect()
    }

    /// The `welcome` for participant `id` (which must be a member), handing it
    /// `resume_token` (the room keeps only its hash).
    fn welcome(
        &self,
        id: &ParticipantId,
        resume_token: String,
        now: ServerMs,
    ) -> Option<ServerMessage> {
        let m = self.members.get(id)?;
        Some(ServerMessage::Welcome(Box::new(Welcome {
            you: ParticipantRef {
                id: id.clone(),
                name: m.record.name.clone(),
            },
            resume_token,
            room: self.info(),
            host_id: self.host.clone(),
            participants: self.entries(),
            playback: self.playback(),
            chat: self.chat.recent().cloned().collect(),
            queue: self.queue.items(),
            server_time: now,
            big_room_threshold: self.settings.presence_threshold,
        })))
    }

    /// Admits a connection: a new participant, or a resumed one if `resume_token` matches.
    /// The name has been checked by the decoder.
    pub fn join(
        &mut self,
        conn: ConnId,
        link: L,
        name: String,
        host_token: Option<&str>,
        resume_token: Option<&str>,
        now: ServerMs,
    ) -> Result<Joined<L>, RoomError> {
        let existing = resume_token.and_then(|token| {
            // Comparing hashes with `==` may leak how much of a hash matched; a hash prefix
            // brings nobody closer to a 256-bit token.
            let hash = SecretHash::of(token);
            self.members
                .iter()
                .find(|(_, m)| m.record.resume == hash)
                .map(|(id, _)| (id.clone(), token.to_owned()))
        });
        let mut effects = Vec::new();
        let (id, token, replaced, resumed) = match existing {
            Some((id, token)) => {
                // unwrap: `id` was just found in `members`
                let m = self.members.get_mut(&id).unwrap();
                let replaced = m.link.replace((conn, link)).map(|(_, old)| old);
                m.away_since = None;
                if m.record.name != name {
                    m.record.name = name;
                    m.shown = None; // a new name is always news
                    self.dirty = true;
                }
                self.presence.changed(&id);
                (id, token, replaced, true)
            }
            None => {
                if self.members.len() >= self.settings.max_members {
                    return Err(RoomError::RoomFull(self.settings.max_members));
                }
                let id = ParticipantId::new();
                let token = Secret::generate();
                let record = MemberRecord {
                    name,
                    resume: token.hash(),
                };
                let bucket =
                    TokenBucket::new(self.settings.chat_burst, self.settings.chat_per_second, now);
                self.members
                    .insert(id.clone(), Member::new(record, Some((conn, link)), bucket));
                self.dirty = true;
                (id, token.as_str().to_owned(), None, false)
            }
        };
        // The host token makes a new participant host. A resumed one is who it was: the
        // creator's page presents its token on every reconnect, and a role it handed on
        // must not come back to it with a reload.
        let claims_host = !resumed && host_token.is_some_and(|t| self.host_token.matches(t));
        if claims_host || self.host.is_none() {
            if let Some(change) = self.set_host(Some(id.clone())) {
                effects.push(change);
            }
        }
        if !resumed {
            // A newcomer: announced now in small rooms, batched into presence in big ones.
            let is_host = self.is_host(&id);
            if self.is_big() {
                self.presence.arrived(&id);
            } else {
                // unwrap: the participant was admitted just above
                let m = self.members.get_mut(&id).unwrap();
                m.shown = Some(m.shown(is_host));
                let entry = m.entry(&id, is_host);
                effects.push(Effect {
                    to: Audience::AllExcept(id.clone()),
                    message: ServerMessage::Joined { participant: entry },
                });
            }
        }
        // unwrap: the participant is a member now
        let welcome = self.welcome(&id, token, now).unwrap();
        Ok(Joined {
            id,
            resumed,
            replaced,
            welcome,
            effects,
        })
    }

    /// A connection closed. The participant stays (for resume, and the host role) until its
    /// grace period ends; a hold stops waiting for it. Events from a connection that was
    /// already replaced are ignored.
    pub fn disconnect(&mut self, id: &ParticipantId, conn: ConnId, now: ServerMs) -> Vec<Effect> {
        let Some(m) = self.members.get_mut(id) else {
            return Vec::new();
        };
        if m.link.as_ref().is_none_or(|(c, _)| *c != conn) {
            return Vec::new();
        }
        m.link = None;
        m.away_since = Some(now);
        self.presence.changed(id);
        self.stop_waiting_for(id, HoldOutcome::Left, now)
    }

    /// Removes a participant at once (it could not keep up): no grace, no resume.
    /// Returns its handle so the caller can close the connection.
    pub fn evict(
        &mut self,
        id: &ParticipantId,
        conn: ConnId,
        now: ServerMs,
    ) -> (Option<L>, Vec<Effect>) {
        let current = self
            .members
            .get(id)
            .is_some_and(|m| m.link.as_ref().is_some_and(|(c, _)| *c == conn));
        if !current {
            return (None, Vec::new());
        }
        let mut effects = Vec::new();
        let link = self.remove(id, now, &mut effects);
        (link, effects)
    }

    fn remove(
        &mut self,
        id: &ParticipantId,
        now: ServerMs,
        effects: &mut Vec<Effect>,
    ) -> Option<L> {
        let big = self.is_big();
        let member = self.members.shift_remove(id)?;
        self.dirty = true;
        self.presence.gone(id, big);
        if !big {
            effects.push(Effect::all(ServerMessage::Left { id: id.clone() }));
        }
        if self.host.as_ref() == Some(id) {
            let successor = self
                .members
                .iter()
                .find(|(_, m)| m.is_connected())
                .map(|(id, _)| id.clone());
            effects.extend(self.set_host(successor));
        }
        effects.extend(self.stop_waiting_for(id, HoldOutcome::Left, now));
        member.link.map(|(_, l)| l)
    }

    fn set_host(&mut self, new: Option<ParticipantId>) -> Option<Effect> {
        if self.host == new {
            return None;
        }
        self.dirty = true;
        for id in [self.host.take(), new.clone()].into_iter().flatten() {
            if self.members.contains_key(&id) {
                self.presence.changed(&id);
            }
        }
        self.host = new.clone();
        Some(Effect::all(ServerMessage::Host { host_id: new }))
    }

    /// Periodic work, about once a second: ends expired grace periods and flushes presence.
    pub fn tick(&mut self, now: ServerMs) -> Vec<Effect> {
        let mut effects = Vec::new();
        let expired: Vec<ParticipantId> = self
            .members
            .iter()
            .filter(|(_, m)| {
                m.away_since
                    .is_some_and(|t| now - t >= self.settings.grace_ms)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            self.remove(id, now, &mut effects);
        }
        // A host that is away while someone else is connected keeps the role only for its
        // grace period; a hostless room with a connected member gets one now.
        if self.host.is_none() {
            if let Some(id) = self
                .members
                .iter()
                .find(|(_, m)| m.is_connected())
                .map(|(id, _)| id.clone())
            {
                effects.extend(self.set_host(Some(id)));
            }
        }
        if let Some(presence) = self.take_presence() {
            effects.push(Effect::all(presence));
        }
        effects
    }

    /// The next `presence`, if there is news (see [`PendingPresence::take`]).
    fn take_presence(&mut self) -> Option<ServerMessage> {
        let big = self.is_big();
        self.presence
            .take(big, &mut self.members, self.host.as_ref())
    }

    /// How many chat messages the room keeps (and the store with it).
    pub fn chat_keep(&self) -> usize {
        self.settings.chat_history
    }

    /// How many items wait in the queue.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// How holds ended since the last call (for metrics).
    pub fn take_hold_outcomes(&mut self) -> Vec<HoldOutcome> {
        std::mem::take(&mut self.hold_outcomes)
    }

    // ---- commands ----------------------------------------------------------------------

    /// Applies one request of participant `id`.
    pub fn apply(
        &mut self,
        id: &ParticipantId,
        command: RoomCommand,
        now: ServerMs,
    ) -> Result<Vec<Effect>, RoomError> {
        if !self.members.contains_key(id) {
            return Err(RoomError::NotMember);
        }
        match command {
            RoomCommand::Status {
                rtt_ms,
                drift_ms,
                buffering,
            } => Ok(self.status(id, rtt_ms, drift_ms, buffering, now)),
            RoomCommand::MediaInfo { seq, duration } => Ok(self.media_info(id, seq, duration)),
            RoomCommand::Chat { text } => self.chat(id, text, now),
            RoomCommand::TransferHost { to } => {
                self.require_host(id)?;
                if self.members.get(&to).is_none_or(|m| !m.is_connected()) {
                    return Err(RoomError::NoSuchParticipant(to.to_string()));
                }
                Ok(self.set_host(Some(to)).into_iter().collect())
            }
            RoomCommand::SetControl { control } => {
                self.require_host(id)?;
                self.control = control;
                Ok(vec![self.room_effect()])
            }
            RoomCommand::SetOptions {
                wait_for_buffering,
                buffering_timeout_s,
            } => {
                self.require_host(id)?;
                if let Some(timeout) = buffering_timeout_s {
                    self.options.buffering_timeout_s = timeout;
                }
                let mut effects = vec![];
                if let Some(wait) = wait_for_buffering {
                    self.options.wait_for_buffering = wait;
                    if !wait {
                        // Nobody is to be waited for any more: play on now.
                        effects.extend(self.release_hold(HoldOutcome::Cancelled, true, now));
                    }
                }
                effects.insert(0, self.room_effect());
                Ok(effects)
            }
            RoomCommand::QueueAdd { video, title } => {
                self.may_control(id)?;
                self.settings.check_video(&video)?;
                let added_by = self.participant_ref(id);
                self.queue.add(video, title, added_by)?;
                Ok(vec![self.queue_effect()])
            }
            RoomCommand::QueueRemove { item_id } => {
                self.may_control(id)?;
                self.queue.remove(item_id)?;
                Ok(vec![self.queue_effect()])
            }
            RoomCommand::QueueMove { item_id, index } => {
                self.may_control(id)?;
                self.queue.move_to(item_id, index)?;
                Ok(vec![self.queue_effect()])
            }
            RoomCommand::Next => {
                self.may_control(id)?;
                if self.queue.is_empty() {
                    return Err(RoomError::QueueEmpty);
                }
                let mut effects = self.release_hold(HoldOutcome::Cancelled, false, now);
                effects.extend(self.advance(Some(id.clone()), now));
                Ok(effects)
            }
            control => self.control(id, control, now),
        }
    }

    /// Play, pause, seek, rate or load.
    fn control(
        &mut self,
        id: &ParticipantId,
        control: RoomCommand,
        now: ServerMs,
    ) -> Result<Vec<Effect>, RoomError> {
        self.may_control(id)?;
        if let RoomCommand::Load { video } = &control {
            self.settings.check_video(video)?;
        }
        // A pause, play or load ends a hold: the person in control decided. A seek or a
        // rate change during a hold keeps waiting, from the new position or at the new rate.
        let ends_hold = matches!(
            control,
            RoomCommand::Play { .. } | RoomCommand::Pause { .. } | RoomCommand::Load { .. }
        );
        let mut effects = Vec::new();
        if ends_hold {
            effects.extend(self.release_hold(HoldOutcome::Cancelled, false, now));
        }
        let start_at = now + self.start_lead_ms();
        match control {
            RoomCommand::Play { position } => self.clock.play(now, start_at, position),
            RoomCommand::Pause { position } => self.clock.pause(now, position),
            RoomCommand::Seek { position } => self.clock.seek(now, start_at, position),
            RoomCommand::Rate { rate } => self.clock.set_rate(now, rate),
            RoomCommand::Load { video } => self.clock.load(now, video),
            other => unreachable!("{} is not a playback control", other.kind()),
        }
        effects.push(self.playback_effect(Some(id.clone())));
        Ok(effects)
    }

    /// Accepts a chat message from `id` (its text was cleaned by the decoder).
    fn chat(
        &mut self,
        id: &ParticipantId,
        text: String,
        now: ServerMs,
    ) -> Result<Vec<Effect>, RoomError> {
        let m = self.members.get_mut(id).ok_or(RoomError::NotMember)?;
        if !m.chat_bucket.try_take(now) {
            return Err(RoomError::ChatRateLimited);
        }
        let from = ParticipantRef {
            id: id.clone(),
            name: m.record.name.clone(),
        };
        let message = self.chat.push(ChatMessage {
            id: 0,
            from,
            text,
            at: now,
        });
        Ok(vec![Effect::all(ServerMessage::Chat { message })])
    }

    /// Records a participant's sync report. Small rooms announce every change; big rooms
    /// only a flip of `buffering` or a move to another RTT or drift band since the entry
    /// was last announced. A flip of `buffering` may start, grow or end a hold.
    fn status(
        &mut self,
        id: &ParticipantId,
        rtt_ms: f64,
        drift_ms: f64,
        buffering: bool,
        now: ServerMs,
    ) -> Vec<Effect> {
        let Some(m) = self.members.get_mut(id) else {
            return Vec::new();
        };
        let started_buffering = buffering && !m.buffering;
        let flipped = m.buffering != buffering;
        m.buffering = buffering;
        if !buffering {
            m.held_out = false;
        }
        self.note_report(id, rtt_ms, drift_ms);
        if flipped {
            // `note_report` judged the news without the flip when the numbers were the same.
            self.note_presence_news(id, true);
        }
        if !buffering {
            return self.stop_waiting_for(id, HoldOutcome::Ready, now);
        }
        // A member that starts buffering while the room plays (or already waits) is
        // waited for; one buffering before a scheduled start is judged when it comes.
        let running = self.clock.started_at().is_some_and(|t| t <= now);
        if started_buffering && (running || self.hold.is_some()) {
            return self.hold_for(vec![id.clone()], now);
        }
        Vec::new()
    }

    /// A member's latest round trip and drift (its `status`, collected by the actor on its
    /// tick, or with a change of buffering): kept for presence and for the start lead.
    pub fn note_report(&mut self, id: &ParticipantId, rtt_ms: f64, drift_ms: f64) {
        let Some(m) = self.members.get_mut(id) else {
            return;
        };
        let (rtt, drift) = (Some(rtt_ms), Some(drift_ms));
        let changed = m.rtt_ms != rtt || m.drift_ms != drift;
        m.rtt_ms = rtt;
        m.drift_ms = drift;
        self.note_presence_news(id, changed);
    }

    /// Marks member `id` for the next presence if what it shows changed: in a small room any
    /// exact change (`changed`), in a big one a change of what its entry shows (bands).
    fn note_presence_news(&mut self, id: &ParticipantId, changed: bool) {
        let big = self.is_big();
        let is_host = self.is_host(id);
        let Some(m) = self.members.get_mut(id) else {
            return;
        };
        let news = if big {
            m.shown != Some(m.shown(is_host))
        } else {
            changed
        };
        if news {
            self.presence.changed(id);
        }
    }

    // ---- holds -------------------------------------------------------------------------

    /// Whether this room waits for buffering members at all. Big rooms never do: with
    /// hundreds of viewers someone is nearly always buffering, and one slow connection
    /// would pause everyone.
    fn holds_allowed(&self) -> bool {
        self.options.wait_for_buffering && !self.is_big() && self.clock.has_video()
    }

    /// Puts a playing room on hold for `ids` (or adds them to the hold under way).
    fn hold_for(&mut self, ids: Vec<ParticipantId>, now: ServerMs) -> Vec<Effect> {
        let ids: Vec<ParticipantId> = ids
            .into_iter()
            .filter(|id| {
                self.members
                    .get(id)
                    .is_some_and(|m| m.is_connected() && !m.held_out)
            })
            .collect();
        if ids.is_empty() || !self.holds_allowed() {
            return Vec::new();
        }
        match &mut self.hold {
            Some(hold) => {
                let mut grew = false;
                for id in &ids {
                    grew |= hold.add(id);
                }
                if !grew {
                    return Vec::new();
                }
                // The list changed: everyone sees who is waited for now.
                self.clock.pause(now, None);
            }
            None => {
                if self.clock.started_at().is_none() {
                    return Vec::new();
                }
                let deadline = now + self.options.buffering_timeout_s * 1000.0;
                let mut ids = ids.into_iter();
                // unwrap: `ids` is not empty (checked above)
                let mut hold = Hold::new(ids.next().unwrap(), deadline);
                for id in ids {
                    hold.add(&id);
                }
                self.hold = Some(hold);
                self.clock.pause(now, None);
            }
        }
        vec![self.playback_effect(None)]
    }

    /// `id` is ready or gone: a hold stops waiting for it, and resumes once it waits for
    /// nobody.
    fn stop_waiting_for(
        &mut self,
        id: &ParticipantId,
        why: HoldOutcome,
        now: ServerMs,
    ) -> Vec<Effect> {
        let Some(hold) = &mut self.hold else {
            return Vec::new();
        };
        if !hold.drop_member(id) {
            return Vec::new();
        }
        if hold.is_done() {
            self.release_hold(why, true, now)
        } else {
            // Still waiting for others: the shorter list is news, the clock stays paused.
            self.clock.pause(now, None);
            vec![self.playback_effect(None)]
        }
    }

    /// Ends a hold, if one is under way; with `resume`, playback starts again (scheduled, so
    /// everyone starts together).
    fn release_hold(&mut self, why: HoldOutcome, resume: bool, now: ServerMs) -> Vec<Effect> {
        let Some(hold) = self.hold.take() else {
            return Vec::new();
        };
        self.hold_outcomes.push(why);
        if why == HoldOutcome::Timeout {
            for id in hold.waiting_for() {
                if let Some(m) = self.members.get_mut(&id) {
                    m.held_out = true;
                }
            }
        }
        if !resume {
            return Vec::new();
        }
        let start_at = now + self.start_lead_ms();
        self.clock.play(now, start_at, None);
        vec![self.playback_effect(None)]
    }

    // ---- time ----------------------------------------------------------------------------

    /// The next moment the room must act by itself: a hold's timeout, a scheduled start (to
    /// see whether anyone is still buffering), or the end of the video.
    pub fn next_deadline(&self) -> Option<ServerMs> {
        let hold = self.hold.as_ref().map(Hold::deadline);
        let start = self
            .clock
            .started_at()
            .filter(|t| *t > self.start_checked && self.holds_allowed());
        let end = self.clock.end_at();
        [hold, start, end].into_iter().flatten().reduce(f64::min)
    }

    /// Does what is due at `now` (see [`RoomState::next_deadline`]).
    pub fn on_deadline(&mut self, now: ServerMs) -> Vec<Effect> {
        let mut effects = Vec::new();
        if self.hold.as_ref().is_some_and(|h| h.deadline() <= now) {
            effects.extend(self.release_hold(HoldOutcome::Timeout, true, now));
        }
        if let Some(start) = self.clock.started_at().filter(|t| *t <= now) {
            if start > self.start_checked {
                self.start_checked = start;
                // Members that began buffering before the start (seeking to it) hold it
                // if they are not ready when it comes.
                let buffering: Vec<ParticipantId> = self
                    .members
                    .iter()
                    .filter(|(_, m)| m.buffering)
                    .map(|(id, _)| id.clone())
                    .collect();
                effects.extend(self.hold_for(buffering, now));
            }
        }
        if self.clock.end_at().is_some_and(|t| t <= now) {
            effects.extend(self.advance(None, now));
        }
        effects
    }

    /// Plays the next queued item from the start, or with nothing queued, stops at the end.
    fn advance(&mut self, by: Option<ParticipantId>, now: ServerMs) -> Vec<Effect> {
        match self.queue.pop_front() {
            Some(item) => {
                let start_at = now + self.start_lead_ms();
                self.clock.play_video(now, start_at, item.video);
                vec![self.playback_effect(by), self.queue_effect()]
            }
            None => {
                self.clock.finish(now);
                vec![self.playback_effect(by)]
            }
        }
    }

    // ---- helpers -----------------------------------------------------------------------

    /// The `playback` telling everyone of a change of the clock (which is durable).
    fn playback_effect(&mut self, by: Option<ParticipantId>) -> Effect {
        self.dirty = true;
        Effect::all(ServerMessage::Playback {
            playback: self.playback(),
            by,
        })
    }

    /// The `queue` telling everyone of a change of the queue (which is durable).
    fn queue_effect(&mut self) -> Effect {
        self.dirty = true;
        Effect::all(ServerMessage::Queue {
            items: self.queue.items(),
        })
    }

    /// The `room` telling everyone of a change of control or options (which are durable).
    fn room_effect(&mut self) -> Effect {
        self.dirty = true;
        Effect::all(ServerMessage::Room { room: self.info() })
    }

    fn participant_ref(&self, id: &ParticipantId) -> ParticipantRef {
        ParticipantRef {
            id: id.clone(),
            name: self
                .members
                .get(id)
                .map(|m| m.record.name.clone())
                .unwrap_or_default(),
        }
    }

    /// A member's page learned the length of the video at playback `seq`. A member with
    /// control is believed at once; the others only when a second one agrees within a
    /// second, so that no single viewer can end the video for the room.
    fn media_info(&mut self, id: &ParticipantId, seq: u64, duration: f64) -> Vec<Effect> {
        /// How far two reports of one length may differ (players round differently).
        const AGREE_S: f64 = 1.0;
        if !self.clock.wants_duration(seq) {
            return Vec::new();
        }
        let length = if self.may_control(id).is_ok() {
            duration
        } else {
            let video = self.clock.video_seq();
            if self.length_reports.0 != video {
                self.length_reports = (video, Vec::new());
            }
            let reports = &mut self.length_reports.1;
            reports.retain(|(who, _)| who != id);
            let agreed = reports
                .iter()
                .find(|(_, other)| (other - duration).abs() <= AGREE_S)
                .map(|(_, other)| (other + duration) / 2.0);
            match agreed {
                Some(length) => length,
                None => {
                    // One report per member; a room's members are bounded, and so is this.
                    reports.push((id.clone(), duration));
                    return Vec::new();
                }
            }
        };
        if self.clock.set_duration(seq, length) {
            self.length_reports.1.clear();
            self.dirty = true;
            vec![self.playback_effect(None)]
        } else {
            Vec::new()
        }
    }

    fn may_control(&self, id: &ParticipantId) -> Result<(), RoomError> {
        if self.control == ControlMode::Everyone || self.is_host(id) {
            Ok(())
        } else {
            Err(RoomError::NotHost)
        }
    }

    fn require_host(&self, id: &ParticipantId) -> Result<(), RoomError> {
        if self.is_host(id) {
            Ok(())
        } else {
            Err(RoomError::NotHost)
        }
    }

    /// The lead for a scheduled start: covers the slowest connected member's round trip.
    pub fn start_lead_ms(&self) -> f64 {
        let slowest = self
            .members
            .values()
            .filter(|m| m.is_connected())
            .filter_map(|m| m.rtt_ms)
            .fold(0.0, f64::max);
        start_lead_ms(slowest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::presence::BIG_ROOM_MAX_ENTRIES;

    type Room = RoomState<u32>;

    fn room(settings: RoomSettings) -> (Room, Secret) {
        let token = Secret::generate();
        let room = RoomState::new(
            RoomId::new(),
            "Movie night".into(),
            ControlMode::Host,
            None,
            token.hash(),
            settings,
            0.0,
        );
        (room, token)
    }

    /// A room that counts as big above `threshold` members.
    fn room_big_above(threshold: usize) -> Room {
        room(RoomSettings {
            presence_threshold: threshold,
            ..RoomSettings::default()
        })
        .0
    }

    fn join_full(r: &mut Room, conn: u64, name: &str) -> Joined<u32> {
        r.join(conn, conn as u32, name.into(), None, None, 0.0)
            .unwrap()
    }

    fn join(r: &mut Room, conn: u64, name: &str) -> ParticipantId {
        join_full(r, conn, name).id
    }

    fn apply(r: &mut Room, id: &ParticipantId, command: RoomCommand, now: ServerMs) -> Vec<Effect> {
        r.apply(id, command, now)
            .unwrap_or_else(|e| panic!("refused: {e}"))
    }

    fn status(r: &mut Room, id: &ParticipantId, rtt_ms: f64, drift_ms: f64, buffering: bool) {
        status_at(r, id, rtt_ms, drift_ms, buffering, 0.0);
    }

    fn status_at(
        r: &mut Room,
        id: &ParticipantId,
        rtt_ms: f64,
        drift_ms: f64,
        buffering: bool,
        now: ServerMs,
    ) -> Vec<Effect> {
        let command = RoomCommand::Status {
            rtt_ms,
            drift_ms,
            buffering,
        };
        apply(r, id, command, now)
    }

    fn buffering(r: &mut Room, id: &ParticipantId, on: bool, now: ServerMs) -> Vec<Effect> {
        status_at(r, id, 10.0, 0.0, on, now)
    }

    fn chat(text: &str) -> RoomCommand {
        RoomCommand::Chat { text: text.into() }
    }

    fn play(position: Option<f64>) -> RoomCommand {
        RoomCommand::Play { position }
    }

    fn clip(n: u32) -> Video {
        Video::Url {
            url: format!("/media/{n}.mp4"),
        }
    }

    fn kinds(effects: &[Effect]) -> Vec<String> {
        effects
            .iter()
            .map(|e| {
                let v: serde_json::Value = serde_json::from_str(&e.message.encode()).unwrap();
                v["type"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    /// The last `playback` among `effects`.
    fn last_playback(effects: &[Effect]) -> Playback {
        effects
            .iter()
            .rev()
            .find_map(|e| match &e.message {
                ServerMessage::Playback { playback, .. } => Some(playback.clone()),
                _ => None,
            })
            .expect("a playback effect")
    }

    fn queue_ids(effects: &[Effect]) -> Vec<u64> {
        effects
            .iter()
            .rev()
            .find_map(|e| match &e.message {
                ServerMessage::Queue { items } => Some(items.iter().map(|i| i.id).collect()),
                _ => None,
            })
            .expect("a queue effect")
    }

    fn resume_token(joined: &Joined<u32>) -> String {
        match &joined.welcome {
            ServerMessage::Welcome(w) => w.resume_token.clone(),
            other => panic!("not a welcome: {other:?}"),
        }
    }

    /// A room with a loaded video, Ann (host, conn 1) and Bob (conn 2), both reporting a
    /// 10 ms round trip, playing from 0 with the start at 1000 ms.
    fn playing_room() -> (Room, ParticipantId, ParticipantId) {
        let (mut r, _) = room(RoomSettings::default());
        let a = join(&mut r, 1, "Ann");
        let b = join(&mut r, 2, "Bob");
        apply(&mut r, &a, RoomCommand::Load { video: clip(1) }, 0.0);
        status(&mut r, &a, 10.0, 0.0, false);
        status(&mut r, &b, 10.0, 0.0, false);
        apply(&mut r, &a, play(Some(0.0)), 900.0);
        assert_eq!(r.playback().anchor, 1000.0);
        (r, a, b)
    }

    #[test]
    fn first_member_of_a_hostless_room_becomes_host() {
        let (mut r, _) = room(RoomSettings::default());
        let a = join_full(&mut r, 1, "Ann");
        assert_eq!(kinds(&a.effects), ["host", "joined"]);
        assert_eq!(r.host().unwrap().id, a.id);
        assert_eq!(r.host().unwrap().name, "Ann");
        let b = join_full(&mut r, 2, "Bob");
        assert_eq!(kinds(&b.effects), ["joined"]);
        assert_eq!(b.effects[0].to, Audience::AllExcept(b.id.clone()));
        assert_eq!(r.host().unwrap().id, a.id);
    }

    #[test]
    fn host_token_claims_the_role_from_whoever_has_it() {
        let (mut r, token) = room(RoomSettings::default());
        let a = join(&mut r, 1, "Ann");
        let c = r
            .join(2, 2, "Cat".into(), Some(token.as_str()), None, 0.0)
            .unwrap();
        assert_eq!(r.host().unwrap().id, c.id);
        assert_ne!(c.id, a);
        assert_eq!(kinds(&c.effects), ["host", "joined"]);
        let wrong = r
            .join(3, 3, "Eve".into(), Some("guess"), None, 0.0)
            .unwrap();
        assert_eq!(r.host().unwrap().id, c.id);
        assert_eq!(kinds(&wrong.effects), ["joined"]);
    }

    #[test]
    fn a_resumed_creator_does_not_take_back_a_role_it_handed_on() {
        let (mut r, token) = room(RoomSettings::default());
        let ann = r
            .join(1, 1, "Ann".into(), Some(token.as_str()), None, 0.0)
            .unwrap();
        let a = ann.id.clone();
        let b = join(&mut r, 2, "Bob");
        apply(&mut r, &a, RoomCommand::TransferHost { to: b.clone() }, 0.0);
        r.disconnect(&a, 1, 10.0);
        let back = r
            .join(
                3,
                3,
                "Ann".into(),
                Some(token.as_str()),
                Some(&resume_token(&ann)),
                20.0,
            )
            .unwrap();
        assert!(back.resumed);
        assert_eq!(r.host().unwrap().id, b, "Bob keeps the role");
        assert!(back.effects.is_empty(), "{:?}", back.effects);
    }

    #[test]
    fn host_keeps_role_through_grace_then_longest_present_connected_member_takes_over() {
        let (mut r, _) = room(RoomSettings::default());
        let a = join(&mut r, 1, "Ann");
        let b = join(&mut r, 2, "Bob");
        let c = join(&mut r, 3, "Cat");
        r.disconnect(&b, 2, 0.0); // Bob is away too: he must not inherit
        r.tick(1.0);
        r.disconnect(&a, 1, 1000.0);
        let effects = r.tick(5_000.0);
        assert_eq!(r.host().unwrap().id, a, "role kept during grace");
        assert_eq!(kinds(&effects), ["presence"]);
        let effects = r.tick(11_000.0);
        assert_eq!(kinds(&effects), ["left", "host", "left", "presence"]);
        assert_eq!(r.host().unwrap().id, c);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn resume_within_grace_keeps_identity_without_noise() {
        let (mut r, _) = room(RoomSettings::default());
        let a = join(&mut r, 1, "Ann");
        let bob = join_full(&mut r, 2, "Bob");
        let b = bob.id.clone();
        r.tick(0.0);
        r.disconnect(&b, 2, 100.0);
        let back = r
            .join(3, 3, "Bob".into(), None, Some(&resume_token(&bob)), 5_000.0)
            .unwrap();
        assert_eq!(back.id, b);
        assert!(back.resumed);
        assert!(
            back.effects.is_empty(),
            "no joined/left noise: {:?}",
            back.effects
        );
        // Presence announces the entry (connected again) but never a left.
        let effects = r.tick(20_000.0);
        assert_eq!(kinds(&effects), ["presence"]);
        assert_eq!(r.len(), 2);
        assert_eq!(r.host().unwrap().id, a);
        // A late close of the old connection does not disconnect the resumed one.
        r.disconnect(&b, 2, 20_000.0);
        assert_eq!(r.link(&b), Some((3, &3)));
    }

    #[test]
    fn resume_while_old_connection_is_still_open_replaces_it() {
        let (mut r, _) = room(RoomSettings::default());
        let ann = join_full(&mut r, 1, "Ann");
        let again = r
            .join(2, 2, "Ann".into(), None, Some(&resume_token(&ann)), 0.0)
            .unwrap();
        assert_eq!(again.id, ann.id);
        assert_eq!(again.replaced, Some(1));
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn room_full_refuses_newcomers_but_not_resumes() {
        let (mut r, _) = room(RoomSettings {
            max_members: 1,
            ..RoomSettings::default()
        });
        let ann = join_full(&mut r, 1, "Ann");
        assert_eq!(
            r.join(2, 2, "Bob".into(), None, None, 0.0).unwrap_err(),
            RoomError::RoomFull(1)
        );
        r.disconnect(&ann.id, 1, 0.0);
        let token = resume_token(&ann);
        assert!(r.join(3, 3, "Ann".into(), None, Some(&token), 0.0).is_ok());
    }

    #[test]
    fn only_the_host_controls_unless_everyone_may() {
        let (mut r, _) = room(RoomSettings::default());
        let a = join(&mut r, 1, "Ann");
        let b = join(&mut r, 2, "Bob");
        assert_eq!(
            r.apply(&b, play(None), 0.0).unwrap_err(),
            RoomError::NotHost
        );
        let everyone = RoomCommand::SetControl {
            control: ControlMode::Everyone,
        };
        assert_eq!(
            r.apply(&b, everyone.clone(), 0.0).unwrap_err(),
            RoomError::NotHost
        );
        assert_eq!(kinds(&apply(&mut r, &a, everyone, 0.0)), ["room"]);
        let fx = apply(&mut r, &b, RoomCommand::Seek { position: 12.0 }, 0.0);
        assert_eq!(kinds(&fx), ["playback"]);
        assert_eq!(r.playback().position, 12.0);
        assert_eq!(r.playback().seq, 1);
        // Even in "everyone" mode, host-only actions stay with the host.
        let transfer = RoomCommand::TransferHost { to: b.clone() };
        assert_eq!(r.apply(&b, transfer, 0.0).unwrap_err(), RoomError::NotHost);
        let options = RoomCommand::SetOptions {
            wait_for_buffering: Some(false),
            buffering_timeout_s: None,
        };
        assert_eq!(r.apply(&b, options, 0.0).unwrap_err(), RoomError::NotHost);
        // And a stranger is no member at all.
        let ghost = ParticipantId::from("ghost");
        assert_eq!(
            r.apply(&ghost, play(None), 0.0).unwrap_err(),
            RoomError::NotMember
        );
    }

    #[test]
    fn play_is_scheduled_ahead_by_the_slowest_members_rtt() {
        let (mut r, _) = room(RoomSettings::default());
        let a = join(&mut r, 1, "Ann");
        let b = join(&mut r, 2, "Bob");
        status(&mut r, &a, 20.0, 0.0, false);
        status(&mut r, &b, 300.0, 0.0, false);
        apply(&mut r, &a, play(Some(0.0)), 10_000.0);
        let p = r.playback();
        assert!(!p.paused);
        assert_eq!(
            p.anchor,
            10_000.0 + 300.0 + crate::room::playback::START_MARGIN_MS
        );
        // A disconnected member's stale rtt no longer delays everyone.
        r.disconnect(&b, 2, 10_000.0);
        assert_eq!(r.start_lead_ms(), 20.0 + 80.0);
    }

    #[test]
    fn transfer_host_requires_a_connected_target() {
        let (mut r, _) = room(RoomSettings::default());
        let a = join(&mut r, 1, "Ann");
        let b = join(&mut r, 2, "Bob");
        let ghost = ParticipantId::from("nobody");
        assert!(matches!(
            r.apply(&a, RoomCommand::TransferHost { to: ghost }, 0.0),
            Err(RoomError::NoSuchParticipant(_))
        ));
        let fx = apply(&mut r, &a, RoomCommand::TransferHost { to: b.clone() }, 0.0);
        assert_eq!(kinds(&fx), ["host"]);
        assert_eq!(r.host().unwrap().id, b);
        // Both entries changed (is_host), so the next presence carries both.
        match &r.tick(0.0).last().unwrap().message {
            ServerMessage::Presence { participants, .. } => assert_eq!(participants.len(), 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn chat_is_rate_limited_and_logged() {
        let (mut r, _) = room(RoomSettings {
            chat_history: 2,
            chat_burst: 3,
            ..RoomSettings::default()
        });
        let a = join(&mut r, 1, "Ann");
        for i in 0..3 {
            assert_eq!(
                kinds(&apply(&mut r, &a, chat(&format!("m{i}")), 0.0)),
                ["chat"]
            );
        }
        assert_eq!(
            r.apply(&a, chat("flood"), 0.0).unwrap_err(),
            RoomError::ChatRateLimited
        );
        assert!(r.apply(&a, chat("later"), 1000.0).is_ok());
        let texts: Vec<_> = r.chat.recent().map(|m| m.text.clone()).collect();
        assert_eq!(texts, ["m2", "later"]);
    }

    #[test]
    fn small_room_presence_carries_only_changed_entries() {
        let (mut r, _) = room(RoomSettings::default());
        let a = join(&mut r, 1, "Ann");
        let b = join(&mut r, 2, "Bob");
        r.tick(0.0);
        assert!(r.tick(1.0).is_empty(), "nothing changed, nothing sent");
        status(&mut r, &b, 10.0, 1.0, false);
        status(&mut r, &b, 10.0, 2.0, false);
        let fx = r.tick(2.0);
        match &fx[0].message {
            ServerMessage::Presence {
                participants,
                left,
                count,
                host_id,
                ..
            } => {
                assert_eq!(participants.len(), 1);
                assert_eq!(participants[0].id, b);
                assert_eq!(participants[0].drift_ms, Some(2.0));
                assert!(left.is_empty());
                assert_eq!(*count, 2);
                assert_eq!(host_id.as_ref(), Some(&a));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn big_room_batches_membership_and_drops_insignificant_status() {
        let mut r = room_big_above(3);
        let ids: Vec<_> = (0..3).map(|i| join(&mut r, i, "m")).collect();
        r.tick(0.0);
        // The fourth member makes the room big: no per-join broadcast.
        let d = join_full(&mut r, 9, "Dan");
        assert!(d.effects.is_empty(), "{:?}", d.effects);
        status(&mut r, &ids[1], 10.0, 5.0, false);
        r.tick(1.0);
        status(&mut r, &ids[1], 12.0, 8.0, false); // same bands: not news
        assert!(r.tick(2.0).is_empty());
        status(&mut r, &ids[1], 12.0, 400.0, false); // drift band changed
        status(&mut r, &ids[2], 12.0, 0.0, true); // buffering flipped
        let fx = r.tick(3.0);
        match &fx[0].message {
            ServerMessage::Presence { participants, .. } => assert_eq!(participants.len(), 2),
            other => panic!("{other:?}"),
        }
        // Leaving is batched too.
        let (_, fx) = r.evict(&ids[2], 2, 3.5);
        assert!(kinds(&fx).is_empty());
        match &r.tick(4.0)[0].message {
            ServerMessage::Presence { left, count, .. } => {
                assert_eq!(left, &vec![ids[2].clone()]);
                assert_eq!(*count, 3);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn big_room_presence_size_is_bounded_and_drains_over_ticks() {
        let mut r = room_big_above(1);
        join(&mut r, 0, "first");
        r.tick(0.0);
        for i in 1..=30 {
            join(&mut r, i, "m");
        }
        let mut seen = 0;
        let mut ticks = 0;
        loop {
            let fx = r.tick(ticks as f64);
            let Some(Effect {
                message: ServerMessage::Presence { participants, .. },
                ..
            }) = fx.last()
            else {
                break;
            };
            assert!(participants.len() <= BIG_ROOM_MAX_ENTRIES);
            seen += participants.len();
            ticks += 1;
        }
        assert_eq!(seen, 30);
        assert_eq!(ticks, 3);
    }

    /// The entries and totals of a presence among `fx`, if there is one.
    fn presence(fx: &[Effect]) -> Option<(Vec<Entry>, usize, usize, usize)> {
        fx.iter().find_map(|e| match &e.message {
            ServerMessage::Presence {
                participants,
                count,
                buffering_count,
                out_of_sync_count,
                ..
            } => Some((
                participants.clone(),
                *count,
                *buffering_count,
                *out_of_sync_count,
            )),
            _ => None,
        })
    }

    #[test]
    fn big_room_news_about_members_goes_before_newcomers_and_totals_are_always_current() {
        let mut r = room_big_above(3);
        let early: Vec<_> = (0..4).map(|i| join(&mut r, i, "early")).collect();
        while presence(&r.tick(0.0)).is_some() {} // announce the early members
        for i in 10..60 {
            join(&mut r, i, "late");
        }
        status(&mut r, &early[1], 10.0, 0.0, true); // buffering
        status(&mut r, &early[2], 10.0, 600.0, false); // out of sync
        let (entries, count, buffering, out_of_sync) = presence(&r.tick(1.0)).unwrap();
        assert_eq!(entries.len(), BIG_ROOM_MAX_ENTRIES);
        assert_eq!(
            (entries[0].id.clone(), entries[1].id.clone()),
            (early[1].clone(), early[2].clone())
        );
        assert!(entries[2..].iter().all(|e| e.name == "late"));
        assert_eq!((count, buffering, out_of_sync), (54, 1, 1));
    }

    #[test]
    fn big_room_skips_changes_that_reverted_before_the_tick() {
        let mut r = room_big_above(2);
        let ids: Vec<_> = (0..4).map(|i| join(&mut r, i, "m")).collect();
        for id in &ids {
            status(&mut r, id, 10.0, 0.0, false);
        }
        while presence(&r.tick(0.0)).is_some() {}
        // A short buffering spell within one tick: nothing to tell.
        status(&mut r, &ids[3], 10.0, 0.0, true);
        status(&mut r, &ids[3], 10.0, 0.0, false);
        assert!(r.tick(1.0).is_empty());
        // Still buffering at the tick: the entry and the count say so.
        status(&mut r, &ids[3], 10.0, 0.0, true);
        let (entries, _, buffering, _) = presence(&r.tick(2.0)).unwrap();
        assert_eq!((entries.len(), buffering), (1, 1));
        // Ending the spell is news again, but a band-internal change alongside it is not.
        status(&mut r, &ids[3], 10.0, 0.0, false);
        status(&mut r, &ids[2], 20.0, 10.0, false);
        let (entries, _, buffering, _) = presence(&r.tick(3.0)).unwrap();
        assert_eq!(entries.iter().map(|e| &e.id).collect::<Vec<_>>(), [&ids[3]]);
        assert_eq!(buffering, 0);
    }

    #[test]
    fn eviction_is_immediate_and_hands_over_host() {
        let (mut r, _) = room(RoomSettings::default());
        let a = join(&mut r, 1, "Ann");
        let b = join(&mut r, 2, "Bob");
        let (stale, fx) = r.evict(&a, 99, 0.0);
        assert!(
            stale.is_none() && fx.is_empty(),
            "wrong connection id is ignored"
        );
        let (link, fx) = r.evict(&a, 1, 0.0);
        assert_eq!(link, Some(1));
        assert_eq!(kinds(&fx), ["left", "host"]);
        assert_eq!(r.host().unwrap().id, b);
    }

    #[test]
    fn welcome_carries_live_clock_members_chat_queue_and_options() {
        let (mut r, _) = room(RoomSettings::default());
        let a = join(&mut r, 1, "Ann");
        apply(&mut r, &a, chat("hello"), 5.0);
        apply(&mut r, &a, play(Some(3.0)), 0.0);
        let add = RoomCommand::QueueAdd {
            video: clip(2),
            title: Some("Part two".into()),
        };
        apply(&mut r, &a, add, 0.0);
        let bob = r.join(2, 2, "Bob".into(), None, None, 7.0).unwrap();
        let v: serde_json::Value = serde_json::from_str(&bob.welcome.encode()).unwrap();
        assert_eq!(v["type"], "welcome");
        assert_eq!(v["you"]["name"], "Bob");
        assert_eq!(v["host_id"], a.as_str());
        assert_eq!(v["participants"].as_array().unwrap().len(), 2);
        assert_eq!(v["participants"][0]["is_host"], true);
        assert_eq!(v["chat"][0]["text"], "hello");
        assert_eq!(v["playback"]["paused"], false);
        assert_eq!(v["playback"]["duration"], serde_json::Value::Null);
        assert_eq!(v["playback"]["ended"], false);
        assert_eq!(v["playback"]["waiting_for"], serde_json::json!([]));
        assert_eq!(v["queue"][0]["title"], "Part two");
        assert_eq!(v["queue"][0]["added_by"]["name"], "Ann");
        assert_eq!(v["room"]["wait_for_buffering"], true);
        assert_eq!(v["room"]["buffering_timeout_s"], 8.0);
        assert_eq!(v["server_time"], 7.0);
        assert_eq!(v["resume_token"].as_str().unwrap().len(), 64);
    }

    // ---- storage ------------------------------------------------------------------------

    #[test]
    fn a_room_comes_back_from_its_record_with_identities_host_clock_queue_and_chat() {
        let (mut r, host_token) = room(RoomSettings::default());
        let ann = r
            .join(1, 1, "Ann".into(), Some(host_token.as_str()), None, 0.0)
            .unwrap();
        let bob = join_full(&mut r, 2, "Bob");
        apply(&mut r, &ann.id, RoomCommand::Load { video: clip(1) }, 0.0);
        apply(
            &mut r,
            &ann.id,
            RoomCommand::QueueAdd {
                video: clip(2),
                title: None,
            },
            0.0,
        );
        let said = apply(&mut r, &bob.id, chat("hello"), 5.0);
        apply(&mut r, &ann.id, play(Some(10.0)), 1000.0);
        assert!(r.take_dirty());
        assert!(!r.take_dirty(), "taken");
        let stored = r.to_record().to_bytes();
        let text = String::from_utf8(stored.clone()).unwrap();
        for secret in [
            host_token.as_str().to_owned(),
            resume_token(&ann),
            resume_token(&bob),
        ] {
            assert!(!text.contains(&secret), "a token was stored");
        }
        let stored_chat: Vec<ChatMessage> = said
            .iter()
            .filter_map(|e| match &e.message {
                ServerMessage::Chat { message } => Some(message.clone()),
                _ => None,
            })
            .collect();

        // The next process, 5 s later.
        let record = RoomRecord::from_bytes(&stored).unwrap();
        let mut back: Room =
            RoomState::from_record(record, stored_chat, RoomSettings::default(), 6000.0);
        assert_eq!(back.len(), 2, "both count while within grace");
        assert_eq!(back.host().unwrap().id, ann.id);
        assert!(back.entries().iter().all(|e| !e.connected));
        let p = back.playback();
        assert!(!p.paused);
        let live = p.position + (6000.0 - p.anchor) / 1000.0 * p.rate;
        assert!(
            (live - 15.0).abs() < 0.2,
            "plays on at the live position: {live}"
        );
        // Bob resumes as himself: same id, no noise, chat ids continue.
        let again = r_join_resume(&mut back, 7, "Bob", &resume_token(&bob), 6100.0);
        assert_eq!(again.id, bob.id);
        assert!(again.resumed && again.effects.is_empty());
        match &again.welcome {
            ServerMessage::Welcome(w) => {
                assert_eq!(w.chat.len(), 1);
                assert_eq!(w.queue.len(), 1);
                assert_eq!(w.host_id.as_ref(), Some(&ann.id));
            }
            other => panic!("{other:?}"),
        }
        let fx = apply(&mut back, &bob.id, chat("again"), 6200.0);
        match &fx[0].message {
            ServerMessage::Chat { message } => assert_eq!(message.id, 2),
            other => panic!("{other:?}"),
        }
        // Ann is still host after her grace... as long as she comes back within it.
        assert!(back
            .tick(6000.0 + 10_001.0)
            .iter()
            .any(|e| kinds(std::slice::from_ref(e)) == ["left"]));
        assert_eq!(
            back.host().unwrap().id,
            bob.id,
            "her grace ran out: the role passed on"
        );
    }

    fn r_join_resume(
        r: &mut Room,
        conn: u64,
        name: &str,
        token: &str,
        now: ServerMs,
    ) -> Joined<u32> {
        r.join(conn, conn as u32, name.into(), None, Some(token), now)
            .unwrap()
    }

    #[test]
    fn a_room_stored_on_hold_plays_on_when_it_comes_back() {
        let (mut r, _, b) = playing_room();
        r.on_deadline(1000.0);
        buffering(&mut r, &b, true, 2000.0);
        let record = r.to_record();
        assert!(record.held);
        let back: Room =
            RoomState::from_record(record, Vec::new(), RoomSettings::default(), 9000.0);
        let p = back.playback();
        assert!(!p.paused && p.waiting_for.is_empty());
        assert!((p.position - 1.0).abs() < 1e-9);
    }

    #[test]
    fn a_record_of_another_version_is_refused() {
        let (r, _) = room(RoomSettings::default());
        let mut record = r.to_record();
        record.version = 99;
        assert!(matches!(
            RoomRecord::from_bytes(&record.to_bytes()),
            Err(crate::room::record::RecordError::Version(99))
        ));
        assert!(RoomRecord::from_bytes(b"{not json").is_err());
    }

    // ---- queue and the end of a video -----------------------------------------------------

    #[test]
    fn the_queue_is_edited_by_those_in_control_and_broadcast_whole() {
        let (mut r, _) = room(RoomSettings {
            max_queue: 3,
            ..RoomSettings::default()
        });
        let a = join(&mut r, 1, "Ann");
        let b = join(&mut r, 2, "Bob");
        for n in 1..=3 {
            let fx = apply(
                &mut r,
                &a,
                RoomCommand::QueueAdd {
                    video: clip(n),
                    title: None,
                },
                0.0,
            );
            assert_eq!(kinds(&fx), ["queue"]);
        }
        let add = RoomCommand::QueueAdd {
            video: clip(4),
            title: None,
        };
        assert_eq!(
            r.apply(&a, add.clone(), 0.0).unwrap_err(),
            RoomError::QueueFull(3)
        );
        assert_eq!(r.apply(&b, add, 0.0).unwrap_err(), RoomError::NotHost);
        let fx = apply(
            &mut r,
            &a,
            RoomCommand::QueueMove {
                item_id: 3,
                index: 0,
            },
            0.0,
        );
        assert_eq!(queue_ids(&fx), [3, 1, 2]);
        let fx = apply(&mut r, &a, RoomCommand::QueueRemove { item_id: 1 }, 0.0);
        assert_eq!(queue_ids(&fx), [3, 2]);
        assert_eq!(
            r.apply(&a, RoomCommand::QueueRemove { item_id: 1 }, 0.0)
                .unwrap_err(),
            RoomError::NoSuchQueueItem(1)
        );
    }

    #[test]
    fn next_plays_the_front_item_now_and_refuses_an_empty_queue() {
        let (mut r, _) = room(RoomSettings::default());
        let a = join(&mut r, 1, "Ann");
        assert_eq!(
            r.apply(&a, RoomCommand::Next, 0.0).unwrap_err(),
            RoomError::QueueEmpty
        );
        apply(
            &mut r,
            &a,
            RoomCommand::QueueAdd {
                video: clip(7),
                title: None,
            },
            0.0,
        );
        let fx = apply(&mut r, &a, RoomCommand::Next, 1000.0);
        assert_eq!(kinds(&fx), ["playback", "queue"]);
        let p = last_playback(&fx);
        assert_eq!(p.video, Some(clip(7)));
        assert!(!p.paused);
        assert_eq!((p.position, p.anchor), (0.0, 1000.0 + r.start_lead_ms()));
        assert_eq!(queue_ids(&fx), Vec::<u64>::new());
    }

    #[test]
    fn a_viewer_alone_cannot_set_the_length_but_two_that_agree_can() {
        let (mut r, _a, b) = playing_room();
        let c = join(&mut r, 3, "Cat");
        let d = join(&mut r, 4, "Dee");
        let seq = r.playback().seq;
        let report = |duration| RoomCommand::MediaInfo { seq, duration };
        assert!(apply(&mut r, &b, report(0.5), 1500.0).is_empty());
        assert!(
            apply(&mut r, &b, report(30.0), 1500.0).is_empty(),
            "a member's second report replaces its first, it does not agree with it"
        );
        assert!(apply(&mut r, &c, report(31.5), 1500.0).is_empty());
        let fx = apply(&mut r, &d, report(30.4), 1600.0);
        assert_eq!(last_playback(&fx).duration, Some(30.2));
    }

    #[test]
    fn the_first_plausible_duration_counts_and_the_end_advances_the_queue() {
        let (mut r, a, b) = playing_room();
        let seq = r.playback().seq;
        assert_eq!(
            r.next_deadline(),
            Some(1000.0),
            "the start is checked for buffering"
        );
        r.on_deadline(1000.0);
        assert_eq!(r.next_deadline(), None, "no end without a duration");
        let fx = apply(
            &mut r,
            &a,
            RoomCommand::MediaInfo {
                seq,
                duration: 30.0,
            },
            1500.0,
        );
        assert_eq!(last_playback(&fx).duration, Some(30.0));
        assert!(r
            .apply(
                &b,
                RoomCommand::MediaInfo {
                    seq,
                    duration: 99.0
                },
                1600.0
            )
            .unwrap()
            .is_empty());
        assert_eq!(r.next_deadline(), Some(31_000.0));
        apply(
            &mut r,
            &a,
            RoomCommand::QueueAdd {
                video: clip(2),
                title: None,
            },
            2000.0,
        );
        assert!(r.on_deadline(30_999.0).is_empty(), "not yet");
        let fx = r.on_deadline(31_000.0);
        assert_eq!(kinds(&fx), ["playback", "queue"]);
        let p = last_playback(&fx);
        assert_eq!(p.video, Some(clip(2)));
        assert!(!p.paused && p.position == 0.0 && p.duration.is_none());
        assert_eq!(p.anchor, 31_000.0 + r.start_lead_ms());
        match &fx[0].message {
            ServerMessage::Playback { by, .. } => assert_eq!(*by, None, "the room itself"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn with_nothing_queued_the_room_stops_at_the_end() {
        let (mut r, a, _) = playing_room();
        let seq = r.playback().seq;
        apply(
            &mut r,
            &a,
            RoomCommand::MediaInfo { seq, duration: 5.0 },
            1000.0,
        );
        let fx = r.on_deadline(6000.0);
        let p = last_playback(&fx);
        assert!(p.paused && p.ended);
        assert_eq!(p.position, 5.0);
        assert_eq!(r.next_deadline(), None);
    }

    // ---- holds ------------------------------------------------------------------------

    #[test]
    fn a_buffering_member_holds_the_room_until_it_is_ready() {
        let (mut r, _, b) = playing_room();
        r.on_deadline(1000.0);
        let fx = buffering(&mut r, &b, true, 2000.0);
        let p = last_playback(&fx);
        assert!(p.paused);
        assert_eq!(p.waiting_for, vec![b.clone()]);
        assert!(
            (p.position - 1.0).abs() < 1e-9,
            "held where it was: {}",
            p.position
        );
        assert_eq!(r.next_deadline(), Some(2000.0 + 8000.0), "the timeout");
        assert_eq!(p.hold_until, Some(10_000.0), "and every page knows it");
        let fx = buffering(&mut r, &b, false, 3000.0);
        let p = last_playback(&fx);
        assert!(!p.paused && p.waiting_for.is_empty());
        assert_eq!(p.hold_until, None);
        assert_eq!(p.anchor, 3000.0 + r.start_lead_ms(), "a scheduled restart");
        assert_eq!(r.take_hold_outcomes(), [HoldOutcome::Ready]);
    }

    #[test]
    fn a_hold_ends_when_its_member_leaves_or_at_the_timeout() {
        let (mut r, _, b) = playing_room();
        r.on_deadline(1000.0);
        buffering(&mut r, &b, true, 2000.0);
        let fx = r.disconnect(&b, 2, 2500.0);
        assert!(!last_playback(&fx).paused);
        assert_eq!(r.take_hold_outcomes(), [HoldOutcome::Left]);

        let (mut r, _, b2) = playing_room();
        r.on_deadline(1000.0);
        buffering(&mut r, &b2, true, 2000.0);
        assert!(r.on_deadline(9999.0).is_empty());
        let fx = r.on_deadline(10_000.0);
        assert!(!last_playback(&fx).paused, "played on without Bob");
        assert_eq!(r.take_hold_outcomes(), [HoldOutcome::Timeout]);
        // Still buffering, Bob does not hold the next start again...
        let start = r.playback().anchor;
        assert!(r.on_deadline(start).is_empty());
        // ...until he has been ready once.
        buffering(&mut r, &b2, false, start + 10.0);
        let fx = buffering(&mut r, &b2, true, start + 20.0);
        assert_eq!(last_playback(&fx).waiting_for, vec![b2.clone()]);
    }

    #[test]
    fn members_still_buffering_when_a_start_comes_hold_it() {
        let (mut r, a, b) = playing_room();
        // Both seek to the start and buffer before it; Ann is ready in time, Bob is not.
        assert!(
            buffering(&mut r, &a, true, 950.0).is_empty(),
            "not started yet"
        );
        buffering(&mut r, &b, true, 960.0);
        buffering(&mut r, &a, false, 990.0);
        let fx = r.on_deadline(1000.0);
        assert_eq!(last_playback(&fx).waiting_for, vec![b.clone()]);
    }

    #[test]
    fn a_pause_during_a_hold_cancels_it_and_more_buffering_members_join_it() {
        let (mut r, a, b) = playing_room();
        let c = join(&mut r, 3, "Cat");
        r.on_deadline(1000.0);
        buffering(&mut r, &b, true, 2000.0);
        let fx = buffering(&mut r, &c, true, 2100.0);
        assert_eq!(last_playback(&fx).waiting_for, [b.clone(), c.clone()]);
        let fx = buffering(&mut r, &b, false, 2200.0);
        let p = last_playback(&fx);
        assert!(
            p.paused && p.waiting_for == [c.clone()],
            "still waiting for Cat"
        );
        let fx = apply(&mut r, &a, RoomCommand::Pause { position: None }, 2300.0);
        let p = last_playback(&fx);
        assert!(p.paused && p.waiting_for.is_empty());
        assert_eq!(r.take_hold_outcomes(), [HoldOutcome::Cancelled]);
        assert_eq!(r.next_deadline(), None);
    }

    #[test]
    fn big_rooms_and_rooms_that_opted_out_never_hold() {
        let (mut r, a, b) = playing_room();
        r.on_deadline(1000.0);
        let off = RoomCommand::SetOptions {
            wait_for_buffering: Some(false),
            buffering_timeout_s: Some(3.0),
        };
        let fx = apply(&mut r, &a, off, 1500.0);
        assert_eq!(kinds(&fx), ["room"]);
        assert!(buffering(&mut r, &b, true, 2000.0).is_empty());
        assert!(!r.playback().paused);

        let mut big = room_big_above(2);
        let host = join(&mut big, 1, "Ann");
        let ids: Vec<_> = (2..5).map(|i| join(&mut big, i, "m")).collect();
        apply(&mut big, &host, RoomCommand::Load { video: clip(1) }, 0.0);
        apply(&mut big, &host, play(Some(0.0)), 0.0);
        let start = big.playback().anchor;
        big.on_deadline(start);
        assert!(buffering(&mut big, &ids[0], true, start + 1.0).is_empty());
        assert!(!big.playback().paused);
    }
}
