// The monitoring parts on their own, with short intervals: the progress throttle's timing, an
// event stream's framing, heartbeats and drop over a real HTTP connection, and the event route
// letting the server close while a stream is open.
import { after, describe, test } from 'node:test';
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
import type { Services } from '../src/services.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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

describe('ProgressThrottle', () => {
  function recorder(publishMs = 0) {
    const calls: { id: string; start: number; end: number }[] = [];
    let running = 0;
    let maxRunning = 0;
    const throttle = new ProgressThrottle({
      intervalMs: 100,
      publish: async (id) => {
        const start = Date.now();
        maxRunning = Math.max(maxRunning, ++running);
        if (publishMs) await sleep(publishMs);
        running--;
        calls.push({ id, start, end: Date.now() });
      },
      onError: () => assert.fail('publish failed'),
    });
    return { throttle, calls, maxRunning: () => maxRunning };
  }

  test('a burst gives a leading publication, at most one per interval, and a trailing one after the last change', async () => {
    const { throttle, calls } = recorder();
    const t0 = Date.now();
    let lastChange = 0;
    for (let i = 0; i < 26; i++) {
      throttle.changed('ro_1');
      lastChange = Date.now();
      await sleep(10);
    }
    await sleep(150);
    await throttle.close();
    const starts = calls.map((c) => c.start - t0);
    assert.ok(calls.length >= 3 && calls.length <= 5, `${calls.length} publications: ${starts}`);
    assert.ok(starts[0] < 50, `first after ${starts[0]} ms`);
    for (let i = 1; i < starts.length; i++) assert.ok(starts[i] - starts[i - 1] >= 95, `publications ${starts}`);
    assert.ok(calls.at(-1)!.start >= lastChange, 'the last publication reads the state after the last change');
  });

  test('now() publishes at once, after the one under way, never two at a time, and forgets a finished rollout', async () => {
    const { throttle, calls, maxRunning } = recorder(30);
    throttle.changed('ro_2');
    await sleep(5);
    throttle.changed('ro_2'); // schedules a trailing publication ~100 ms later
    const finalAt = Date.now();
    throttle.now('ro_2', true); // replaces it
    await sleep(200);
    assert.equal(calls.length, 2);
    assert.ok(calls[1].start - finalAt < 60, `final publication started ${calls[1].start - finalAt} ms after now()`);
    assert.ok(calls[1].start >= calls[0].end, 'publications do not overlap');
    assert.equal(maxRunning(), 1);
    assert.equal(throttle.size, 0);
    await throttle.close();
    throttle.changed('ro_2');
    await sleep(150);
    assert.equal(calls.length, 2, 'nothing after close');
  });

  test('rollouts are throttled independently', async () => {
    const { throttle, calls } = recorder();
    throttle.changed('a');
    throttle.changed('b');
    await sleep(30);
    assert.deepEqual(calls.map((c) => c.id).sort(), ['a', 'b']);
    await throttle.close();
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
    await sleep(130);
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
    while (stream.send('presence', chunk) && sent < 4096) { sent++; if (sent % 16 === 0) await sleep(1); }
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
    await sleep(20);
    events.emit('presence', { deviceId: 'd-1', online: true, at: new Date(0) });
    events.emit('announce', { deviceId: 'd-1', type: 't', version: '1.0.0', chip: null, at: new Date(0) });
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<boolean>((resolve) => { timer = setTimeout(() => { res.destroy(); resolve(true); }, 2_000); });
    assert.equal(await Promise.race([app.close().then(() => false), waited]), false, 'close waited for the open stream');
    clearTimeout(timer);
    await ended;
    assert.ok(body.endsWith('event: presence\ndata: {"type":"presence","deviceId":"d-1","at":"1970-01-01T00:00:00.000Z","online":true}\n\n'), body);
    assert.ok(!body.includes('announce'));
  });
});
