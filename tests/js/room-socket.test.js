import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RoomSocket } from '../../frontend/js/room-socket.js';
import { reconnectDelayMs, MAX_DELAY_MS } from '../../frontend/js/reconnect.js';
import { VirtualTime } from './fakes.js';

class FakeWebSocket {
  static instances = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    FakeWebSocket.instances.push(this);
  }
  open() {
    this.readyState = 1;
    this.onopen();
  }
  receive(message) {
    this.onmessage({ data: typeof message === 'string' ? message : JSON.stringify(message) });
  }
  send(data) {
    this.sent.push(JSON.parse(data));
  }
  close() {
    this.readyState = 3;
  }
  drop(code = 1006) {
    this.readyState = 3;
    this.onclose({ code });
  }
}

function setup() {
  FakeWebSocket.instances = [];
  const time = new VirtualTime();
  const states = [];
  const messages = [];
  let resumeToken = null;
  const socket = new RoomSocket({
    url: 'ws://h/api/rooms/r1/ws',
    joinMessage: () => ({ type: 'join', name: 'Ann', ...(resumeToken ? { resume_token: resumeToken } : {}) }),
    onMessage: (m) => {
      messages.push(m);
      if (m.type === 'welcome') resumeToken = m.resume_token;
    },
    onState: (s, detail) => states.push([s, detail]),
    WebSocketImpl: FakeWebSocket,
    setTimer: time.setTimer,
    clearTimer: time.clearTimer,
    random: () => 0.5,
  });
  return { time, socket, states, messages, sockets: FakeWebSocket.instances };
}

test('backoff grows, is capped and jittered', () => {
  assert.equal(reconnectDelayMs(0, () => 0), 250);
  assert.equal(reconnectDelayMs(0, () => 1), 500);
  assert.ok(reconnectDelayMs(3, () => 0.5) > reconnectDelayMs(1, () => 0.5));
  assert.ok(reconnectDelayMs(50, () => 1) <= MAX_DELAY_MS);
});

test('joins, then resumes with the token after a drop', async () => {
  const { time, socket, states, messages, sockets } = setup();
  socket.connect();
  sockets[0].open();
  assert.deepEqual(sockets[0].sent, [{ type: 'join', name: 'Ann' }]);
  assert.equal(socket.send({ type: 'chat', text: 'early' }), false, 'nothing but join before welcome');
  sockets[0].receive({ type: 'welcome', resume_token: 'tok-1' });
  assert.equal(socket.send({ type: 'chat', text: 'hi' }), true);
  sockets[0].receive('not json {');
  sockets[0].receive({ no: 'type' });
  assert.deepEqual(messages.map((m) => m.type), ['welcome']);

  sockets[0].drop(1006);
  assert.equal(states.at(-1)[0], 'reconnecting');
  await time.advance(1000);
  assert.equal(sockets.length, 2);
  sockets[1].open();
  assert.deepEqual(sockets[1].sent[0], { type: 'join', name: 'Ann', resume_token: 'tok-1' });
  socket.stop('bye');
});

test('a silent socket is given up and replaced', async () => {
  const { time, socket, sockets } = setup();
  socket.connect();
  sockets[0].open();
  sockets[0].receive({ type: 'welcome', resume_token: 't' });
  await time.advance(30_000);
  assert.ok(sockets.length >= 2, 'reconnected after silence');
  socket.stop();
});

test('final closes and fatal join errors stop retrying', async () => {
  for (const [close, expectText] of [[4004, /closed/], [4001, /another tab/]]) {
    const { time, socket, states, sockets } = setup();
    socket.connect();
    sockets[0].open();
    sockets[0].receive({ type: 'welcome', resume_token: 't' });
    sockets[0].drop(close);
    await time.advance(60_000);
    assert.equal(sockets.length, 1);
    assert.equal(states.at(-1)[0], 'closed');
    assert.match(states.at(-1)[1], expectText);
  }
  const { time, socket, states, sockets } = setup();
  socket.connect();
  sockets[0].open();
  sockets[0].receive({ type: 'error', code: 'room_full', message: 'the room is full' });
  await time.advance(60_000);
  assert.equal(sockets.length, 1);
  assert.deepEqual(states.at(-1), ['closed', 'the room is full']);
  assert.equal(socket.stopped, true);
});

function setupWithRoom(gone) {
  FakeWebSocket.instances = [];
  const time = new VirtualTime();
  const states = [];
  let checks = 0;
  const socket = new RoomSocket({
    url: 'ws://h/api/rooms/r1/ws',
    joinMessage: () => ({ type: 'join', name: 'Ann' }),
    onMessage: () => {},
    onState: (s, detail) => states.push([s, detail]),
    roomGone: async () => {
      checks += 1;
      return gone();
    },
    WebSocketImpl: FakeWebSocket,
    setTimer: time.setTimer,
    clearTimer: time.clearTimer,
    random: () => 0.5,
  });
  return { time, socket, states, sockets: FakeWebSocket.instances, checks: () => checks };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

test('a refused connection to a room that answers 404 stops for good', async () => {
  const { time, socket, states, sockets, checks } = setupWithRoom(() => true);
  socket.connect();
  sockets[0].open();
  sockets[0].receive({ type: 'welcome', you: { id: 'p1' }, resume_token: 't' });
  // The server restarts without the room: the drop is retried without asking...
  sockets[0].drop(1012);
  assert.equal(checks(), 0, 'a socket that had joined is simply retried');
  assert.equal(socket.retrying, true);
  // ...and the retry is refused before any welcome: now the room is asked for.
  await time.advance(MAX_DELAY_MS);
  assert.equal(sockets.length, 2);
  sockets[1].drop(1006);
  await settle();
  assert.equal(checks(), 1);
  assert.deepEqual(states.at(-1), ['gone', 'This room no longer exists.']);
  assert.equal(socket.retrying, false, 'no retry is scheduled');
  assert.equal(sockets.length, 2);
});

test('a refused connection to a room that still exists (or cannot be asked) is retried', async () => {
  let answer = false;
  const { time, socket, states, sockets, checks } = setupWithRoom(() => {
    if (answer === 'throw') throw new Error('offline');
    return answer;
  });
  socket.connect();
  sockets[0].drop(1006);
  await settle();
  assert.equal(checks(), 1);
  assert.equal(states.at(-1)[0], 'reconnecting');
  await time.advance(MAX_DELAY_MS);
  assert.equal(sockets.length, 2, 'retried after the backoff');
  answer = 'throw';
  sockets[1].drop(1006);
  await settle();
  assert.equal(states.at(-1)[0], 'reconnecting', 'a failed check is no proof the room is gone');
  assert.equal(socket.retrying, true);
});

test('a join refused with room_not_found is gone too', () => {
  const { socket, states, sockets } = setupWithRoom(() => false);
  socket.connect();
  sockets[0].open();
  sockets[0].receive({ type: 'error', code: 'room_not_found', message: 'no room with id r1' });
  assert.deepEqual(states.at(-1), ['gone', 'This room no longer exists.']);
  assert.equal(socket.retrying, false);
});
