//! The authoritative playback clock: one per room, moved by accepted controls and by the
//! room itself (a video's end, a hold for buffering members).

use crate::clock::ServerMs;
use crate::ids::ParticipantId;
use crate::protocol::{Playback, Video};

/// Shortest lead before a scheduled start: enough for a message to cross a fast network.
pub const MIN_START_LEAD_MS: f64 = 100.0;
/// Longest lead: beyond a second, waiting feels broken and the slowest member is better
/// served by seeking on arrival.
pub const MAX_START_LEAD_MS: f64 = 1000.0;
/// Added to the slowest member's round trip, to cover jitter and the player's own start-up.
pub const START_MARGIN_MS: f64 = 80.0;

/// How far in the future a (re)start is scheduled, given the slowest member's round trip.
///
/// A message reaches a member about half a round trip after it leaves; a whole round trip
/// plus a margin leaves room for jitter, so every member holds the command before `anchor`.
pub fn start_lead_ms(slowest_rtt_ms: f64) -> f64 {
    (slowest_rtt_ms + START_MARGIN_MS).clamp(MIN_START_LEAD_MS, MAX_START_LEAD_MS)
}

/// The room's clock. Positions are seconds, times are server milliseconds.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PlaybackClock {
    /// What is loaded; `None` until the first `load`.
    video: Option<Video>,
    /// Paused clocks do not advance.
    paused: bool,
    /// Position (s) at `anchor`.
    position: f64,
    /// Seconds of video per second of server time.
    rate: f64,
    /// Server time at which `position` holds; may lie in the future (scheduled start).
    anchor: ServerMs,
    /// Bumped by every change so clients can drop stale updates.
    seq: u64,
    /// The current video's length, once a client reported it.
    duration: Option<f64>,
    /// Played to the end with nothing queued: paused at `duration`.
    ended: bool,
    /// `seq` when the current video was loaded: a length reported for an older `seq` may
    /// describe the previous video.
    loaded_seq: u64,
}

impl PlaybackClock {
    /// A paused clock at 0 with `video` loaded (or nothing).
    pub fn new(video: Option<Video>, now: ServerMs) -> Self {
        PlaybackClock {
            video,
            paused: true,
            position: 0.0,
            rate: 1.0,
            anchor: now,
            seq: 0,
            duration: None,
            ended: false,
            loaded_seq: 0,
        }
    }

    /// Position in seconds at server time `t`.
    pub fn position_at(&self, t: ServerMs) -> f64 {
        if self.paused {
            self.position
        } else {
            self.position + (t - self.anchor).max(0.0) / 1000.0 * self.rate
        }
    }

    /// Whether playback is paused.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Whether a video is loaded.
    pub fn has_video(&self) -> bool {
        self.video.is_some()
    }

    /// Server time at which a scheduled start happens (the anchor), or when the clock
    /// started if it is already running; `None` while paused.
    pub fn started_at(&self) -> Option<ServerMs> {
        (!self.paused).then_some(self.anchor)
    }

    /// The wire form, with the members a hold waits for.
    pub fn snapshot(&self, waiting_for: Vec<ParticipantId>) -> Playback {
        Playback {
            video: self.video.clone(),
            paused: self.paused,
            position: self.position,
            rate: self.rate,
            anchor: self.anchor,
            seq: self.seq,
            duration: self.duration,
            ended: self.ended,
            waiting_for,
            hold_until: None,
        }
    }

    /// Plays from `position` (or the live position), starting at server time `start_at`.
    /// After the end, playing again without a position starts over.
    pub fn play(&mut self, now: ServerMs, start_at: ServerMs, position: Option<f64>) {
        let live = if self.ended {
            0.0
        } else {
            self.position_at(now)
        };
        self.position = position.unwrap_or(live);
        self.anchor = start_at.max(now);
        self.paused = false;
        self.ended = false;
        self.seq += 1;
    }

    /// Pauses at `position` (or the live position).
    pub fn pause(&mut self, now: ServerMs, position: Option<f64>) {
        self.position = position.unwrap_or_else(|| self.position_at(now));
        self.anchor = now;
        self.paused = true;
        self.ended = false;
        self.seq += 1;
    }

    /// Jumps to `position`. A playing clock restarts from there at `start_at`, so members
    /// that must seek all resume together.
    pub fn seek(&mut self, now: ServerMs, start_at: ServerMs, position: f64) {
        self.position = position;
        self.anchor = if self.paused { now } else { start_at.max(now) };
        self.ended = false;
        self.seq += 1;
    }

    /// `seq` when the current video was loaded: reports about the video are about this one
    /// only if made at or after it.
    pub fn video_seq(&self) -> u64 {
        self.loaded_seq
    }

    /// Whether the current video's length is still unknown, so a report about playback
    /// `seq` could set it.
    pub fn wants_duration(&self, seq: u64) -> bool {
        self.duration.is_none() && self.video.is_some() && seq >= self.loaded_seq
    }

    /// Takes the video's length from a client report about playback `seq`: the first
    /// report about the current video counts. True when it was taken.
    pub fn set_duration(&mut self, seq: u64, duration: f64) -> bool {
        if self.duration.is_some() || self.video.is_none() || seq < self.loaded_seq {
            return false;
        }
        self.duration = Some(duration);
        self.seq += 1;
        true
    }

    /// Server time at which a playing clock reaches the video's end, if its length is known.
    pub fn end_at(&self) -> Option<ServerMs> {
        let duration = self.duration.filter(|_| !self.paused)?;
        Some(self.anchor + (duration - self.position).max(0.0) / self.rate * 1000.0)
    }

    /// Stops at the end of the video: paused at its length, marked ended.
    pub fn finish(&mut self, now: ServerMs) {
        self.position = self.duration.unwrap_or_else(|| self.position_at(now));
        self.anchor = now;
        self.paused = true;
        self.ended = true;
        self.seq += 1;
    }

    /// Loads `video` and plays it from the start at `start_at` (the queue's next item).
    pub fn play_video(&mut self, now: ServerMs, start_at: ServerMs, video: Video) {
        self.load(now, video);
        self.position = 0.0;
        self.anchor = start_at.max(now);
        self.paused = false;
    }

    /// Changes the rate without moving the position.
    pub fn set_rate(&mut self, now: ServerMs, rate: f64) {
        // A pending scheduled start keeps its anchor: the position there is unchanged.
        if self.anchor < now {
            self.position = self.position_at(now);
            self.anchor = now;
        }
        self.rate = rate;
        self.seq += 1;
    }

    /// Loads `video`, paused at 0 (the rate is kept: it is the room's preference).
    pub fn load(&mut self, now: ServerMs, video: Video) {
        self.video = Some(video);
        self.position = 0.0;
        self.paused = true;
        self.anchor = now;
        self.duration = None;
        self.ended = false;
        self.seq += 1;
        self.loaded_seq = self.seq;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yt() -> Video {
        Video::Youtube {
            id: "dQw4w9WgXcQ".into(),
        }
    }

    #[test]
    fn paused_clock_stands_still() {
        let c = PlaybackClock::new(Some(yt()), 1000.0);
        assert_eq!(c.position_at(1000.0), 0.0);
        assert_eq!(c.position_at(99_000.0), 0.0);
        assert_eq!(c.snapshot(Vec::new()).seq, 0);
    }

    #[test]
    fn scheduled_play_holds_until_anchor_then_advances_at_rate() {
        let mut c = PlaybackClock::new(Some(yt()), 0.0);
        c.play(1000.0, 1300.0, Some(10.0));
        assert_eq!(c.snapshot(Vec::new()).anchor, 1300.0);
        assert_eq!(
            c.position_at(1000.0),
            10.0,
            "nothing moves before the anchor"
        );
        assert_eq!(c.position_at(1300.0), 10.0);
        assert!((c.position_at(3300.0) - 12.0).abs() < 1e-9);
        c.set_rate(3300.0, 2.0);
        assert!((c.position_at(4300.0) - 14.0).abs() < 1e-9);
    }

    #[test]
    fn play_without_position_continues_from_live_position() {
        let mut c = PlaybackClock::new(None, 0.0);
        c.play(0.0, 0.0, Some(5.0));
        c.pause(2000.0, None);
        assert!((c.position_at(10_000.0) - 7.0).abs() < 1e-9);
        c.play(10_000.0, 10_200.0, None);
        assert!((c.position_at(11_200.0) - 8.0).abs() < 1e-9);
    }

    #[test]
    fn start_is_never_scheduled_in_the_past() {
        let mut c = PlaybackClock::new(None, 0.0);
        c.play(500.0, 100.0, Some(0.0));
        assert_eq!(c.snapshot(Vec::new()).anchor, 500.0);
    }

    #[test]
    fn seek_while_playing_schedules_while_paused_does_not() {
        let mut c = PlaybackClock::new(None, 0.0);
        c.seek(100.0, 400.0, 30.0);
        assert_eq!(c.snapshot(Vec::new()).anchor, 100.0);
        assert!(c.is_paused());
        c.play(100.0, 400.0, None);
        c.seek(1000.0, 1250.0, 60.0);
        assert_eq!(c.snapshot(Vec::new()).anchor, 1250.0);
        assert_eq!(c.position_at(1100.0), 60.0);
        assert!((c.position_at(2250.0) - 61.0).abs() < 1e-9);
    }

    #[test]
    fn rate_change_during_pending_start_keeps_the_anchor() {
        let mut c = PlaybackClock::new(None, 0.0);
        c.play(0.0, 500.0, Some(1.0));
        c.set_rate(100.0, 0.5);
        let s = c.snapshot(Vec::new());
        assert_eq!((s.anchor, s.position, s.rate), (500.0, 1.0, 0.5));
    }

    #[test]
    fn load_resets_to_paused_zero_and_every_change_bumps_seq() {
        let mut c = PlaybackClock::new(None, 0.0);
        c.play(0.0, 0.0, Some(3.0));
        c.pause(10.0, Some(4.0));
        c.seek(20.0, 20.0, 5.0);
        c.set_rate(30.0, 1.25);
        c.load(40.0, yt());
        let s = c.snapshot(Vec::new());
        assert_eq!(s.seq, 5);
        assert!(s.paused);
        assert_eq!(s.position, 0.0);
        assert_eq!(s.rate, 1.25);
        assert_eq!(s.video, Some(yt()));
    }

    #[test]
    fn the_end_is_reached_at_the_reported_duration_and_playing_again_starts_over() {
        let mut c = PlaybackClock::new(Some(yt()), 0.0);
        assert!(c.set_duration(0, 10.0));
        assert!(!c.set_duration(1, 99.0), "the first report counts");
        assert_eq!(c.end_at(), None, "a paused clock ends nowhere");
        c.play(1000.0, 1500.0, Some(4.0));
        assert_eq!(c.end_at(), Some(7500.0));
        c.set_rate(2500.0, 2.0); // 5 s in, 5 s left at 2x
        assert_eq!(c.end_at(), Some(5000.0));
        c.finish(5000.0);
        let s = c.snapshot(Vec::new());
        assert!(s.paused && s.ended && s.position == 10.0);
        c.play(6000.0, 6100.0, None);
        assert_eq!(
            c.snapshot(Vec::new()).position,
            0.0,
            "play after the end starts over"
        );
        assert!(!c.snapshot(Vec::new()).ended);
    }

    #[test]
    fn a_length_reported_for_the_previous_video_is_ignored() {
        let mut c = PlaybackClock::new(None, 0.0);
        c.load(0.0, yt());
        let first = c.snapshot(Vec::new()).seq;
        c.play_video(
            10.0,
            100.0,
            Video::Url {
                url: "/media/b.mp4".into(),
            },
        );
        assert!(!c.set_duration(first, 30.0), "about the video before");
        let now = c.snapshot(Vec::new());
        assert!(!now.paused && now.position == 0.0 && now.anchor == 100.0);
        assert!(c.set_duration(now.seq, 30.0));
        assert_eq!(c.snapshot(Vec::new()).duration, Some(30.0));
    }

    #[test]
    fn lead_is_clamped() {
        assert_eq!(start_lead_ms(0.0), MIN_START_LEAD_MS);
        assert_eq!(start_lead_ms(200.0), 200.0 + START_MARGIN_MS);
        assert_eq!(start_lead_ms(5000.0), MAX_START_LEAD_MS);
    }
}
