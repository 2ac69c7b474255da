//! A room's rules as plain data: state in, new state and outgoing messages out.
//!
//! [`RoomState`] knows nothing about actors or sockets. Every operation takes the current
//! server time and returns [`Effect`]s, typed messages addressed to participants, which the
//! room actor encodes once and delivers. It is generic over `L`, the handle used to reach a
//! connected participant, so unit tests use plain numbers where the actor uses mailboxes.

use indexmap::IndexMap;

use crate::clock::ServerMs;
use crate::error::RoomError;
use crate::ids::{ParticipantId, RoomId, Secret};
use crate::limits::TokenBucket;
use crate::protocol::{
    clean_chat, clean_name, ChatMessage, ControlMode, Entry, ParticipantRef, Playback, RoomInfo,
    ServerMessage, Video, Welcome,
};
use crate::room::chat::ChatLog;
use crate::room::playback::{start_lead_ms, PlaybackClock};
use crate::room::presence::{band, PendingPresence, Shown, DRIFT_BANDS_MS, RTT_BANDS_MS};

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

/// One participant.
#[derive(Debug)]
pub(super) struct Member<L> {
    /// Display name.
    name: String,
    /// Proves ownership of this membership when reconnecting.
    resume_token: Secret,
    /// The live connection, if any: its id and the handle to reach it.
    pub(super) link: Option<(ConnId, L)>,
    /// When the connection dropped; the grace period runs from here.
    away_since: Option<ServerMs>,
    /// Last reported round trip.
    rtt_ms: Option<f64>,
    /// Last reported drift.
    pub(super) drift_ms: Option<f64>,
    /// Last reported buffering flag.
    pub(super) buffering: bool,
    /// What the room last announced about this member (`None`: never announced, or its name
    /// changed), so a change that reverted before the next `presence` is not sent again.
    pub(super) shown: Option<Shown>,
    /// Chat flood control.
    chat_bucket: TokenBucket,
}

impl<L> Member<L> {
    pub(super) fn shown(&self, is_host: bool) -> Shown {
        Shown {
            connected: self.link.is_some(),
            is_host,
            buffering: self.buffering,
            rtt_band: band(self.rtt_ms, &RTT_BANDS_MS),
            drift_band: band(self.drift_ms, &DRIFT_BANDS_MS),
        }
    }

    pub(super) fn entry(&self, id: &ParticipantId, is_host: bool) -> Entry {
        Entry {
            id: id.clone(),
            name: self.name.clone(),
            is_host,
            rtt_ms: self.rtt_ms,
            drift_ms: self.drift_ms,
            buffering: self.buffering,
            connected: self.link.is_some(),
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
    /// Messages for the others (joined, host changes).
    pub effects: Vec<Effect>,
}

/// The room: clock, members, host, chat, pending presence.
#[derive(Debug)]
pub struct RoomState<L> {
    /// The room's id.
    id: RoomId,
    /// Display name of the room.
    name: String,
    /// Who may control playback.
    control: ControlMode,
    /// Secret whose holder becomes host on join.
    host_token: Secret,
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
        host_token: Secret,
        settings: RoomSettings,
        now: ServerMs,
    ) -> Self {
        RoomState {
            id,
            name,
            control,
            host_token,
            chat: ChatLog::new(settings.chat_history, settings.chat_history_bytes),
            settings,
            clock: PlaybackClock::new(video, now),
            members: IndexMap::new(),
            host: None,
            presence: PendingPresence::default(),
        }
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
        }
    }

    /// The live clock.
    pub fn playback(&self) -> Playback {
        self.clock.snapshot()
    }

    /// The host's id and name, if there is a host.
    pub fn host(&self) -> Option<ParticipantRef> {
        let id = self.host.as_ref()?;
        let member = self.members.get(id)?;
        Some(ParticipantRef {
            id: id.clone(),
            name: member.name.clone(),
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

    /// The `welcome` for participant `id` (which must be a member).
    pub fn welcome(&self, id: &ParticipantId, now: ServerMs) -> Option<ServerMessage> {
        let m = self.members.get(id)?;
        Some(ServerMessage::Welcome(Box::new(Welcome {
            you: ParticipantRef {
                id: id.clone(),
                name: m.name.clone(),
            },
            resume_token: m.resume_token.as_str().to_owned(),
            room: self.info(),
            host_id: self.host.clone(),
            participants: self.entries(),
            playback: self.clock.snapshot(),
            chat: self.chat.recent().cloned().collect(),
            server_time: now,
            big_room_threshold: self.settings.presence_threshold,
        })))
    }

    /// Admits a connection: a new participant, or a resumed one if `resume_token` matches.
    pub fn join(
        &mut self,
        conn: ConnId,
        link: L,
        name: &str,
        host_token: Option<&str>,
        resume_token: Option<&str>,
        now: ServerMs,
    ) -> Result<Joined<L>, RoomError> {
        let name = clean_name(name).map_err(RoomError::InvalidName)?;
        let existing = resume_token.and_then(|token| {
            self.members
                .iter()
                .find(|(_, m)| m.resume_token.matches(token))
                .map(|(id, _)| id.clone())
        });
        let mut effects = Vec::new();
        let (id, replaced, resumed) = match existing {
            Some(id) => {
                // unwrap: `id` was just found in `members`
                let m = self.members.get_mut(&id).unwrap();
                let replaced = m.link.replace((conn, link)).map(|(_, old)| old);
                m.away_since = None;
                if m.name != name {
                    m.name = name;
                    m.shown = None; // a new name is always news
                }
                self.presence.changed(&id);
                (id, replaced, true)
            }
            None => {
                if self.members.len() >= self.settings.max_members {
                    return Err(RoomError::RoomFull(self.settings.max_members));
                }
                let id = ParticipantId::new();
                self.members.insert(
                    id.clone(),
                    Member {
                        name,
                        resume_token: Secret::generate(),
                        link: Some((conn, link)),
                        away_since: None,
                        rtt_ms: None,
                        drift_ms: None,
                        buffering: false,
                        shown: None,
                        chat_bucket: TokenBucket::new(
                            self.settings.chat_burst,
                            self.settings.chat_per_second,
                            now,
                        ),
                    },
                );
                (id, None, false)
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
        Ok(Joined {
            id,
            resumed,
            replaced,
            effects,
        })
    }

    /// A connection closed. The participant stays (for resume, and the host role) until its
    /// grace period ends. Events from a connection that was already replaced are ignored.
    pub fn disconnect(&mut self, id: &ParticipantId, conn: ConnId, now: ServerMs) {
        if let Some(m) = self.members.get_mut(id) {
            if m.link.as_ref().is_some_and(|(c, _)| *c == conn) {
                m.link = None;
                m.away_since = Some(now);
                self.presence.changed(id);
            }
        }
    }

    /// Removes a participant at once (it could not keep up): no grace, no resume.
    /// Returns its handle so the caller can close the connection.
    pub fn evict(&mut self, id: &ParticipantId, conn: ConnId) -> (Option<L>, Vec<Effect>) {
        let current = self
            .members
            .get(id)
            .is_some_and(|m| m.link.as_ref().is_some_and(|(c, _)| *c == conn));
        if !current {
            return (None, Vec::new());
        }
        let mut effects = Vec::new();
        let link = self.remove(id, &mut effects);
        (link, effects)
    }

    fn remove(&mut self, id: &ParticipantId, effects: &mut Vec<Effect>) -> Option<L> {
        let big = self.is_big();
        let member = self.members.shift_remove(id)?;
        self.presence.gone(id, big);
        if !big {
            effects.push(Effect::all(ServerMessage::Left { id: id.clone() }));
        }
        if self.host.as_ref() == Some(id) {
            let successor = self
                .members
                .iter()
                .find(|(_, m)| m.link.is_some())
                .map(|(id, _)| id.clone());
            effects.extend(self.set_host(successor));
        }
        member.link.map(|(_, l)| l)
    }

    fn set_host(&mut self, new: Option<ParticipantId>) -> Option<Effect> {
        if self.host == new {
            return None;
        }
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
            self.remove(id, &mut effects);
        }
        // A host that is away while someone else is connected keeps the role only for its
        // grace period; a hostless room with a connected member gets one now.
        if self.host.is_none() {
            if let Some(id) = self
                .members
                .iter()
                .find(|(_, m)| m.link.is_some())
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

    /// Records a participant's sync report. Small rooms announce every change; big rooms
    /// only a flip of `buffering` or a move to another RTT or drift band since the entry
    /// was last announced.
    pub fn status(&mut self, id: &ParticipantId, rtt_ms: f64, drift_ms: f64, buffering: bool) {
        let big = self.is_big();
        let is_host = self.is_host(id);
        let Some(m) = self.members.get_mut(id) else {
            return;
        };
        let (rtt, drift) = (Some(rtt_ms), Some(drift_ms));
        let exact_change = m.buffering != buffering || m.rtt_ms != rtt || m.drift_ms != drift;
        m.rtt_ms = rtt;
        m.drift_ms = drift;
        m.buffering = buffering;
        let news = if big {
            m.shown != Some(m.shown(is_host))
        } else {
            exact_change
        };
        if news {
            self.presence.changed(id);
        }
    }

    fn may_control(&self, id: &ParticipantId) -> Result<(), RoomError> {
        if !self.members.contains_key(id) {
            return Err(RoomError::NotMember);
        }
        if self.control == ControlMode::Everyone || self.host.as_ref() == Some(id) {
            Ok(())
        } else {
            Err(RoomError::NotHost)
        }
    }

    fn require_host(&self, id: &ParticipantId) -> Result<(), RoomError> {
        if !self.members.contains_key(id) {
            return Err(RoomError::NotMember);
        }
        if self.host.as_ref() == Some(id) {
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
            .filter(|m| m.link.is_some())
            .filter_map(|m| m.rtt_ms)
            .fold(0.0, f64::max);
        start_lead_ms(slowest)
    }

    /// Applies a playback control from `id`.
    pub fn control(
        &mut self,
        id: &ParticipantId,
        control: Control,
        now: ServerMs,
    ) -> Result<Vec<Effect>, RoomError> {
        self.may_control(id)?;
        if let Control::Load(video) = &control {
            self.settings.check_video(video)?;
        }
        let start_at = now + self.start_lead_ms();
        match control {
            Control::Play(position) => self.clock.play(now, start_at, position),
            Control::Pause(position) => self.clock.pause(now, position),
            Control::Seek(position) => self.clock.seek(now, start_at, position),
            Control::Rate(rate) => self.clock.set_rate(now, rate),
            Control::Load(video) => self.clock.load(now, video),
        }
        Ok(vec![Effect::all(ServerMessage::Playback {
            playback: self.clock.snapshot(),
            by: Some(id.clone()),
        })])
    }

    /// Accepts a chat message from `id`.
    pub fn chat(
        &mut self,
        id: &ParticipantId,
        text: &str,
        now: ServerMs,
    ) -> Result<Vec<Effect>, RoomError> {
        let m = self.members.get_mut(id).ok_or(RoomError::NotMember)?;
        let text = clean_chat(text).map_err(RoomError::InvalidChat)?;
        if !m.chat_bucket.try_take(now) {
            return Err(RoomError::ChatRateLimited);
        }
        let from = ParticipantRef {
            id: id.clone(),
            name: m.name.clone(),
        };
        let message = self.chat.push(ChatMessage {
            id: 0,
            from,
            text,
            at: now,
        });
        Ok(vec![Effect::all(ServerMessage::Chat { message })])
    }

    /// The host hands the role to a connected participant.
    pub fn transfer_host(
        &mut self,
        id: &ParticipantId,
        to: &ParticipantId,
    ) -> Result<Vec<Effect>, RoomError> {
        self.require_host(id)?;
        if self.members.get(to).is_none_or(|m| m.link.is_none()) {
            return Err(RoomError::NoSuchParticipant(to.to_string()));
        }
        Ok(self.set_host(Some(to.clone())).into_iter().collect())
    }

    /// The host changes who may control playback.
    pub fn set_control(
        &mut self,
        id: &ParticipantId,
        control: ControlMode,
    ) -> Result<Vec<Effect>, RoomError> {
        self.require_host(id)?;
        self.control = control;
        Ok(vec![Effect::all(ServerMessage::Room { room: self.info() })])
    }
}

/// A playback control, validated.
#[derive(Clone, Debug, PartialEq)]
pub enum Control {
    /// Play from a position or the live one.
    Play(Option<f64>),
    /// Pause at a position or the live one.
    Pause(Option<f64>),
    /// Jump to a position.
    Seek(f64),
    /// Change rate.
    Rate(f64),
    /// Load a video.
    Load(Video),
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
            token.clone(),
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

    fn join(r: &mut Room, conn: u64, name: &str) -> ParticipantId {
        r.join(conn, conn as u32, name, None, None, 0.0).unwrap().id
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

    fn resume_token(r: &Room, id: &ParticipantId) -> String {
        match r.welcome(id, 0.0).unwrap() {
            ServerMessage::Welcome(w) => w.resume_token,
            other => panic!("not a welcome: {other:?}"),
        }
    }

    #[test]
    fn first_member_of_a_hostless_room_becomes_host() {
        let (mut r, _) = room(RoomSettings::default());
        let a = r.join(1, 1, " Ann ", None, None, 0.0).unwrap();
        assert_eq!(kinds(&a.effects), ["host", "joined"]);
        assert_eq!(r.host().unwrap().id, a.id);
        assert_eq!(r.host().unwrap().name, "Ann");
        let b = r.join(2, 2, "Bob", None, None, 0.0).unwrap();
        assert_eq!(kinds(&b.effects), ["joined"]);
        assert_eq!(b.effects[0].to, Audience::AllExcept(b.id.clone()));
        assert_eq!(r.host().unwrap().id, a.id);
    }

    #[test]
    fn host_token_claims_the_role_from_whoever_has_it() {
        let (mut r, token) = room(RoomSettings::default());
        let a = join(&mut r, 1, "Ann");
        let c = r
            .join(2, 2, "Cat", Some(token.as_str()), None, 0.0)
            .unwrap();
        assert_eq!(r.host().unwrap().id, c.id);
        assert_ne!(c.id, a);
        assert_eq!(kinds(&c.effects), ["host", "joined"]);
        let wrong = r.join(3, 3, "Eve", Some("guess"), None, 0.0).unwrap();
        assert_eq!(r.host().unwrap().id, c.id);
        assert_eq!(kinds(&wrong.effects), ["joined"]);
    }

    #[test]
    fn a_resumed_creator_does_not_take_back_a_role_it_handed_on() {
        let (mut r, token) = room(RoomSettings::default());
        let a = r
            .join(1, 1, "Ann", Some(token.as_str()), None, 0.0)
            .unwrap()
            .id;
        let b = join(&mut r, 2, "Bob");
        r.transfer_host(&a, &b).unwrap();
        let ann_token = resume_token(&r, &a);
        r.disconnect(&a, 1, 10.0);
        let back = r
            .join(3, 3, "Ann", Some(token.as_str()), Some(&ann_token), 20.0)
            .unwrap();
        assert!(back.resumed);
        assert_eq!(r.host().unwrap().id, b, "Bob keeps the role");
        assert!(back.effects.is_empty(), "{:?}", back.effects);
    }

    #[test]
    fn bad_names_are_refused() {
        let (mut r, _) = room(RoomSettings::default());
        for bad in ["", "   ", "a\nb", &"x".repeat(33)] {
            assert!(matches!(
                r.join(1, 1, bad, None, None, 0.0),
                Err(RoomError::InvalidName(_))
            ));
        }
        assert!(r.is_empty());
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
        let b = join(&mut r, 2, "Bob");
        let token = resume_token(&r, &b);
        r.tick(0.0);
        r.disconnect(&b, 2, 100.0);
        let back = r.join(3, 3, "Bob", None, Some(&token), 5_000.0).unwrap();
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
        let a = join(&mut r, 1, "Ann");
        let token = resume_token(&r, &a);
        let again = r.join(2, 2, "Ann", None, Some(&token), 0.0).unwrap();
        assert_eq!(again.id, a);
        assert_eq!(again.replaced, Some(1));
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn room_full_refuses_newcomers_but_not_resumes() {
        let (mut r, _) = room(RoomSettings {
            max_members: 1,
            ..RoomSettings::default()
        });
        let a = join(&mut r, 1, "Ann");
        let token = resume_token(&r, &a);
        assert_eq!(
            r.join(2, 2, "Bob", None, None, 0.0).unwrap_err(),
            RoomError::RoomFull(1)
        );
        r.disconnect(&a, 1, 0.0);
        assert!(r.join(3, 3, "Ann", None, Some(&token), 0.0).is_ok());
    }

    #[test]
    fn only_the_host_controls_unless_everyone_may() {
        let (mut r, _) = room(RoomSettings::default());
        let a = join(&mut r, 1, "Ann");
        let b = join(&mut r, 2, "Bob");
        assert_eq!(
            r.control(&b, Control::Play(None), 0.0).unwrap_err(),
            RoomError::NotHost
        );
        assert_eq!(
            r.set_control(&b, ControlMode::Everyone).unwrap_err(),
            RoomError::NotHost
        );
        let fx = r.set_control(&a, ControlMode::Everyone).unwrap();
        assert_eq!(kinds(&fx), ["room"]);
        let fx = r.control(&b, Control::Seek(12.0), 0.0).unwrap();
        assert_eq!(kinds(&fx), ["playback"]);
        assert_eq!(r.playback().position, 12.0);
        assert_eq!(r.playback().seq, 1);
        // Even in "everyone" mode, host-only actions stay with the host.
        assert_eq!(r.transfer_host(&b, &b).unwrap_err(), RoomError::NotHost);
    }

    #[test]
    fn play_is_scheduled_ahead_by_the_slowest_members_rtt() {
        let (mut r, _) = room(RoomSettings::default());
        let a = join(&mut r, 1, "Ann");
        let b = join(&mut r, 2, "Bob");
        r.status(&a, 20.0, 0.0, false);
        r.status(&b, 300.0, 0.0, false);
        r.control(&a, Control::Play(Some(0.0)), 10_000.0).unwrap();
        let p = r.playback();
        assert!(!p.paused);
        assert_eq!(
            p.anchor,
            10_000.0 + 300.0 + crate::room::playback::START_MARGIN_MS
        );
        // A disconnected member's stale rtt no longer delays everyone.
        r.disconnect(&b, 2, 10_000.0);
        assert_eq!(r.start_lead_ms(), 20.0_f64.max(0.0) + 80.0);
    }

    #[test]
    fn transfer_host_requires_a_connected_target() {
        let (mut r, _) = room(RoomSettings::default());
        let a = join(&mut r, 1, "Ann");
        let b = join(&mut r, 2, "Bob");
        let ghost = ParticipantId::from("nobody");
        assert!(matches!(
            r.transfer_host(&a, &ghost),
            Err(RoomError::NoSuchParticipant(_))
        ));
        let fx = r.transfer_host(&a, &b).unwrap();
        assert_eq!(kinds(&fx), ["host"]);
        assert_eq!(r.host().unwrap().id, b);
        // Both entries changed (is_host), so the next presence carries both.
        match &r.tick(0.0).last().unwrap().message {
            ServerMessage::Presence { participants, .. } => assert_eq!(participants.len(), 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn chat_is_validated_rate_limited_and_logged() {
        let (mut r, _) = room(RoomSettings {
            chat_history: 2,
            chat_burst: 3,
            ..RoomSettings::default()
        });
        let a = join(&mut r, 1, "Ann");
        assert!(matches!(
            r.chat(&a, "  ", 0.0),
            Err(RoomError::InvalidChat(_))
        ));
        for i in 0..3 {
            assert_eq!(kinds(&r.chat(&a, &format!("m{i}"), 0.0).unwrap()), ["chat"]);
        }
        assert_eq!(
            r.chat(&a, "flood", 0.0).unwrap_err(),
            RoomError::ChatRateLimited
        );
        assert!(r.chat(&a, "later", 1000.0).is_ok());
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
        r.status(&b, 10.0, 1.0, false);
        r.status(&b, 10.0, 2.0, false);
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
        let d = r.join(9, 9, "Dan", None, None, 0.0).unwrap();
        assert!(d.effects.is_empty(), "{:?}", d.effects);
        r.status(&ids[1], 10.0, 5.0, false);
        r.tick(1.0);
        r.status(&ids[1], 12.0, 8.0, false); // same bands: not news
        assert!(r.tick(2.0).is_empty());
        r.status(&ids[1], 12.0, 400.0, false); // drift band changed
        r.status(&ids[2], 12.0, 0.0, true); // buffering flipped
        let fx = r.tick(3.0);
        match &fx[0].message {
            ServerMessage::Presence { participants, .. } => assert_eq!(participants.len(), 2),
            other => panic!("{other:?}"),
        }
        // Leaving is batched too.
        let (_, fx) = r.evict(&ids[2], 2);
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
        r.status(&early[1], 10.0, 0.0, true); // buffering
        r.status(&early[2], 10.0, 600.0, false); // out of sync
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
            r.status(id, 10.0, 0.0, false);
        }
        while presence(&r.tick(0.0)).is_some() {}
        // A short buffering spell within one tick: nothing to tell.
        r.status(&ids[3], 10.0, 0.0, true);
        r.status(&ids[3], 10.0, 0.0, false);
        assert!(r.tick(1.0).is_empty());
        // Still buffering at the tick: the entry and the count say so.
        r.status(&ids[3], 10.0, 0.0, true);
        let (entries, _, buffering, _) = presence(&r.tick(2.0)).unwrap();
        assert_eq!((entries.len(), buffering), (1, 1));
        // Ending the spell is news again, but a band-internal change alongside it is not.
        r.status(&ids[3], 10.0, 0.0, false);
        r.status(&ids[2], 20.0, 10.0, false);
        let (entries, _, buffering, _) = presence(&r.tick(3.0)).unwrap();
        assert_eq!(entries.iter().map(|e| &e.id).collect::<Vec<_>>(), [&ids[3]]);
        assert_eq!(buffering, 0);
    }

    #[test]
    fn eviction_is_immediate_and_hands_over_host() {
        let (mut r, _) = room(RoomSettings::default());
        let a = join(&mut r, 1, "Ann");
        let b = join(&mut r, 2, "Bob");
        let (stale, fx) = r.evict(&a, 99);
        assert!(
            stale.is_none() && fx.is_empty(),
            "wrong connection id is ignored"
        );
        let (link, fx) = r.evict(&a, 1);
        assert_eq!(link, Some(1));
        assert_eq!(kinds(&fx), ["left", "host"]);
        assert_eq!(r.host().unwrap().id, b);
    }

    #[test]
    fn welcome_carries_live_clock_members_and_chat() {
        let (mut r, _) = room(RoomSettings::default());
        let a = join(&mut r, 1, "Ann");
        r.chat(&a, "hello", 5.0).unwrap();
        r.control(&a, Control::Play(Some(3.0)), 0.0).unwrap();
        let b = join(&mut r, 2, "Bob");
        let v: serde_json::Value =
            serde_json::from_str(&r.welcome(&b, 7.0).unwrap().encode()).unwrap();
        assert_eq!(v["type"], "welcome");
        assert_eq!(v["you"]["name"], "Bob");
        assert_eq!(v["host_id"], a.as_str());
        assert_eq!(v["participants"].as_array().unwrap().len(), 2);
        assert_eq!(v["participants"][0]["is_host"], true);
        assert_eq!(v["chat"][0]["text"], "hello");
        assert_eq!(v["playback"]["paused"], false);
        assert_eq!(v["server_time"], 7.0);
        assert_eq!(v["resume_token"].as_str().unwrap().len(), 64);
    }
}
