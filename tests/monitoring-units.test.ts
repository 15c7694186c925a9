// The monitoring parts on their own: the progress throttle and the progress topics' wiring on
// node:test mock timers, an event stream's framing, heartbeats and drop over a real HTTP connection, the event route
// letting the server close while a stream is open, and the open-descriptor count.
import { after, afterEach, beforeEach, describe, mock, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import Fastify from 'fastify';
import { pino } from 'pino';
import { FleetEvents } from '../src/events.js';
import { eventRoutes } from '../src/http/routes/events/index.js';
import { EventStream } from '../src/monitoring/event-stream.js';
import { ProgressThrottle } from '../src/monitoring/progress-throttle.js';
import { monitorTopics } from '../src/monitoring/topics.js';
import { mayPublish, mayReceive, maySubscribe } from '../broker/acl.js';
import { MONITOR_FILTERS, topics } from '../src/topics.js';
import { startStatusTopics, type StatusTopicsDeps } from '../src/monitoring/status-topics.js';
import type { Services } from '../src/services.js';
import { eventually } from './support/eventually.js';
import { openFileCount } from '../src/monitoring/metrics.js';
import { closeSync, openSync, readdirSync } from 'node:fs';

describe('status topics', () => {
  const monitor = { id: 'ops', role: 'monitor' } as const;
  const device = { id: 'dev-1', role: 'device' } as const;

  test('are spelled as docs/protocol.md says, and the broker lets monitors, and only them, read them', () => {
    // Spelled out on purpose: monitoring clients in the field subscribe to these.
    assert.equal(monitorTopics.rolloutProgress('r1'), 'rollouts/r1/progress');
    assert.equal(monitorTopics.fleetEvents('dev-1'), 'fleet/dev-1/events');
    assert.deepEqual(MONITOR_FILTERS, ['rollouts/#', 'fleet/#', 'devices/+/status']);
    for (const topic of [monitorTopics.rolloutProgress('r1'), monitorTopics.fleetEvents('dev-1'), topics.status('dev-1')]) {
      assert.ok(mayReceive(monitor, topic), topic);
      assert.ok(!mayReceive(device, topic), topic);
      assert.ok(!mayPublish(monitor, topic), topic);
    }
    for (const filter of [monitorTopics.rolloutProgress('+'), monitorTopics.fleetEvents('+'), ...MONITOR_FILTERS]) assert.ok(maySubscribe(monitor, filter), filter);
  });
});

/** Lets promise callbacks and I/O run (setImmediate is not among the mocked timers). */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Advances the mocked clock one millisecond at a time, running the timers due at each millisecond
 * and letting the throttle's promise chain run after them: Node 20's tick(n) runs every timer due within n at the final time.
 */
async function advance(ms: number): Promise<void> {
  for (let i = 0; i <= ms; i++) {
    if (i > 0) mock.timers.tick(1);
    await turn();
    mock.timers.tick(0); // timers due now, set by what just ran (a zero delay fires at this millisecond)
    await turn();
  }
}

// On node:test mock timers: every time below is the mocked clock's, so each publication's start
// is the one the throttle's rules give, whatever the machine's speed.
describe('ProgressThrottle', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 }));
  afterEach(() => mock.timers.reset());

  function recorder(publishMs = 0) {
    const calls: { id: string; start: number; end: number }[] = [];
    const errors: unknown[] = [];
    let running = 0;
    let maxRunning = 0;
    const throttle = new ProgressThrottle({
      intervalMs: 100,
      publish: async (id) => {
        const start = Date.now();
        maxRunning = Math.max(maxRunning, ++running);
        if (publishMs) await new Promise((r) => setTimeout(r, publishMs));
        running--;
        calls.push({ id, start, end: Date.now() });
        if (id.startsWith('broken')) throw new Error('broker gone');
      },
      onError: (err) => errors.push(err),
    });
    return { throttle, calls, errors, maxRunning: () => maxRunning };
  }

  test('a burst gives a leading publication, at most one per interval, and a trailing one after the last change', async () => {
    const { throttle, calls, errors } = recorder();
    let lastChange = 0;
    for (let i = 0; i < 26; i++) { // a change every 10 ms, from 0 to 250 ms
      throttle.changed('ro_1');
      lastChange = Date.now();
      await advance(10);
    }
    await advance(150);
    await throttle.close();
    // Leading at 0; the changes from 10 ms on wait for 100, 200; the one at 250 rides on the publication due at 300.
    assert.deepEqual(calls.map((c) => c.start), [0, 100, 200, 300]);
    assert.ok(calls.at(-1)!.start >= lastChange, 'the last publication reads the state after the last change');
    assert.deepEqual(errors, []);
  });

  test('now() publishes at once, after the one under way, never two at a time, and forgets a finished rollout', async () => {
    const { throttle, calls, maxRunning } = recorder(30);
    throttle.changed('ro_2');
    await advance(5); // the first publication started at 0 and runs until 30
    throttle.changed('ro_2'); // schedules a trailing publication at 100
    throttle.now('ro_2', true); // replaces it: runs as soon as the first one ends
    await advance(200);
    assert.deepEqual(calls.map((c) => [c.start, c.end]), [[0, 30], [30, 60]]);
    assert.equal(maxRunning(), 1);
    assert.equal(throttle.size, 0);
    await throttle.close();
    throttle.changed('ro_2');
    throttle.now('ro_2');
    await advance(200); // past any interval: a timer set now would have fired
    assert.equal(calls.length, 2, 'nothing after close');
  });

  test('rollouts are throttled independently', async () => {
    const { throttle, calls } = recorder();
    throttle.changed('a');
    await advance(40);
    throttle.changed('a'); // waits for 100
    throttle.changed('b'); // its first: at once
    await advance(100);
    assert.deepEqual(calls.map((c) => [c.id, c.start]), [['a', 0], ['b', 40], ['a', 100]]);
    await throttle.close();
  });

  test('a failed publication is reported and the next one still runs', async () => {
    const { throttle, calls, errors } = recorder();
    throttle.changed('broken-1');
    await advance(1);
    throttle.changed('broken-1');
    await advance(100);
    assert.deepEqual(calls.map((c) => c.start), [0, 100]);
    assert.equal(errors.length, 2);
    assert.match(String(errors[0]), /broker gone/);
    await throttle.close();
  });
});

// The status topics' wiring on the same mocked clock: which fleet events move the retained
// progress summary, and that a final state is not held back by the throttle. The broker, the
// rollouts and the repository are stand-ins that record or answer nothing; monitoring.test.ts
// runs the same wiring on the real stack.
describe('rollout progress topics', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 }));
  afterEach(() => mock.timers.reset());

  async function statusTopics() {
    const events = new FleetEvents(pino({ level: 'silent' }));
    const state = new Map<string, string>();
    /** The progress summaries (the device events go to fleet/ topics, not recorded here). */
    const published: { at: number; topic: string; state: string; retain: boolean }[] = [];
    const stop = await startStatusTopics({
      events,
      rollouts: { progress: async (rolloutId: string) => ({ rolloutId, state: state.get(rolloutId) ?? 'running' }) } as unknown as StatusTopicsDeps['rollouts'],
      broker: { statusTopicReaders: () => 1, publish: async (topic: string, payload: string | Buffer, opts?: { retain?: boolean }) => { if (topic.startsWith('rollouts/')) published.push({ at: Date.now(), topic, state: JSON.parse(String(payload)).state, retain: opts?.retain === true }); } } as StatusTopicsDeps['broker'],
      repository: { unfinishedRolloutIds: async () => [] },
      logger: pino({ level: 'silent' }),
      progressIntervalMs: 500,
    });
    const attempt = (rolloutId: string, state: string, previousState: string | null) => events.emit('attempt', {
      updateId: 'u_1', rolloutId, deviceId: 'd-1', firmwareId: 'fw_1', retry: 0, state, previousState, progress: null, error: null, reason: null, at: new Date(),
    });
    const rollout = (rolloutId: string, to: string) => {
      state.set(rolloutId, to);
      events.emit('rollout', { rolloutId, state: to, previousState: 'running', wave: 0, reason: null, actor: null, at: new Date() });
    };
    return { published, attempt, rollout, stop };
  }

  test('state changes publish a retained summary at most every interval; progress within a state does not count', async () => {
    const { published, attempt, stop } = await statusTopics();
    try {
      attempt('ro_1', 'sent', 'pending');
      await advance(100);
      attempt('ro_1', 'downloading', 'downloading'); // a progress report: no change of counts
      await advance(500);
      assert.deepEqual(published.map((p) => p.at), [0], 'a progress report alone published a summary');
      attempt('ro_1', 'downloaded', 'downloading');
      attempt('ro_1', 'rebooting', 'downloaded');
      await advance(10);
      assert.equal(published.length, 2);
      attempt('ro_1', 'succeeded', 'rebooting');
      await advance(600);
      assert.deepEqual(published.map((p) => p.at), [0, 600, 1100]);
      assert.ok(published.every((p) => p.topic === 'rollouts/ro_1/progress' && p.retain));
    } finally {
      await stop();
    }
  });

  test('a final state is published at once, not held back by the throttle', async () => {
    const { published, attempt, rollout, stop } = await statusTopics();
    try {
      attempt('ro_2', 'sent', 'pending');
      await advance(50);
      attempt('ro_2', 'accepted', 'sent'); // due at 500
      rollout('ro_2', 'cancelled');
      await advance(1);
      assert.deepEqual(published.map((p) => [p.at, p.state]), [[0, 'running'], [50, 'cancelled']]);
      // The attempt cancelled right after: the finished rollout was forgotten, so this lands at once too.
      attempt('ro_2', 'cancelled', 'accepted');
      await advance(600);
      assert.deepEqual(published.map((p) => p.at), [0, 50, 51]);
    } finally {
      await stop();
    }
  });
});

describe('EventStream over HTTP', () => {
  const servers: http.Server[] = [];
  after(() => { for (const s of servers) s.close(); });

  async function serve(onStream: (stream: EventStream) => void, opts: ConstructorParameters<typeof EventStream>[1]): Promise<number> {
    const server = http.createServer((_req, res) => onStream(new EventStream(res, opts)));
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as AddressInfo).port;
  }

  test('frames, heartbeats and the end', async () => {
    let stream!: EventStream;
    const port = await serve((s) => { stream = s; }, { heartbeatMs: 40 });
    const res = await new Promise<http.IncomingMessage>((resolve) => http.get({ port, host: '127.0.0.1' }, resolve));
    assert.equal(res.headers['content-type'], 'text/event-stream; charset=utf-8');
    let body = '';
    res.on('data', (c) => { body += c; });
    const ended = new Promise((resolve) => res.on('end', resolve));
    assert.equal(stream.send('attempt', { state: 'failed', reason: 'line one\nline two' }), true);
    await eventually(() => (body.match(/^: heartbeat$/gm) ?? []).length >= 2, 30_000, 'two heartbeats');
    stream.end();
    await ended;
    assert.equal(stream.send('attempt', {}), false);
    assert.ok(body.startsWith('retry: 3000\n: connected\n\nevent: attempt\ndata: {"state":"failed","reason":"line one\\nline two"}\n\n'), body);
    assert.ok((body.match(/^: heartbeat$/gm) ?? []).length >= 2, body);
  });

  test('a client that does not read is dropped at the limit', async () => {
    let stream!: EventStream;
    let dropped = 0;
    const port = await serve((s) => { stream = s; }, { maxBufferedBytes: 256 * 1024, onDrop: (n) => { dropped = n; } });
    const socket = net.connect(port, '127.0.0.1');
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise((r) => socket.once('data', r));
    socket.pause();
    const closed = stream.closed;
    let sent = 0;
    const chunk = { pad: 'y'.repeat(16 * 1024) };
    while (stream.send('presence', chunk) && sent < 4096) { sent++; if (sent % 16 === 0) await turn(); }
    await closed;
    assert.ok(dropped > 256 * 1024, `dropped with ${dropped} bytes waiting`);
    assert.ok(sent < 4096, 'dropped before 64 MiB');
    assert.equal(stream.isOpen, false);
    socket.destroy();
  });
});

describe('GET /api/events route', () => {
  test('the server closes while a stream is open, and the stream ends', async () => {
    const events = new FleetEvents(pino({ level: 'silent' }));
    const app = Fastify();
    app.decorate('services', { events } as unknown as Services);
    await app.register(eventRoutes);
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as AddressInfo;
    const res = await new Promise<http.IncomingMessage>((resolve) => http.get({ port, host: '127.0.0.1', path: '/events?types=presence' }, resolve));
    assert.equal(res.statusCode, 200);
    let body = '';
    res.on('data', (c) => { body += c; });
    const ended = new Promise((resolve) => res.on('end', resolve));
    await eventually(() => body.includes(': connected'), 30_000, 'the stream open');
    // The announce is not among the types asked for; the presence after it is the marker that
    // proves the stream carried on past it.
    events.emit('announce', { deviceId: 'd-1', type: 't', version: '1.0.0', chip: null, at: new Date(0) });
    events.emit('presence', { deviceId: 'd-1', online: true, at: new Date(0) });
    // If close() waited for the stream, it would wait for this client, which never hangs up on its
    // own; the client gives up only after a minute, far beyond what closing takes even on a loaded machine.
    let gaveUp = false;
    const timer = setTimeout(() => { gaveUp = true; res.destroy(); }, 60_000);
    try {
      await app.close();
      assert.equal(gaveUp, false, 'close waited for the open stream');
      await ended;
    } finally {
      clearTimeout(timer);
    }
    assert.ok(body.endsWith('event: presence\ndata: {"type":"presence","deviceId":"d-1","at":"1970-01-01T00:00:00.000Z","online":true}\n\n'), body);
    assert.ok(!body.includes('announce'));
  });
});

test('process_open_fds counts the descriptors /proc/self/fd lists, also after some open and close', async () => {
  // Sockets of the tests before may still be closing: the two readings must agree once nothing moves.
  const agree = () => eventually(async () => {
    const counted = await openFileCount();
    const listed = readdirSync('/proc/self/fd').length - 1; // less the one listing them
    return counted === listed && listed;
  }, 30_000, 'the count to agree with the listing');
  await agree();
  const opened = Array.from({ length: 50 }, () => openSync('/dev/null', 'r'));
  try {
    assert.ok((await agree()) > 50);
  } finally {
    for (const fd of opened) closeSync(fd);
  }
  await agree();
});
