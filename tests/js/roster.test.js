import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Roster, BIG_ROOM_THRESHOLD } from '../../frontend/js/roster.js';

const entry = (id, name, extra = {}) => ({ id, name, is_host: false, rtt_ms: null, drift_ms: null, buffering: false, connected: true, ...extra });

test('welcome, joined, left and host changes', () => {
  const roster = new Roster();
  roster.reset([entry('b', 'bob'), entry('a', 'Ann', { is_host: true })], 'a');
  assert.deepEqual(roster.list().map((m) => m.name), ['Ann', 'bob']);
  roster.upsert(entry('c', 'Cid'));
  assert.equal(roster.count, 3);
  roster.setHost('c');
  assert.deepEqual(roster.list().map((m) => m.name), ['Cid', 'Ann', 'bob'], 'host first');
  roster.remove('c');
  assert.equal(roster.host, null, 'host left');
  assert.equal(roster.count, 2);
});

test('presence deltas merge by id and keep unchanged members', () => {
  const roster = new Roster();
  roster.reset([entry('a', 'Ann'), entry('b', 'Bob')], 'a');
  roster.applyPresence({ participants: [{ ...entry('b', 'Bob'), rtt_ms: 23.5, drift_ms: -4 }], left: [], count: 2, host_id: 'a' });
  const bob = roster.members.get('b');
  assert.equal(bob.rtt_ms, 23.5);
  assert.equal(bob.drift_ms, -4);
  assert.ok(roster.members.has('a'));
  roster.applyPresence({ participants: [entry('d', 'Dee')], left: ['a'], count: 2, host_id: 'b' });
  assert.deepEqual(roster.list().map((m) => m.id), ['b', 'd']);
  assert.equal(roster.host.name, 'Bob');
});

test('big rooms: count from the server, summary of who needs attention', () => {
  const roster = new Roster();
  roster.reset([entry('h', 'Host')], 'h');
  roster.applyPresence({
    participants: [
      entry('s', 'Slow', { buffering: true }),
      entry('o', 'Off', { drift_ms: 900 }),
      entry('k', 'Ok', { drift_ms: 12 }),
    ],
    left: [],
    count: BIG_ROOM_THRESHOLD + 250,
    host_id: 'h',
  });
  assert.ok(roster.isBig);
  const summary = roster.summary();
  assert.equal(summary.count, BIG_ROOM_THRESHOLD + 250);
  assert.equal(summary.host.name, 'Host');
  assert.deepEqual(summary.buffering.map((m) => m.name), ['Slow']);
  assert.deepEqual(summary.outOfSync.map((m) => m.name), ['Off']);
});

test('big rooms: the server\'s totals win over the entries we happen to know', () => {
  const roster = new Roster();
  roster.reset([entry('h', 'Host')], 'h');
  const big = { left: [], count: BIG_ROOM_THRESHOLD + 900, host_id: 'h' };
  roster.applyPresence({ ...big, participants: [entry('s', 'Slow', { buffering: true })], buffering_count: 7, out_of_sync_count: 2 });
  let summary = roster.summary();
  assert.deepEqual(summary.buffering.map((m) => m.name), ['Slow']);
  assert.equal(summary.bufferingCount, 7);
  assert.equal(summary.outOfSyncCount, 2);
  // A presence without totals (an older server) leaves the last ones; bad totals are ignored.
  roster.applyPresence({ ...big, participants: [], buffering_count: -1, out_of_sync_count: 'x' });
  summary = roster.summary();
  assert.equal(summary.bufferingCount, 7);
  // A fresh welcome forgets them and counts what it lists.
  roster.reset([entry('h', 'Host'), entry('s', 'Slow', { buffering: true })], 'h');
  assert.equal(roster.summary().bufferingCount, 1);
});

test('garbage entries are skipped', () => {
  const roster = new Roster();
  roster.reset([null, 5, { name: 'no id' }, entry('a', 'Ann', { rtt_ms: 'fast', drift_ms: NaN })], 'a');
  assert.equal(roster.count, 1);
  assert.equal(roster.members.get('a').rtt_ms, null);
  roster.applyPresence(null);
  roster.applyPresence({ participants: 'x', left: [3, null], count: -1 });
  assert.equal(roster.count, 1);
});

test("the server's big-room threshold replaces the default", () => {
  const roster = new Roster();
  roster.reset([entry('h', 'Host')], 'h', 3);
  roster.applyPresence({ participants: [], left: [], count: 4, host_id: 'h' });
  assert.ok(roster.isBig, 'four members are a big room on a server whose threshold is three');
  roster.reset([entry('h', 'Host')], 'h', 'nonsense');
  roster.applyPresence({ participants: [], left: [], count: 4, host_id: 'h' });
  assert.ok(roster.isBig, 'a bad value keeps the last good threshold');
  const fresh = new Roster();
  fresh.reset([entry('h', 'Host')], 'h');
  fresh.applyPresence({ participants: [], left: [], count: BIG_ROOM_THRESHOLD, host_id: 'h' });
  assert.ok(!fresh.isBig, 'without a threshold from the server, the default holds');
  fresh.applyPresence({ participants: [], left: [], count: BIG_ROOM_THRESHOLD + 1, host_id: 'h' });
  assert.ok(fresh.isBig);
});
