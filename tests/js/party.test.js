import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PlaybackModel, parsePlayback } from '../../frontend/js/playback-model.js';
import { classifyChange, describeChange, dropIndex, holdRemainingS, joinNames, parseQueue, queueLabel, videoLabel } from '../../frontend/js/party.js';

const A = { kind: 'url', url: '/media/clip-a-60s.mp4' };
const B = { kind: 'url', url: '/media/clip-b-30s.mp4' };
const ANN = '1111111111111111';
const BOB = '2222222222222222';
const CAT = '3333333333333333';
const p = (fields) => parsePlayback({ video: A, paused: true, position: 0, rate: 1, anchor: 1_000_000, seq: 1, duration: null, ended: false, waiting_for: [], ...fields });
const names = { [ANN]: 'Ann', [BOB]: 'Bob', [CAT]: 'Cat' };
const ctx = (extra = {}) => ({ name: (id) => names[id] || 'Someone', label: (v) => videoLabel(v, []), ...extra });
const say = (prev, next, by, extra) => describeChange(classifyChange(prev, next, by), next, by, ctx(extra));

test('the watch-party fields are parsed, checked, and optional for an older server', () => {
  const full = parsePlayback({ video: A, paused: true, position: 30, rate: 1, anchor: 5, seq: 2, duration: 30, ended: true, waiting_for: [BOB] });
  assert.deepEqual([full.duration, full.ended, full.waiting_for], [30, true, [BOB]]);
  const old = parsePlayback({ video: A, paused: true, position: 0, rate: 1, anchor: 5, seq: 2 });
  assert.deepEqual([old.duration, old.ended, old.waiting_for], [null, false, []]);
  for (const bad of [{ duration: -1 }, { duration: 'long' }, { duration: Infinity }, { ended: 'yes' }, { waiting_for: 'bob' }, { waiting_for: [7] }, { waiting_for: [''] }]) {
    assert.equal(parsePlayback({ video: A, paused: true, position: 0, rate: 1, anchor: 5, seq: 2, ...bad }), null, JSON.stringify(bad));
  }
});

test('the model remembers when a hold began while the list of those waited for changes', () => {
  const model = new PlaybackModel();
  model.apply(p({ paused: false, seq: 1 }));
  assert.equal(model.onHold, false);
  assert.equal(model.holdStartedAt, null);
  model.apply(p({ anchor: 2000, seq: 2, waiting_for: [BOB] }));
  assert.equal(model.onHold, true);
  assert.equal(model.holdStartedAt, 2000);
  // Cat starts buffering too: the room pauses again (new anchor), the hold goes on.
  model.apply(p({ anchor: 2600, seq: 3, waiting_for: [BOB, CAT] }));
  assert.equal(model.holdStartedAt, 2000);
  // Released, then a new hold later: it starts afresh.
  model.apply(p({ paused: false, anchor: 4000, seq: 4 }));
  assert.equal(model.holdStartedAt, null);
  model.apply(p({ anchor: 9000, seq: 5, waiting_for: [CAT] }));
  assert.equal(model.holdStartedAt, 9000);
  // A page that joins during a hold only knows the last anchor.
  const late = new PlaybackModel();
  late.apply(p({ anchor: 9500, seq: 6, waiting_for: [CAT] }), { fresh: true });
  assert.equal(late.holdStartedAt, 9500);
});

test('a person\'s changes are told apart', () => {
  const paused = p({ position: 10 });
  const playing = p({ paused: false, position: 10, anchor: 1_000_000 });
  assert.equal(say(paused, p({ paused: false, position: 10, seq: 2 }), ANN), 'Ann played at 0:10');
  assert.equal(say(playing, p({ position: 14.2, seq: 2, anchor: 1_004_200 }), ANN), 'Ann paused at 0:14');
  assert.equal(say(paused, p({ position: 40, seq: 2 }), BOB), 'Bob jumped to 0:40', 'a seek while paused');
  assert.equal(say(playing, p({ paused: false, position: 75, anchor: 1_003_000, seq: 2 }), ANN), 'Ann jumped to 1:15', 'a seek while playing');
  assert.equal(say(playing, p({ paused: false, position: 13.1, anchor: 1_003_000, seq: 2 }), ANN), 'Ann played at 0:13', 'play while playing: rescheduled where it was');
  assert.equal(say(playing, p({ paused: false, position: 13, rate: 1.5, seq: 2 }), ANN), 'Ann set the speed to 1.5×');
  assert.equal(say(playing, p({ video: B, seq: 2 }), ANN), 'Ann loaded clip-b-30s.mp4');
  assert.equal(say(playing, p({ video: B, paused: false, seq: 2 }), ANN), 'Ann skipped to clip-b-30s.mp4');
  assert.equal(say(paused, p({ paused: false, seq: 2 }), 'ffffffffffffffff'), 'Someone played at 0:00', 'a name not (yet) in the roster');
  const you = { name: (id) => (id === ANN ? 'you' : names[id] || 'someone') };
  assert.equal(say(paused, p({ paused: false, seq: 2 }), ANN, you), 'You played at 0:00');
  const hold = p({ position: 12, seq: 2, waiting_for: [ANN] });
  assert.equal(say(paused, hold, null, you), 'Waiting for you…');
  assert.equal(say(hold, p({ paused: false, position: 12, seq: 3 }), null, you), 'You are ready — playing on');
});

test('the room\'s own changes are never "someone paused"', () => {
  const playing = p({ paused: false, position: 10 });
  const hold = p({ position: 12, seq: 2, waiting_for: [BOB] });
  assert.equal(say(playing, hold, null), 'Waiting for Bob…');
  const both = p({ position: 12, seq: 3, waiting_for: [BOB, CAT] });
  assert.equal(say(hold, both, null), 'Waiting for Bob and Cat…');
  const catOnly = p({ position: 12, seq: 4, waiting_for: [CAT] });
  assert.equal(say(both, catOnly, null), 'Bob is ready — still waiting for Cat…');
  const resumed = p({ paused: false, position: 12, seq: 5 });
  assert.equal(say(catOnly, resumed, null), 'Cat is ready — playing on');
  assert.equal(say(catOnly, resumed, null, { timedOut: true }), 'Stopped waiting for Cat — playing on');
  assert.equal(say(playing, p({ video: B, paused: false, seq: 6 }), null), 'Now playing clip-b-30s.mp4');
  assert.equal(say(playing, p({ position: 60, duration: 60, ended: true, seq: 7 }), null), 'The video ended');
  assert.equal(say(playing, p({ paused: false, position: 10, duration: 60, seq: 8 }), null), null, 'a learned length is not news');
  // A person acting during a hold.
  assert.equal(say(hold, p({ position: 12, seq: 9 }), ANN), 'Ann paused at 0:12', 'pausing ends the hold');
  assert.equal(say(hold, p({ position: 30, seq: 9, waiting_for: [BOB] }), ANN), 'Ann jumped to 0:30', 'a seek keeps waiting');
  assert.equal(say(hold, p({ paused: false, position: 12, seq: 9 }), ANN), 'Ann played at 0:12');
});

test('names are joined for people', () => {
  assert.equal(joinNames([]), '');
  assert.equal(joinNames(['Bob']), 'Bob');
  assert.equal(joinNames(['Bob', 'Cat']), 'Bob and Cat');
  assert.equal(joinNames(['Bob', 'Cat', 'Dee']), 'Bob, Cat and Dee');
});

test('the hold countdown runs to the hold\'s deadline on the server clock', () => {
  assert.equal(holdRemainingS(18_000, 10_000), 8);
  assert.equal(holdRemainingS(18_000, 15_500), 2.5);
  assert.equal(holdRemainingS(18_000, 99_000), 0);
  assert.equal(holdRemainingS(null, 10_000), null);
});

test('the hold deadline is the room\'s when it gives one, else counted from the hold\'s start', () => {
  const model = new PlaybackModel();
  model.apply(p({ anchor: 2000, seq: 2, waiting_for: [BOB], hold_until: 12_500 }));
  assert.equal(model.holdDeadline(8), 12_500, 'a page joining mid-hold or after a timeout change');
  const older = new PlaybackModel();
  older.apply(p({ anchor: 2000, seq: 2, waiting_for: [BOB] }));
  assert.equal(older.holdDeadline(8), 10_000);
  older.apply(p({ paused: false, anchor: 4000, seq: 3 }));
  assert.equal(older.holdDeadline(8), null);
  assert.equal(parsePlayback({ video: A, paused: true, position: 0, rate: 1, anchor: 5, seq: 2, hold_until: 'soon' }), null);
});

test('queue items are cleaned and labelled', () => {
  const items = parseQueue([
    { id: 1, video: B, title: 'Part two', added_by: { id: ANN, name: 'Ann' } },
    { id: 2, video: { kind: 'youtube', id: 'dQw4w9WgXcQ' }, title: null, added_by: { id: BOB, name: 'Bob' } },
    { id: 3, video: { kind: 'url', url: 'javascript:alert(1)' }, title: 'x', added_by: { id: BOB, name: 'Bob' } },
    { id: 'x', video: B },
    null,
  ]);
  assert.deepEqual(items.map((i) => i.id), [1, 2]);
  assert.deepEqual(items.map(queueLabel), ['Part two', 'YouTube dQw4w9WgXcQ']);
  assert.equal(items[0].addedBy.name, 'Ann');
  assert.equal(videoLabel(B, items), 'Part two');
  assert.equal(videoLabel(A, items), 'clip-a-60s.mp4');
  assert.deepEqual(parseQueue('nope'), []);
});

test('a dropped item lands where it was dropped', () => {
  // [A, B, C]: drag A after C → [B, C, A]; C before A → [C, A, B]; A before B: no move.
  assert.equal(dropIndex(0, 2, true), 2);
  assert.equal(dropIndex(2, 0, false), 0);
  assert.equal(dropIndex(0, 1, false), null);
  assert.equal(dropIndex(0, 0, true), null);
  assert.equal(dropIndex(1, 0, true), null);
  assert.equal(dropIndex(2, 1, false), 1);
  assert.equal(dropIndex(0, 1, true), 1);
  assert.equal(dropIndex(-1, 1, true), null);
});
