// Makes a local player follow the room's authoritative playback.
//
// The engine only ever *reads* the room state and drives the player; it sends
// nothing but `ping`, `status` and `media_info` (what the player learned about the
// video's length). User actions (play, seek, ...) are sent by the UI controls, never
// derived from player events, so a change the engine applies can never be echoed back
// to the server as if a person made it.

import { ClockSync, pingDelayMs } from './clock.js';
import { PlaybackModel, isHold, sameVideo } from './playback-model.js';
import { CorrectionController, HTML5_TUNING, YOUTUBE_TUNING } from './correction.js';
import { clearExactTimeout, setExactTimeout } from './exact-timer.js';
import { StartGrid } from './start-grid.js';

export const TICK_MS = 250;
export const STATUS_INTERVAL_MS = 1000;
/** Paused or waiting players are moved when they sit further than this from the target. */
export const PAUSED_TOLERANCE_MS = 40;
/**
 * Time from play() until the media position moves as if it had started then, for each kind
 * of start (`player.startKind`): a freshly loaded element, one moved by a seek since it last
 * played, and one resumed where it paused. Measured in Chromium 156 here: 78-101 ms, about
 * 85 on average, for the first two, but about 0 for a resumed element, whose position jumps ahead at play() by
 * the audio it had buffered when it paused (the media clock's offset). Each start measures
 * its miss and adjusts the figure of its own kind, per player.
 */
export const INITIAL_START_LEAD_MS = { fine: 85, coarse: 0 };
export const INITIAL_RESUMED_LEAD_MS = { fine: 0, coarse: 0 };
export const START_KINDS = Object.freeze(['fresh', 'seeked', 'resumed']);
export const MAX_START_LEAD_MS = 500;
/** Fraction of a measured start miss folded into the lead (damps noise from busy machines). */
export const START_LEAD_LEARNING = 0.5;
/**
 * A start is first looked at this long after the anchor and judged (and corrected) at a
 * later look, once the media is seen moving steadily (START_MOTION_LOOK_MS apart): about
 * 60 ms after the anchor. (Looking from 20 ms read misses further off: Chromium's start is
 * not over by then. See docs/synchronization.md.)
 */
export const START_SETTLE_MS = 40;
/**
 * The miss measured then is removed by a rate change over this long (a few ms in a few
 * hundred ms is a rate change of about 1-3 %, which nobody hears), at most START_TRIM_MAX.
 */
export const START_TRIM_MS = 250;
export const START_TRIM_MAX = 0.08;
/** How often a start's motion is looked at before it is judged, and for how long at most. */
export const START_MOTION_LOOK_MS = 20;
export const START_MOTION_WAIT_MS = 400;
/** Misses smaller than this are left alone. */
export const START_TRIM_MIN_MS = 4;
/**
 * A scheduled play() this close to its moment (ms) is called now. The play moment's timer
 * is exact (exact-timer.js), so this only absorbs the time the tick itself takes.
 */
export const PLAY_MOMENT_SLACK_MS = 0.25;
/** A paused player waiting for a scheduled start is moved when further than this from it. */
export const START_POSITION_TOLERANCE_MS = 40;
/** ...unless it would resume (see tick): then any distance a seek can still tell apart. */
export const MOVE_TO_START_TOLERANCE_MS = 0.001;
/** A late joiner's media may be this far behind its ideal pre-start position before it seeks again. */
export const PRESTART_TOLERANCE_MS = 15;
/** Extra distance a late joiner seeks ahead by, then waits out (seek time varies; a wait is exact). */
export const PRESTART_MARGIN_MS = 60;
/** Seeks allowed before one start; after that it plays and the rate controller takes over. */
export const MAX_PRESTART_SEEKS = 3;
/**
 * The player must be unable to play for this long before the page says it is buffering.
 * A buffering member puts the whole room on hold, so a seek that lands in a few tens of ms
 * or a decoder hiccup must not pause everyone; real waits for data last far longer.
 * Loading a video is said at once: it always takes a while, and a start scheduled for a
 * new video (the queue's next) should wait for everyone rather than leave some behind.
 */
export const BUFFERING_DEBOUNCE_MS = 250;
/** Buffering flips reported at once, at most this many in a burst, refilled per second below. */
export const FLIP_REPORT_BURST = 4;
export const FLIP_REPORTS_PER_S = 2;
/** After the end, a player this close to the room's final position is left where it stands. */
export const ENDED_TOLERANCE_MS = 500;
/**
 * After this long with nothing playing, what was learned of the audio output is taken to
 * be stale, so the next start is not planned on it (start-grid.js). Its phase was kept
 * after 3-4 s and a new one came after 12 s, but its latency moves sooner: by hand, 69.2-
 * 70.2 ms after idles up to 1 s, then 53.1-69.7 ms after 1.5-3 s (3 of 7 more than 5 ms
 * off); in the probe experiment of docs/synchronization.md, starts planned 1.8-3.6 s after
 * the output last ran moved one or two periods late.
 */
export const GRID_IDLE_MS = 1000;
/**
 * Probes in a row at most (Html5Player.probe). A page's first ones: one opens the output,
 * the next (on the running output) gives the latency and, with the first, the period; a
 * new element's: two for the phase (StartGrid.confirmed). The rest stand in for misread
 * ones.
 */
export const MAX_PROBES = 4;
/**
 * While it stands paused, a page whose grid is known probes it again this often (ms), so
 * its output keeps running and what was learned of it still holds for the start that ends
 * the pause (GRID_IDLE_MS)...
 */
export const KEEP_WARM_EVERY_MS = 600;
/** ...for this long at most after the player last played or was loaded: a long pause lets the output go. */
export const KEEP_WARM_FOR_MS = 30_000;

export class SyncEngine {
  /**
   * @param {object} deps
   * @param {(msg: object) => void} deps.send            sends a message to the server
   * @param {(video: object|null) => object|null} deps.createPlayer  builds a player for a video
   * @param {() => number} [deps.now]                    monotonic clock (ms)
   * @param {Function} [deps.setTimer]                   setTimeout-like
   * @param {Function} [deps.clearTimer]                 clearTimeout-like
   * @param {{set: Function, clear: Function}} [deps.exactTimer] timer for the play moment;
   *   by default the exact one (exact-timer.js), or `setTimer` when that is given (fake time
   *   is exact already)
   * @param {(engine: SyncEngine) => void} [deps.onChange] called when visible state changes
   */
  constructor({ send, createPlayer, now = () => performance.now(), setTimer, clearTimer, exactTimer, onChange = () => {} }) {
    this.send = send;
    this.createPlayer = createPlayer;
    this.now = now;
    this.setTimer = setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = clearTimer ?? ((id) => clearTimeout(id));
    this.exactTimer = exactTimer ?? (setTimer
      ? { set: this.setTimer, clear: this.clearTimer }
      : { set: (fn, ms) => setExactTimeout(fn, ms, now), clear: clearExactTimeout });
    this.onChange = onChange;
    this.clock = new ClockSync({ now });
    this.model = new PlaybackModel();
    this.controller = new CorrectionController(HTML5_TUNING);
    this.player = null;
    this.playerVideo = undefined; // undefined: nothing chosen yet (null means "no video")
    this.playerReady = false;
    this.busy = false; // a seek, load or play is in flight
    this.autoplayBlocked = false;
    this.lastDriftMs = null;
    this.lastError = null;
    this.arrivalLeadMs = null;
    this.lastStart = null;
    this.startLeads = initialLeads(true); // learned start latency (ms) per kind of start
    this.startsLearned = { fresh: 0, seeked: 0, resumed: 0 }; // how many starts taught each
    this.startCheck = null; // {at}: when to measure how well the last start hit the clock
    this.startTrim = null; // {until}: a rate correction of the last start's miss runs until then
    // The audio output's callback grid, learned from starts, on which a planned start lands
    // exactly (start-grid.js). Its period and latency carry over between videos; its phase
    // is learned again for each element.
    this.grid = new StartGrid();
    this.plannedStart = null; // {seq, anchor, plan}: the grid plan for that start, or plan null
    this.lastPlayingAt = null; // when the player was last seen playing (the output was running)
    this.probing = null; // the kind of probe playing the element (probeGrid); nothing else may touch it
    this.probed = null; // the player last probed (once per element)
    this.probeRun = null; // {ended}: the probes in flight, ended early by a start (endProbe)
    this.probeEndedFor = null; // (diagnostics) the seq of the last start that ended a probe
    this.warmFrom = null; // when the player last played for real or was loaded (KEEP_WARM_FOR_MS)
    this.probesSinceStart = 0; // (diagnostics, in lastStart)
    this.probeLooks = []; // (diagnostics, in lastStart) each probe's callback reading since the last start
    this.prestartSeeks = 0;
    this.connected = false;
    this.everConnected = false;
    this.pingsSent = 0;
    this.timers = { ping: null, status: null, tick: null, start: null, buffering: null };
    this.selfId = null; // this participant's id: a hold that waits for it keeps it reporting
    // Whether this page takes part in the current playback as it was scheduled, and so may
    // hold the room when it buffers. A page arriving in a running room (join, reload,
    // reconnect) is not, until it plays in step: catching up must not pause everyone.
    this.inStep = false;
    this.unableSince = null; // when the player last became unable to play (for the debounce)
    this.buffering = false; // the flag as last reported
    this.flipTokens = FLIP_REPORT_BURST;
    this.flipTokensAt = now();
    this.durationReportedFor = null; // the player whose duration went out as media_info
  }

  /** How the player's next play() starts ('fresh', 'seeked' or 'resumed'). */
  get startKind() {
    const kind = this.player && this.player.startKind;
    return START_KINDS.includes(kind) ? kind : 'seeked';
  }

  /** The start latency this player needs for its next start (ms). */
  get startLeadMs() {
    return this.startLeads[this.startKind];
  }

  // ---- connection lifecycle -------------------------------------------------

  /** The socket is open and joined: start measuring the clock and reporting. */
  onConnected() {
    // Samples from an earlier connection may come from another server process.
    if (this.everConnected) this.clock.reset();
    this.everConnected = true;
    this.connected = true;
    this.pingsSent = 0;
    this.durationReportedFor = null; // the room may not have it (a restarted server): report again
    this.schedulePing(0);
    this.restartTimer('status', STATUS_INTERVAL_MS, () => this.reportStatus(), { repeat: true });
    this.restartTimer('tick', TICK_MS, () => this.tick(), { repeat: true });
  }

  onDisconnected() {
    this.connected = false;
    this.stopTimer('ping');
    this.stopTimer('status');
    // The tick keeps running: the player follows the last known playback offline.
  }

  schedulePing(delay) {
    this.restartTimer('ping', delay, () => {
      if (!this.connected) return;
      this.send(this.clock.makePing());
      this.pingsSent += 1;
      this.schedulePing(pingDelayMs(this.pingsSent));
    });
  }

  onPong(message) {
    const sample = this.clock.onPong(message);
    if (sample && this.clock.samples.length === 1) this.tick();
    return sample;
  }

  /** This participant's id, from `welcome`: a hold waiting for it is this page's to end. */
  setSelf(id) {
    this.selfId = typeof id === 'string' ? id : null;
  }

  /** `welcome` starts a fresh session: any seq is accepted. */
  onWelcome(playback) {
    return this.onPlayback(playback, { fresh: true });
  }

  onPlayback(playback, { fresh = false } = {}) {
    const result = this.model.apply(playback, { fresh });
    if (result === 'applied') {
      this.prestartSeeks = 0;
      const current = this.model.current;
      // How long before its start time the update arrived (negative: after it). For diagnostics.
      const serverMs = this.serverNow();
      this.arrivalLeadMs = serverMs === null ? null : current.anchor - serverMs;
      if (current.paused || (this.arrivalLeadMs !== null && this.arrivalLeadMs > 0)) {
        // Paused, or a start announced ahead of time: everyone gets ready for it together.
        this.inStep = true;
      } else if (fresh) {
        // Joined (or came back) while the room runs: catch up first.
        this.inStep = false;
      }
      this.controller.reset();
      if (!current.paused) this.endProbe();
      this.tick();
      this.checkBuffering();
      this.onChange(this);
    }
    return result;
  }

  // ---- the control loop -----------------------------------------------------

  serverNow() {
    return this.clock.serverTime();
  }

  /** Where the room says the media is right now (seconds), clamped to the media length. */
  expectedPosition(serverMs = this.serverNow()) {
    if (serverMs === null || !this.model.current) return null;
    let expected = this.model.positionAt(serverMs);
    const duration = this.player && this.playerReady ? this.player.duration() : NaN;
    if (Number.isFinite(duration) && duration > 0) expected = Math.min(expected, duration);
    return Math.max(0, expected);
  }

  tick() {
    const playback = this.model.current;
    if (!playback) return;
    if (!sameVideo(this.playerVideo, playback.video)) {
      this.switchVideo(playback.video);
      return;
    }
    this.checkBuffering();
    this.reportDuration();
    if (this.busy && !this.probing && this.playerReady && playback.paused && !this.player.paused()) {
      // A pause or a hold must not wait for a seek in flight: one seeking into data that has
      // not arrived can take seconds, and the player would run on meanwhile once it lands.
      this.player.pause();
    }
    if (!this.player || !this.playerReady || this.busy || !this.clock.synced) return;
    if (!this.player.paused()) {
      this.lastPlayingAt = this.now();
      this.warmFrom = this.lastPlayingAt;
    }

    const serverMs = this.serverNow();
    const expected = this.expectedPosition(serverMs);
    const actual = this.player.currentTime();
    const driftMs = (actual - expected) * 1000;
    this.lastDriftMs = driftMs;

    if (playback.ended) {
      // The room stopped at the end: sit on the last frame. Players disagree by a few ms on
      // a video's length, so nothing is corrected unless this one is somewhere else entirely.
      this.startCheck = null;
      if (!this.player.paused()) this.player.pause();
      this.controller.reset();
      this.lastDriftMs = 0;
      if (Math.abs(driftMs) > ENDED_TOLERANCE_MS) this.seekTo(() => expected, { measure: false });
      return;
    }
    if (playback.paused) {
      // A pause, or a hold for buffering members: both stand still at the room's position.
      this.holdAt(expected, playback.rate, driftMs);
      // Meanwhile a new element learns its output's grid, so the start that ends the wait
      // can be planned on it.
      const probe = this.busy ? null : this.probeDue();
      if (probe) this.probeGrid(probe);
      return;
    }
    const untilStart = playback.anchor - serverMs;
    const lead = this.startLeadMs / playback.rate;
    // A paused player standing a little off the start position (a pause lands where each
    // page happened to be) is moved exactly there if it would resume: Chromium's resumed
    // element jumps its currentTime ahead by the audio it had buffered (~80 ms) and stands
    // still until real motion catches up, 100 ms or more after the anchor, so its position
    // reads wrong just when the start is judged; a seeked start's smaller jump (~20 ms) is
    // over before the anchor. Otherwise (a fresh or seeked element) it starts that much
    // later or earlier instead of seeking: waiting is exact.
    const offStartMs = ((actual - playback.position) * 1000) / playback.rate;
    const moveToStart = this.player.paused() && untilStart > 0 && this.startKind === 'resumed' && this.player.fineRate;
    const standsAheadMs = this.player.paused() && untilStart > 0 && !moveToStart && Math.abs(offStartMs) <= START_POSITION_TOLERANCE_MS ? offStartMs : 0;
    // (Once its play() has been called, a planned start runs like any other.)
    const started = this.lastStart !== null && this.lastStart.seq === playback.seq && !this.player.paused();
    let plan = started ? null : this.planStart(playback, untilStart);
    if (plan && !this.grid.stillOnTime(plan, this.now())) {
      // Its play() moment has passed (a busy page, a slow seek): a later callback would
      // take it up, a period late. Given up: the start goes the usual way from here.
      this.plannedStart.gaveUpLateMs = this.now() - plan.playAt;
      plan = null;
      this.plannedStart.plan = null;
    }
    // Planned on the audio callback grid, the start stands exactly where the room will be
    // when the media can first move, and play() goes where that motion is sure to follow.
    const target = plan ? playback.position + (plan.aheadMs / 1000) * playback.rate : playback.position;
    const untilPlay = plan ? plan.playAt - this.now() : untilStart - lead + standsAheadMs;
    if (untilPlay > PLAY_MOMENT_SLACK_MS) {
      // Scheduled start: stand ready at the start position, and call play() early by the
      // time this player needs to get moving, so the media starts moving at the anchor.
      const tolerance = plan || moveToStart ? MOVE_TO_START_TOLERANCE_MS : START_POSITION_TOLERANCE_MS;
      this.holdAt(target, playback.rate, (actual - target) * 1000, tolerance);
      if (this.busy) return; // a seek to the start position is in flight; it ticks again when done
      if (untilPlay < TICK_MS * 1.5) this.restartTimer('start', untilPlay, () => this.tick(), { exact: true });
      else this.restartTimer('start', untilPlay - TICK_MS, () => this.tick());
      return;
    }
    if (this.atMediaEnd(expected)) {
      // The room has run past the end: sit on the last frame like everyone else.
      if (!this.player.paused()) this.player.pause();
      this.lastDriftMs = 0;
      return;
    }
    if (this.player.paused()) {
      this.startPlaying(expected, playback.rate, driftMs);
      return;
    }
    if (untilStart > 0 && Math.abs(driftMs) >= this.controller.tuning.seekThresholdMs && this.player.fineRate) {
      // A start (a seek while playing) that came too late to be scheduled, while this page
      // still plays somewhere else entirely. A seek while playing would run on before the
      // anchor and land tens of ms early; instead stop and start like a late joiner, from
      // where the room will be.
      this.player.pause();
      this.startPlaying(expected, playback.rate, driftMs);
      return;
    }
    if (this.player.buffering()) return; // the drift grows while stalled; judged once it plays again
    this.inStep = true; // playing along now, so from here on its buffering may hold the room
    if (this.startCheck !== null) {
      // Leave a fresh start alone until it has settled: it is judged on its own timer.
      this.checkStart();
      return;
    }
    if (this.startTrim !== null) {
      if (this.now() < this.startTrim.until) return;
      this.endTrim();
    }
    const decision = this.controller.update(driftMs, playback.rate, this.now());
    this.lastDriftMs = decision.driftMs;
    if (decision.action === 'seek') {
      this.seekTo(() => this.expectedPosition() + (decision.leadMs / 1000) * playback.rate);
    } else {
      this.player.setRate(decision.rate);
    }
  }

  holdAt(position, rate, driftMs, toleranceMs = PAUSED_TOLERANCE_MS) {
    this.startCheck = null;
    this.startTrim = null;
    if (!this.player.paused()) this.player.pause();
    this.player.setRate(rate);
    this.controller.reset();
    if (Math.abs(driftMs) > toleranceMs) this.seekTo(() => position, { measure: false });
  }

  startPlaying(expected, rate, driftMs) {
    if (this.autoplayBlocked) return;
    const lead = this.startLeadMs;
    const playback = this.model.current;
    const nowMs = this.serverNow();
    // Standing somewhere other than the start position while the start is too close for a
    // scheduled play() (a start that came late, or a late joiner's seek ahead below): the
    // room will be running by the time the media moves, so this is a late join too.
    const offStart = nowMs < playback.anchor && Math.abs(this.player.currentTime() - playback.position) * 1000 > START_POSITION_TOLERANCE_MS;
    if (nowMs >= playback.anchor || offStart) {
      // The room is already running (a late joiner, a reload, a reconnect), or will be when
      // this player moves. After play() the media stands still for about `lead` ms, so it
      // must stand ahead of the room by as much as the room moves meanwhile.
      const roomMovesMs = (this.expectedPosition(nowMs + lead) - this.expectedPosition(nowMs)) * 1000;
      const excessMs = driftMs - roomMovesMs; // media ms beyond where play() should find it
      const tooFarBehind = excessMs < -PRESTART_TOLERANCE_MS;
      const tooFarAhead = excessMs > this.controller.tuning.seekThresholdMs;
      if ((tooFarBehind || tooFarAhead) && this.prestartSeeks < MAX_PRESTART_SEEKS) {
        // Aim a little further ahead than needed and then wait: waiting is exact, seeking is not.
        this.prestartSeeks += 1;
        // After this seek the player starts as a seeked one, whatever it was before.
        const aheadMs = this.controller.seekLatencyMs + this.startLeads.seeked + PRESTART_MARGIN_MS;
        this.seekTo(() => this.expectedPosition(this.serverNow() + aheadMs));
        return;
      }
      if (excessMs > 1 && !tooFarAhead) {
        // Ahead: let the room catch up, then play.
        this.restartTimer('start', excessMs / rate, () => this.tick(), { exact: true });
        return;
      }
    }
    this.prestartSeeks = 0;
    this.player.setRate(rate);
    this.controller.reset();
    this.startTrim = null;
    const serverMs = this.serverNow();
    // Where the media stood when play() was called, measured now rather than at the tick
    // that decided to start (a wait may have passed since).
    const standing = (this.player.currentTime() - this.expectedPosition(serverMs)) * 1000;
    const beforeAnchorMs = this.model.current.anchor - serverMs;
    // How this start went, for learning (and diagnostics): which playback it started, when
    // play() was called relative to the start time, where the media stood, and which kind
    // of start it was.
    const ownPlan = this.plannedStart && this.plannedStart.seq === this.model.current.seq ? this.plannedStart : null;
    const planned = ownPlan ? ownPlan.plan : null;
    this.lastStart = {
      seq: this.model.current.seq, beforeAnchorMs, driftMs: Number.isFinite(standing) ? standing : driftMs, leadMs: this.startLeadMs, kind: this.startKind,
      from: this.player.currentTime(), playAt: this.now(), planned: planned !== null, aheadMs: planned ? planned.aheadMs : null, plannedCallbackAt: planned ? planned.callbackAt : null,
      // How far the anchor (on this page's clock) moved since the plan: the clock estimate
      // changed meanwhile, and the planned start misses by that much.
      anchorMovedMs: planned ? this.now() + beforeAnchorMs - (planned.motionAt - planned.aheadMs) : null,
      // Whether the audio output was running already (something played lately): a start
      // that opens one moves later or sooner than usual (teachesLatency).
      outputRunning: this.outputRunning(),
      // A plan given up because its play() moment had passed: by how much (ms).
      gaveUpLateMs: ownPlan ? ownPlan.gaveUpLateMs : null,
      // How long nothing had played (probes count), and the probes made since the last start.
      idleMs: this.lastPlayingAt === null ? null : this.now() - this.lastPlayingAt,
      probes: this.probesSinceStart,
      // Each of those probes' callback readings: the gap between looks it rests on
      // (watchFirstMotion), how far off the grid it lay, and whether it was taken as on it.
      probeLooks: this.probeLooks,
      // Whether this start ended a probe in flight (endProbe).
      endedProbe: this.probeEndedFor === this.model.current.seq,
    };
    const player = this.player;
    // Judged once the media should have been moving steadily for a while, on a timer of its
    // own: not at the next regular tick (up to TICK_MS later), nor once play()'s promise
    // settles (Chromium often resolves it 100-250 ms after the media started moving), since
    // every ms the miss stands counts against the start.
    const at = this.now() + Math.max(0, beforeAnchorMs) + START_SETTLE_MS;
    this.startCheck = { at };
    this.restartTimer('start', Math.max(0, at - this.now()), () => this.checkStart());
    this.lastPlayingAt = this.now();
    this.probesSinceStart = 0;
    this.probeLooks = [];
    const playing = this.runPlay();
    this.watchCallback(player, this.lastStart);
    playing.then(() => {
      // Refused (autoplay) or overtaken by a pause: there is no start to judge.
      if (this.player === player && player.paused()) this.startCheck = null;
    });
  }

  /**
   * Judges a start once its media moves steadily: learns how late (or early) it was and
   * takes the miss out at once with a short rate change. Runs even while play()'s promise
   * is pending; looks again shortly while the media cannot be judged yet.
   */
  checkStart() {
    const playback = this.model.current;
    const player = this.player;
    if (this.startCheck === null || !playback || playback.paused || !player || !this.playerReady) return;
    if (this.now() < this.startCheck.at) {
      this.restartTimer('start', this.startCheck.at - this.now(), () => this.checkStart());
      return;
    }
    if (player.buffering() || (player.paused() && this.busy)) {
      // Not moving yet: waiting for data (the drift grows meanwhile), or a player that says
      // it plays only once play() has gone through (YouTube). Judged once it moves.
      this.restartTimer('start', START_MOTION_LOOK_MS, () => this.checkStart());
      return;
    }
    const serverMs = this.serverNow();
    const expected = this.expectedPosition(serverMs);
    if (player.paused() || expected === null) return;
    const actual = player.currentTime();
    const driftMs = (actual - expected) * 1000;
    this.lastDriftMs = driftMs;
    if (!this.movingSteadily(actual)) return;
    if (this.lastStart) {
      Object.assign(this.lastStart, { judgedAfterMs: serverMs - playback.anchor, missMs: driftMs });
      this.noteMotion(this.lastStart, actual, playback.rate);
    }
    this.learnStartLead(driftMs);
    this.trimStart(driftMs, playback.rate);
  }

  /** A start's trim is over: back to the room's rate, and the controller takes over. */
  endTrim() {
    this.startTrim = null;
    if (this.player && this.model.current) this.player.setRate(this.model.current.rate);
    this.controller.reset();
  }

  /**
   * Whether the media has moved at about its rate since the last look. Chromium's
   * currentTime often jumps ahead at play() and then stands still until real motion
   * catches up with it; a miss read then would be wrong. If not moving yet, looks again
   * shortly (judging anyway once START_MOTION_WAIT_MS have passed).
   */
  movingSteadily(actual) {
    const check = this.startCheck;
    const now = this.now();
    const last = check.seen;
    check.seen = { at: now, position: actual };
    if (now - check.at >= START_MOTION_WAIT_MS) return true;
    if (last && now - last.at >= START_MOTION_LOOK_MS / 2) {
      const movedMs = (actual - last.position) * 1000;
      if (movedMs >= (now - last.at) * 0.5) return true;
    }
    this.restartTimer('start', START_MOTION_LOOK_MS, () => this.checkStart());
    return false;
  }

  /** Removes a start's miss by a short rate change, then hands over to the controller. */
  trimStart(missMs, rate) {
    if (!Number.isFinite(missMs) || Math.abs(missMs) < START_TRIM_MIN_MS || Math.abs(missMs) >= this.controller.tuning.seekThresholdMs || !this.player.fineRate) return;
    const nudge = Math.max(-START_TRIM_MAX, Math.min(START_TRIM_MAX, -missMs / START_TRIM_MS));
    this.player.setRate(rate * (1 + nudge));
    const tookMs = Math.abs(missMs / nudge) / rate;
    this.startTrim = { until: this.now() + tookMs };
    // Ended on time, not at the next regular tick (which would overshoot by up to TICK_MS),
    // nor held up by a play() promise still pending.
    this.restartTimer('start', tookMs, () => {
      if (this.startTrim !== null) this.endTrim();
      this.tick();
    });
  }

  /**
   * Learns this player's start latency L from how the last start landed.
   * play() was called `before` ms ahead of the anchor (negative: after it, the room
   * already running) with the media `d0` ms off; it then stood still for L ms. Measured
   * `missMs` after settling, the latency was L = max(0, before) + (d0 - miss) / rate:
   * a late call (message arrived late, busy machine) is not held against the player.
   */
  /** Whether the room is at the end of the media, or this player just reached it. */
  atMediaEnd(expected) {
    const duration = this.player.duration();
    if (!Number.isFinite(duration) || expected === null) return false;
    if (expected >= duration - 0.05) return true;
    // A media clock running a little fast ends a moment before the room does. play() on an
    // ended element would start it over from 0, so it waits at the end for the room instead.
    return this.player.currentTime() >= duration - 0.05 && expected >= duration - ENDED_TOLERANCE_MS / 1000;
  }

  /**
   * The grid plan for the current start (start-grid.js), made once when the start is first
   * scheduled, or null: a player that cannot tell its callbacks, an unknown grid, or too
   * little time left to move the media and call play().
   */
  planStart(playback, untilStart) {
    const known = this.plannedStart;
    if (known && known.seq === playback.seq && known.anchor === playback.anchor) return known.plan;
    let plan = null;
    // (A playing player is paused and moved by the plan, like a paused one.)
    if (this.player.fineRate && typeof this.player.watchFirstMotion === 'function' && untilStart > 0 && playback.rate > 0) {
      const now = this.now();
      if (!this.outputRunning()) this.grid.dropPhase();
      plan = this.grid.plan(now + untilStart, now);
    }
    this.plannedStart = { seq: playback.seq, anchor: playback.anchor, plan, gaveUpLateMs: null };
    return plan;
  }

  /** Whether the audio output has been running lately (something played), on the grid last seen. */
  outputRunning() {
    return this.lastPlayingAt !== null && this.now() - this.lastPlayingAt <= GRID_IDLE_MS;
  }

  /**
   * Which probe a paused player is due, if any (Html5Player.probe): 'prime' to learn what
   * the grid lacks, first thing for each element and again now and then while that fails;
   * 'warm' to keep a known output running. Both only within KEEP_WARM_FOR_MS of the player
   * last playing or loading.
   */
  probeDue() {
    const player = this.player;
    if (typeof player.probe !== 'function' || !player.fineRate || !player.probeable() || this.autoplayBlocked) return null;
    if (this.probed !== player) return this.grid.confirmed ? null : 'prime';
    const now = this.now();
    if (this.warmFrom === null || now - this.warmFrom > KEEP_WARM_FOR_MS) return null;
    if (this.lastPlayingAt !== null && now - this.lastPlayingAt < KEEP_WARM_EVERY_MS) return null;
    return this.grid.confirmed ? 'warm' : 'prime';
  }

  /**
   * Probes the paused element (Html5Player.probe: played out of hearing and paused before
   * it truly moves), then moves it back where it stood; the engine is busy meanwhile.
   * - `prime`: learns what the grid lacks. Each probe's callback gives the phase, two give
   *   the period, and one on an output already running gives the latency; until the grid
   *   is StartGrid.confirmed, MAX_PROBES at most.
   * - `load`: the same, as the video's load ends; the page counts as still loading it
   *   meanwhile (unableToPlay), so a hold for a new clip waits for it, and no "ready" goes
   *   out only to be taken back.
   * - `warm`: one quick probe, only to keep the output running. It teaches nothing: a
   *   running output keeps its grid, and one misread callback would move the phase.
   */
  probeGrid(kind) {
    const player = this.player;
    const warm = kind === 'warm';
    this.probed = player;
    this.busy = true;
    this.probing = kind;
    const run = { ended: false };
    this.probeRun = run;
    this.checkBuffering();
    const from = player.currentTime();
    const probes = async () => {
      for (let i = 0; i < (warm ? 1 : MAX_PROBES) && (warm || !this.grid.confirmed) && !run.ended; i += 1) {
        // A resumed element's first change of currentTime is no callback (it jumps at
        // once): moved, it starts as a seeked one.
        if (player.startKind === 'resumed') await player.seek(from);
        if (this.player !== player || run.ended) return;
        const untilMotion = this.outputRunning() && this.grid.motionDelayMs === null;
        // Watched to the end of its run, as a start is: several looks during the run tell the
        // callback better than the first one alone, which a busy page may make late. A warm
        // probe teaches nothing and stops at the first sign.
        const seen = await player.probe({ untilMotion: untilMotion && !warm, quick: warm, now: this.now });
        if (!seen || this.player !== player) return;
        this.lastPlayingAt = this.now();
        this.probesSinceStart += 1;
        if (warm) continue;
        const offGridMs = this.grid.offGridMs(seen.at); // (against the grid as it stood)
        const onGrid = this.grid.noteCallback(seen.at, seen.runMs, seen.playAt);
        this.probeLooks.push({ gapMs: seen.gapMs, offGridMs, onGrid });
        if (seen.motionAt !== null && onGrid) this.grid.noteMotion(seen.motionAt, seen.at);
      }
      // (Ended for a start, the element is moved where the start wants it instead.)
      if (this.player === player && !run.ended && Math.abs(player.currentTime() - from) > 1e-6) await player.seek(from);
    };
    probes().catch(() => {}).then(() => {
      if (this.player !== player) return;
      this.busy = false;
      this.probing = null;
      this.probeRun = null;
      this.onChange(this);
      this.tick();
    });
  }

  /**
   * A start is coming: a probe in flight that only keeps the output running (probeGrid
   * 'warm') ends now rather than hold it. The engine does nothing else while a probe runs,
   * so the start would be planned only once it and the seek back after it were over, with
   * less time left for its own seek and its play() moment. The element is paused at once,
   * which ends the probe's watch, and is left where the start moves it next. Probes that
   * learn the grid ('prime', 'load') go on: the start is planned on what they show.
   */
  endProbe() {
    if (this.probeRun === null || this.probing !== 'warm') return;
    this.probeRun.ended = true;
    this.probeEndedFor = this.model.current.seq;
    this.player.pause();
  }

  /** Watches the start just begun for the audio callback that took it up (start-grid.js). */
  watchCallback(player, start) {
    if (typeof player.watchFirstMotion !== 'function' || !teachesPhase(start)) return;
    player.watchFirstMotion(this.now).then((seen) => {
      if (!seen || this.lastStart !== start) return;
      start.callbackAt = seen.at;
      start.runMs = seen.runMs;
      // (Diagnostics: the gap between looks the reading rests on, and how far off the grid
      // as it stood the callback lay.)
      start.lookGapMs = seen.gapMs;
      start.offGridMs = this.grid.offGridMs(seen.at);
      start.onGrid = this.grid.noteCallback(seen.at, seen.runMs, start.playAt);
    }, () => {});
  }

  /** The start's media is seen moving at `actual`: learns the output's latency from it. */
  noteMotion(start, actual, rate) {
    if (!teachesLatency(start) || !Number.isFinite(start.callbackAt) || !Number.isFinite(start.from)) return;
    const onsetAt = this.now() - ((actual - start.from) * 1000) / rate;
    start.motionAt = onsetAt;
    // A callback read off the grid may be misread, and the latency from it as far off.
    if (start.onGrid) this.grid.noteMotion(onsetAt, start.callbackAt);
  }

  learnStartLead(missMs) {
    this.startCheck = null;
    const start = this.lastStart;
    if (!start || !Number.isFinite(missMs)) return;
    const rate = this.model.current ? this.model.current.rate : 1;
    const latency = Math.max(0, start.beforeAnchorMs) + (start.driftMs - missMs) / rate;
    // A resumed element may jump ahead by more than it waits: its lead can be below zero.
    if (!Number.isFinite(latency) || latency < -MAX_START_LEAD_MS / 2 || latency > MAX_START_LEAD_MS) return; // a stall, not a start
    const kind = START_KINDS.includes(start.kind) ? start.kind : 'seeked';
    // Averaged in, the first one too: in Chromium one start of a kind differs from the
    // next by up to ±15 ms, so one start alone is no better a guess than the prior.
    const weight = START_LEAD_LEARNING;
    this.startLeads[kind] += (latency - this.startLeads[kind]) * weight;
    this.startsLearned[kind] += 1;
  }

  /** Calls player.play(); returns its promise. Also used from a user gesture to lift an autoplay block. */
  runPlay() {
    this.busy = true;
    let promise;
    try {
      promise = Promise.resolve(this.player.play());
    } catch (error) {
      promise = Promise.reject(error);
    }
    return promise.then(
      () => {
        this.busy = false;
        if (this.autoplayBlocked) {
          this.autoplayBlocked = false;
          this.onChange(this);
        }
      },
      (error) => {
        this.busy = false;
        if (error && error.name === 'NotAllowedError') {
          this.autoplayBlocked = true;
          this.onChange(this);
        } else if (!(error && error.name === 'AbortError')) {
          // (AbortError: a pause, seek or new source came first, as the room asked: no fault.)
          this.lastError = String(error && error.message || error);
        }
      },
    );
  }

  /** Called from a click on the "join playback" overlay: a user gesture allows play(). */
  resumeAfterGesture() {
    this.autoplayBlocked = false;
    if (!this.player || !this.playerReady) return Promise.resolve();
    this.onChange(this);
    const playback = this.model.current;
    if (playback && !playback.paused) return this.runPlay().then(() => this.tick());
    return Promise.resolve();
  }

  seekTo(targetFn, { measure = true } = {}) {
    this.busy = true;
    const startedAt = this.now();
    // The target is computed at the last moment so time spent deciding is not lost.
    let target = targetFn();
    const duration = this.player.duration();
    if (Number.isFinite(duration)) target = Math.min(target, duration);
    return Promise.resolve(this.player.seek(Math.max(0, target))).then(
      () => {
        if (measure) this.controller.noteSeekLatency(this.now() - startedAt);
        this.busy = false;
        this.controller.reset();
        this.tick();
      },
      () => {
        this.busy = false;
      },
    );
  }

  switchVideo(video) {
    if (this.player) this.player.destroy();
    // A new element plays on an output of its own: the grid's phase is not known for it.
    this.grid.dropPhase();
    this.player = null;
    this.playerReady = false;
    this.playerVideo = video;
    this.busy = false;
    this.probing = null;
    this.probeRun = null;
    this.startCheck = null;
    this.startTrim = null;
    this.lastError = null;
    this.controller.reset();
    if (!video) {
      this.checkBuffering();
      this.onChange(this);
      return;
    }
    const player = this.createPlayer(video);
    if (!player) return;
    this.player = player;
    // Players say when they may have started or stopped waiting for data.
    player.onBufferingChange = () => {
      if (this.player === player) this.checkBuffering();
    };
    this.checkBuffering();
    const kindChanged = !this.controller || this.controller.tuning.fineRate !== player.fineRate;
    if (kindChanged) {
      // Learned latencies carry over between videos of the same kind of player.
      this.controller = new CorrectionController(player.fineRate ? HTML5_TUNING : YOUTUBE_TUNING);
      this.startLeads = initialLeads(player.fineRate);
      this.startsLearned = { fresh: 0, seeked: 0, resumed: 0 };
    }
    this.onChange(this);
    Promise.resolve(player.load(video)).then(
      () => {
        if (this.player !== player) return; // replaced meanwhile
        this.playerReady = true;
        this.warmFrom = this.now();
        // Primed at once if it stands paused for now (a pause, a hold, a start still to come).
        const playback = this.model.current;
        const serverMs = this.serverNow();
        const standing = playback && (playback.paused || (serverMs !== null && playback.anchor > serverMs));
        if (standing && this.probeDue() === 'prime') this.probeGrid('load');
        this.onChange(this);
        this.tick();
      },
      (error) => {
        if (this.player !== player) return;
        this.lastError = `could not load the video: ${error && error.message || error}`;
        this.onChange(this);
      },
    );
  }

  // ---- reporting ------------------------------------------------------------

  /**
   * Whether the player cannot play where the room wants it right now: loading the video,
   * stalled while playing, or paused without data at a position the room is about to play
   * from (a scheduled start) or is holding for this page.
   */
  unableToPlay() {
    const player = this.player;
    const playback = this.model.current;
    if (!player || !playback || !playback.video) return false;
    // A video that failed to load never will: that is an error shown to the person, not a wait.
    if (this.loadingVideo()) return this.lastError === null;
    if (playback.ended) return false;
    // At the end there is nothing left to wait for (the room ends or advances by itself).
    if (this.atMediaEnd(this.expectedPosition())) return false;
    // Standing still for a pause or for someone else's hold, a seek that still waits for data
    // keeps nobody waiting: it is judged when the room moves again.
    const wanted = !playback.paused || (isHold(playback) && this.selfId !== null && playback.waiting_for.includes(this.selfId));
    if (!wanted) return false;
    return player.buffering() || (typeof player.canPlay === 'function' && !player.canPlay());
  }

  /** Whether the player is still loading its video: its first probes (probeGrid 'load') are part of it. */
  loadingVideo() {
    return !this.playerReady || this.probing === 'load';
  }

  /** Whether this page says it is buffering: unable to play for a while, and in step with the room. */
  bufferingNow() {
    if (!this.inStep || this.unableSince === null) return false;
    if (this.player && this.loadingVideo()) return true;
    return this.now() - this.unableSince >= BUFFERING_DEBOUNCE_MS;
  }

  /** Re-evaluates the buffering flag; a flip is reported at once (the room may hold or resume). */
  checkBuffering() {
    if (this.unableToPlay()) {
      if (this.unableSince === null) {
        this.unableSince = this.now();
        this.restartTimer('buffering', BUFFERING_DEBOUNCE_MS, () => this.checkBuffering());
      }
    } else {
      this.unableSince = null;
      this.stopTimer('buffering');
    }
    const flag = this.bufferingNow();
    if (flag === this.buffering) return;
    this.buffering = flag;
    this.onChange(this);
    if (this.takeFlipToken()) this.reportStatus();
    // Otherwise the next regular status carries it.
  }

  takeFlipToken() {
    const now = this.now();
    this.flipTokens = Math.min(FLIP_REPORT_BURST, this.flipTokens + ((now - this.flipTokensAt) / 1000) * FLIP_REPORTS_PER_S);
    this.flipTokensAt = now;
    if (this.flipTokens < 1) return false;
    this.flipTokens -= 1;
    return true;
  }

  status() {
    return {
      type: 'status',
      rtt_ms: this.clock.rttMs === null ? 0 : round1(this.clock.rttMs),
      drift_ms: this.lastDriftMs === null ? 0 : round1(this.lastDriftMs),
      buffering: this.buffering,
    };
  }

  reportStatus() {
    if (!this.connected || !this.clock.synced) return;
    this.send(this.status());
  }

  /**
   * Tells the room the current video's length once per video, as soon as this player knows
   * it and the room does not: the room needs it to know when the video ends.
   */
  reportDuration() {
    const playback = this.model.current;
    const player = this.player;
    if (!this.connected || !playback || !playback.video || playback.duration !== null) return;
    if (!player || !this.playerReady || this.durationReportedFor === player) return;
    if (!sameVideo(this.playerVideo, playback.video)) return;
    const duration = player.duration();
    if (!Number.isFinite(duration) || duration <= 0) return;
    const sent = this.send({ type: 'media_info', seq: playback.seq, duration: Math.round(duration * 1000) / 1000 });
    if (sent !== false) this.durationReportedFor = player;
  }

  // ---- timers ---------------------------------------------------------------

  /** (Re)starts timer `name`; `exact` uses the exact timer (for the play moment). */
  restartTimer(name, delay, fn, { repeat = false, exact = false } = {}) {
    this.stopTimer(name);
    const { set, clear } = exact ? this.exactTimer : { set: this.setTimer, clear: this.clearTimer };
    const run = () => {
      if (repeat) this.timers[name] = { id: set(run, delay), clear };
      else this.timers[name] = null;
      fn();
    };
    this.timers[name] = { id: set(run, delay), clear };
  }

  stopTimer(name) {
    const timer = this.timers[name];
    if (timer !== null) timer.clear(timer.id);
    this.timers[name] = null;
  }

  destroy() {
    for (const name of Object.keys(this.timers)) this.stopTimer(name);
    if (this.player) this.player.destroy();
    this.player = null;
    this.playerReady = false;
  }
}

/** The start leads a new kind of player begins with, per kind of start. */
function initialLeads(fineRate) {
  const which = fineRate ? 'fine' : 'coarse';
  return { fresh: INITIAL_START_LEAD_MS[which], seeked: INITIAL_START_LEAD_MS[which], resumed: INITIAL_RESUMED_LEAD_MS[which] };
}

/**
 * Whether a start's first change of currentTime is an audio callback (start-grid.js): a
 * fresh or seeked element's is; a resumed element's is not (it jumps at once). In the sync
 * test a page's first start's callback lay on the grid its later starts kept in 21 of 24
 * pages (within 0.4 ms); one that does not shows at the next callback.
 */
function teachesPhase(start) {
  return start.kind !== 'resumed';
}

/**
 * Whether a start tells the output's latency: only a seeked element's start on an output
 * already running. The first start of an element, or the first after the output idled,
 * opens an output and moves later or sooner than usual (by hand: 58.7 and 43.8 ms after the
 * callback, against 69.5).
 */
function teachesLatency(start) {
  return start.kind === 'seeked' && start.outputRunning;
}

function round1(x) {
  return Math.round(x * 10) / 10;
}
