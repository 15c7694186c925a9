import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import pino from 'pino';
import { startBroker, type Broker, type DeviceMessage } from '../broker/index.js';
import { topics } from '../src/topics.js';
import { createTestPki, type TestPki } from './support/pki.js';
import {
  closedWithin,
  collectMessages,
  connectDevice,
  connectFailure,
  endAll,
  nextMessage,
  openDevice,
  subscribeCodes,
  type ConnectOptions,
} from './support/mqtt.js';
import { eventually } from './support/eventually.js';

type LogLine = { level: number; msg: string; [k: string]: unknown };

describe('broker over mutual TLS', () => {
  let pki: TestPki;
  let broker: Broker;
  const logs: LogLine[] = [];
  const deviceMessages: DeviceMessage[] = [];
  const presence: { deviceId: string; online: boolean }[] = [];
  let conn: (extra?: Partial<ConnectOptions>) => ConnectOptions;

  const logged = (msg: string, fields: Record<string, unknown> = {}) =>
    logs.some((l) => l.msg.includes(msg) && Object.entries(fields).every(([k, v]) => l[k] === v));

  before(async () => {
    pki = await createTestPki();
    const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
    broker = await startBroker({ port: 0, host: '127.0.0.1', plaintextPort: 0, tls: pki.serverTls, logger });
    broker.onDeviceMessage((m) => { deviceMessages.push(m); });
    broker.onPresence((deviceId, online) => presence.push({ deviceId, online }));
    conn = (extra = {}) => ({ port: broker.port, pki, ...extra });
  });

  after(async () => {
    await broker?.close();
    await pki?.cleanup();
  });

  test('a device connects with a persistent session and its announce reaches onDeviceMessage', async () => {
    const device = await connectDevice('dev-good', conn());
    try {
      assert.equal(device.options.clean, false);
      await eventually(() => presence.some((p) => p.deviceId === 'dev-good' && p.online), 30_000, 'online presence');
      const announce = '{"type":"thermostat","version":"1.2.0"}';
      await device.publishAsync(topics.announce('dev-good'), announce, { qos: 1 });
      await eventually(() => deviceMessages.some((m) => m.deviceId === 'dev-good'), 30_000, 'announce');
      const m = deviceMessages.find((x) => x.deviceId === 'dev-good')!;
      assert.equal(m.kind, 'announce');
      assert.ok(Buffer.isBuffer(m.payload));
      assert.equal(m.payload.toString(), announce);

      await device.publishAsync(topics.status('dev-good'), '{"updateId":"u1","state":"accepted"}', { qos: 1 });
      await eventually(() => deviceMessages.some((x) => x.deviceId === 'dev-good' && x.kind === 'status'), 30_000, 'status');
    } finally {
      await endAll(device);
    }
  });

  test('plain MQTT over TCP to the TLS port does not connect', async () => {
    // (mqtt.js silently upgrades 'mqtt' to 'mqtts' when given a certificate, hence none here.)
    const r = await connectFailure('dev-plain', conn({ withoutCertificate: true, mqtt: { protocol: 'mqtt' } }));
    assert.equal(r.connected, false);
    assert.equal(r.returnCode, undefined, 'no CONNACK: the TLS listener never parsed MQTT');
  });

  test('the plaintext listener refuses every client with CONNACK 5', async () => {
    assert.ok(broker.plaintextPort);
    const r = await connectFailure('dev-plain2', conn({ port: broker.plaintextPort, withoutCertificate: true, mqtt: { protocol: 'mqtt' } }));
    assert.deepEqual([r.connected, r.returnCode], [false, 5]);
    assert.ok(logged('no usable client certificate', { clientId: 'dev-plain2' }));
  });

  test('a client certificate from an unknown CA fails the handshake', async () => {
    const before = logs.length;
    const r = await connectFailure('dev-foreign', conn({ credentials: await pki.issueForeign('dev-foreign') }));
    assert.equal(r.connected, false);
    assert.equal(r.returnCode, undefined);
    await eventually(() => logs.slice(before).some((l) => l.msg.includes('TLS handshake failed')), 30_000, 'handshake failure log');
    assert.ok(!presence.some((p) => p.deviceId === 'dev-foreign'));
  });

  test('no client certificate fails the handshake', async () => {
    const r = await connectFailure('dev-nocert', conn({ withoutCertificate: true }));
    assert.equal(r.connected, false);
    assert.equal(r.returnCode, undefined);
  });

  test('a client id other than the certificate CN gets CONNACK 5', async () => {
    const r = await connectFailure('dev-cn', conn({ clientId: 'dev-someone-else' }));
    assert.deepEqual([r.connected, r.returnCode], [false, 5]);
    assert.ok(logged('client id differs from certificate CN', { deviceId: 'dev-cn', clientId: 'dev-someone-else' }));
    assert.ok(!presence.some((p) => p.deviceId === 'dev-cn' || p.deviceId === 'dev-someone-else'));
  });

  test("publishing to another device's topic is dropped and disconnects the publisher", async () => {
    const watcher = await connectDevice('ops-watch', conn({ role: 'monitor', clean: true }));
    const victim = await connectDevice('dev-victim', conn());
    const intruder = await connectDevice('dev-intruder', conn());
    let forger: Awaited<ReturnType<typeof connectDevice>> | undefined;
    try {
      assert.deepEqual(await subscribeCodes(watcher, topics.status('+')), [1]);
      assert.deepEqual(await subscribeCodes(victim, topics.command('dev-victim')), [1]);
      const seenByWatcher = collectMessages(watcher);
      const seenByVictim = collectMessages(victim);

      const closed = closedWithin(intruder);
      intruder.publish(topics.status('dev-victim'), '{"updateId":"u1","state":"succeeded"}', { qos: 1 });
      assert.equal(await closed, true, 'intruder disconnected');
      // Markers on the same topics, sent after the refusal: had the forgery got through, it would
      // have arrived before them.
      await victim.publishAsync(topics.status('dev-victim'), 'marker', { qos: 1 });
      await broker.publish(topics.command('dev-victim'), 'marker', { qos: 1 });
      await eventually(() => seenByWatcher.length > 0 && seenByVictim.length > 0, 30_000, 'the markers');
      assert.deepEqual(seenByWatcher, [{ topic: topics.status('dev-victim'), payload: 'marker' }]);
      assert.deepEqual(seenByVictim, [{ topic: topics.command('dev-victim'), payload: 'marker' }]);
      assert.deepEqual(deviceMessages.filter((m) => m.deviceId === 'dev-victim' || m.deviceId === 'dev-intruder').map((m) => [m.deviceId, m.payload.toString()]), [['dev-victim', 'marker']]);
      assert.ok(logged('publish refused', { deviceId: 'dev-intruder', topic: topics.status('dev-victim') }));

      // The same device may not write commands, not even its own.
      forger = await connectDevice('dev-intruder', conn());
      assert.deepEqual(await subscribeCodes(forger, topics.command('dev-intruder')), [1]);
      const forgerClosed = closedWithin(forger);
      forger.publish(topics.command('dev-intruder'), '{"action":"update"}', { qos: 1 });
      assert.equal(await forgerClosed, true);
      // Its persistent session keeps the command subscription: a marker published now reaches it
      // when it comes back, after anything the forgery would have queued.
      await broker.publish(topics.command('dev-intruder'), 'marker', { qos: 1 });
      await endAll(forger);
      forger = await openDevice('dev-intruder', conn());
      const seenByForger = collectMessages(forger);
      await eventually(() => seenByForger.length > 0, 30_000, 'the marker queued for the forger');
      assert.deepEqual(seenByForger, [{ topic: topics.command('dev-intruder'), payload: 'marker' }]);

      // The others are unaffected.
      await victim.publishAsync(topics.status('dev-victim'), 'ok', { qos: 1 });
      await eventually(() => seenByWatcher.some((m) => m.payload === 'ok'), 30_000, 'victim status to watcher');
    } finally {
      await endAll(watcher, victim, intruder, forger);
    }
  });

  test('$SYS publishes are refused', async () => {
    const device = await connectDevice('dev-sys', conn());
    try {
      const closed = closedWithin(device);
      device.publish('$SYS/broker/fake', 'x', { qos: 0 });
      assert.equal(await closed, true);
    } finally {
      await endAll(device);
    }
  });

  test("Aedes' per-client $SYS announcements are not published; a heartbeat still passes", async () => {
    // In-process, where nothing in the ACL applies: what the message router carries on $SYS.
    const { aedes } = broker;
    const seen: string[] = [];
    const listener = (packet: { topic: string }, done: () => void) => { seen.push(packet.topic); done(); };
    const filter = `$SYS/${aedes.id}/#`;
    await new Promise<void>((resolve) => aedes.subscribe(filter, listener, resolve));
    const device = await connectDevice('dev-sys-events', conn());
    try {
      assert.deepEqual(await subscribeCodes(device, topics.command('dev-sys-events')), [1]);
      // The router delivers in publish order: once this marker is through, the device's connect
      // and subscribe announcements, published before it, would have been too.
      const heartbeat = `$SYS/${aedes.id}/heartbeat`;
      await new Promise<void>((resolve, reject) => aedes.publish({ topic: heartbeat, payload: Buffer.from(aedes.id), cmd: 'publish', qos: 0, dup: false, retain: false }, (err) => (err ? reject(err) : resolve())));
      await eventually(() => seen.includes(heartbeat), 30_000, 'the heartbeat through the router');
      assert.deepEqual(seen.filter((t) => /\/(new|disconnect)\//.test(t)), []);
    } finally {
      await endAll(device);
      await new Promise<void>((resolve) => aedes.unsubscribe(filter, listener, resolve));
    }
  });

  test('forbidden subscriptions get SUBACK 0x80, the connection stays up', async () => {
    const device = await connectDevice('dev-sub', conn());
    try {
      for (const filter of [topics.command('dev-other'), '#', topics.command('+'), 'devices/dev-sub/#', '$SYS/#', 'rollouts/#', topics.status('dev-sub')]) {
        assert.deepEqual(await subscribeCodes(device, filter), [0x80], filter);
      }
      // QoS 2 asked, QoS 1 granted [MQTT-3.8.4-5]; mixed packets get one code per filter.
      assert.deepEqual(await subscribeCodes(device, [topics.command('dev-sub'), '#'], 2), [1, 0x80]);
      assert.ok(logged('subscription refused', { deviceId: 'dev-sub', topic: '#' }));

      // Still connected and heard.
      await device.publishAsync(topics.announce('dev-sub'), '{}', { qos: 1 });
      await eventually(() => deviceMessages.some((m) => m.deviceId === 'dev-sub'), 30_000, 'announce after refusals');

      // The refused '#' of the mixed packet is not part of the stored session.
      const persistence = (broker.aedes as unknown as { persistence: { subscriptionsByClient(c: { id: string }): Promise<{ topic: string; qos: number }[]> } }).persistence;
      const stored = await persistence.subscriptionsByClient({ id: 'dev-sub' });
      assert.deepEqual(stored.map((s) => [s.topic, s.qos]), [[topics.command('dev-sub'), 1]]);
    } finally {
      await endAll(device);
    }
  });

  test('a refused filter in a persistent session queues nothing for later', async () => {
    let device = await connectDevice('dev-greedy', conn());
    assert.deepEqual(await subscribeCodes(device, [topics.command('dev-greedy'), topics.command('+')], 1), [1, 0x80]);
    await device.endAsync();
    await broker.publish(topics.command('dev-bystander'), 'not for you', { qos: 1 });
    await broker.publish(topics.command('dev-greedy'), 'for you', { qos: 1 });
    await broker.publish(topics.command('dev-greedy'), 'marker', { qos: 1 }); // queued last: when it arrives, all queued did
    device = await openDevice('dev-greedy', conn());
    const received = collectMessages(device);
    try {
      await eventually(() => received.some((m) => m.payload === 'marker'), 30_000, 'the queued marker');
      assert.deepEqual(received.map((m) => m.payload), ['for you', 'marker']);
    } finally {
      await endAll(device);
    }
  });

  test('a monitor reads rollouts (retained too) and device status, writes nothing, sees no commands', async () => {
    const monitor = await connectDevice('ops-1', conn({ role: 'monitor', clean: true }));
    const device = await connectDevice('dev-mon', conn());
    try {
      assert.deepEqual(await subscribeCodes(monitor, ['rollouts/#', 'fleet/dev-mon/#', topics.status('dev-mon')]), [1, 1, 1]);
      for (const filter of ['#', topics.command('+'), 'devices/#', '+/+/status', '$SYS/#', topics.announce('dev-mon')]) {
        assert.deepEqual(await subscribeCodes(monitor, filter), [0x80], filter);
      }

      const progress = nextMessage(monitor, topics.rolloutProgress('r1'));
      await broker.publish(topics.rolloutProgress('r1'), '{"succeeded":3}', { retain: true });
      assert.equal((await progress).payload.toString(), '{"succeeded":3}');

      const status = nextMessage(monitor, topics.status('dev-mon'));
      await device.publishAsync(topics.status('dev-mon'), '{"updateId":"u","state":"downloading","progress":5}', { qos: 1 });
      assert.equal((await status).payload.toString(), '{"updateId":"u","state":"downloading","progress":5}');

      // Retained rollout progress reaches a monitor that subscribes later.
      const late = await connectDevice('ops-2', conn({ role: 'monitor', clean: true }));
      try {
        const retained = nextMessage(late, topics.rolloutProgress('r1'));
        assert.deepEqual(await subscribeCodes(late, topics.rolloutProgress('+')), [1]);
        const r = await retained;
        assert.equal(r.payload.toString(), '{"succeeded":3}');
        assert.equal(r.packet.retain, true);
      } finally {
        await endAll(late);
      }

      const closed = closedWithin(monitor);
      monitor.publish(topics.rolloutProgress('r1'), 'forged', { qos: 1 });
      assert.equal(await closed, true, 'a monitor that publishes is disconnected');
      assert.ok(logged('publish refused', { deviceId: 'ops-1', role: 'monitor' }));
    } finally {
      await endAll(monitor, device);
    }
  });

  test('an oversized packet closes only that connection', async () => {
    const bystander = await connectDevice('dev-small', conn());
    const big = await connectDevice('dev-big', conn());
    try {
      // Just under the 64 KiB default passes...
      await big.publishAsync(topics.status('dev-big'), Buffer.alloc(60 * 1024, 0x61), { qos: 1 });
      await eventually(() => deviceMessages.some((m) => m.deviceId === 'dev-big'), 30_000, 'a large but allowed packet');
      // ...just over does not.
      const closed = closedWithin(big);
      big.publish(topics.status('dev-big'), Buffer.alloc(64 * 1024, 0x62), { qos: 1 });
      assert.equal(await closed, true);
      assert.ok(logged('packet too large', { deviceId: 'dev-big' }));
      assert.equal(deviceMessages.filter((m) => m.deviceId === 'dev-big').length, 1);

      await bystander.publishAsync(topics.announce('dev-small'), '{"type":"t","version":"1.0.0"}', { qos: 1 });
      await eventually(() => deviceMessages.some((m) => m.deviceId === 'dev-small'), 30_000, 'bystander announce');
    } finally {
      await endAll(bystander, big);
    }
  });

  test('malformed bytes close only that connection', async () => {
    const creds = await pki.issue('dev-garbage');
    const socket = tls.connect({ host: '127.0.0.1', port: broker.port, ca: pki.caPem, cert: creds.certPem, key: creds.keyPem });
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => undefined);
    socket.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02]));
    await closed;
    const device = await connectDevice('dev-after-garbage', conn());
    await endAll(device);
  });

  test('a command published while the device is offline is delivered when it reconnects', async () => {
    const first = await connectDevice('dev-offline', conn());
    assert.deepEqual(await subscribeCodes(first, topics.command('dev-offline')), [1]);
    await first.endAsync();
    await eventually(() => presence.some((p) => p.deviceId === 'dev-offline' && !p.online), 30_000, 'offline presence');

    const command = '{"action":"update","updateId":"u_1"}';
    await broker.publish(topics.command('dev-offline'), command, { qos: 1 });

    const again = await openDevice('dev-offline', conn());
    try {
      const connack = new Promise<{ sessionPresent: boolean }>((resolve) => again.once('connect', resolve));
      const queued = nextMessage(again, topics.command('dev-offline'));
      assert.equal((await connack).sessionPresent, true);
      const m = await queued;
      assert.equal(m.payload.toString(), command);
      assert.equal(m.packet.qos, 1);

      // The restored subscription is live without a new SUBSCRIBE.
      const live = nextMessage(again, topics.command('dev-offline'));
      await broker.publish(topics.command('dev-offline'), '{"action":"none","reason":"up-to-date"}');
      assert.equal((await live).payload.toString(), '{"action":"none","reason":"up-to-date"}');
    } finally {
      await endAll(again);
    }
  });

  test('a burst of messages behind slow deliveries does not overflow the stack', () => {
    // mqemitter drains its queue recursively when a queued message has no subscriber; with Aedes'
    // default limit of 100 messages in flight, a rollout wave's commands plus their fleet events
    // (a few thousand) overflowed the call stack and crashed the server.
    const mq = (broker.aedes as unknown as { mq: { on(t: string, f: (m: unknown, cb: () => void) => void): void; emit(m: { topic: string }, cb: () => void): void } }).mq;
    const held: (() => void)[] = [];
    mq.on('test/held', (_m, cb) => { held.push(cb); });
    let done = 0;
    for (let i = 0; i < 200; i++) mq.emit({ topic: 'test/held' }, () => done++);
    for (let i = 0; i < 20_000; i++) mq.emit({ topic: `test/nobody/${i}` }, () => done++);
    held.forEach((release) => release());
    assert.equal(done, 20_200);
  });

  test('presence: online, offline, and a takeover never leaves the new connection marked offline', async () => {
    const id = 'dev-presence';
    const events = () => presence.filter((p) => p.deviceId === id).map((p) => p.online);
    await eventually(() => broker.connectedDevices() === 0, 30_000, 'earlier tests to disconnect');

    const first = await connectDevice(id, conn());
    await eventually(() => events().length === 1, 30_000, 'online');
    assert.deepEqual(events(), [true]);
    assert.equal(broker.connectedDevices(), 1);
    // The broker's side of the first connection: once it has closed, every event it causes has run.
    const firstOnServer = (broker.aedes as unknown as { clients: Record<string, { conn: { closed: boolean } }> }).clients[id].conn;

    const firstClosed = closedWithin(first);
    const second = await connectDevice(id, conn());
    try {
      assert.equal(await firstClosed, true, 'the old connection is taken over [MQTT-3.1.4-2]');
      await eventually(() => firstOnServer.closed, 30_000, 'the old connection closed on the broker');
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(events().at(-1), true, `last presence event must be online, got ${JSON.stringify(events())}`);
      assert.equal(broker.connectedDevices(), 1);
      assert.ok(second.connected);
    } finally {
      await second.endAsync();
    }
    await eventually(() => events().at(-1) === false, 30_000, 'offline after the new connection ends');
    assert.equal(broker.connectedDevices(), 0);
    await endAll(first);
  });

  test('a last will is held to the ACL like any publish', async () => {
    const watcher = await connectDevice('ops-will', conn({ role: 'monitor', clean: true }));
    assert.deepEqual(await subscribeCodes(watcher, topics.status('dev-will')), [1]);
    const seen = collectMessages(watcher);
    const honest = await connectDevice('dev-will', conn({ mqtt: { will: { topic: topics.status('dev-will'), payload: Buffer.from('{"gone":1}'), qos: 1, retain: false } } }));
    const forger = await connectDevice('dev-will-forger', conn({ mqtt: { will: { topic: topics.status('dev-will'), payload: Buffer.from('forged'), qos: 1, retain: false } } }));
    try {
      // No DISCONNECT: the wills are due now [MQTT-3.1.2-8].
      forger.stream.destroy();
      await eventually(() => logged('last will refused', { deviceId: 'dev-will-forger' }), 30_000, 'forged will refused');
      honest.stream.destroy();
      await eventually(() => seen.length > 0, 30_000, 'own will');
      // A marker after the wills: a second will, or the forged one, would have arrived before it.
      await broker.publish(topics.status('dev-will'), 'marker', { qos: 1 });
      await eventually(() => seen.some((m) => m.payload === 'marker'), 30_000, 'the marker after the wills');
      assert.deepEqual(seen.map((m) => m.payload), ['{"gone":1}', 'marker']);
      assert.deepEqual(deviceMessages.filter((m) => m.deviceId === 'dev-will').map((m) => m.payload.toString()), ['{"gone":1}']);
    } finally {
      await endAll(watcher, honest, forger);
    }
  });

  test('every refusal is counted by its reason, for metrics', async () => {
    const before = broker.refusals();
    const delta = () => Object.fromEntries([...broker.refusals()].map(([k, n]) => [k, n - before.get(k)!]).filter(([, n]) => n));

    await connectFailure('dev-r-ca', conn({ credentials: await pki.issueForeign('dev-r-ca') }));
    await connectFailure('dev-r-plain', conn({ port: broker.plaintextPort, withoutCertificate: true, mqtt: { protocol: 'mqtt' } }));
    await connectFailure('dev-r-cn', conn({ clientId: 'dev-r-other' }));
    const prober = await connectDevice('dev-r-probe', conn());
    try {
      assert.deepEqual(await subscribeCodes(prober, [topics.command('+'), '$SYS/#']), [0x80, 0x80]);
      const closed = closedWithin(prober);
      prober.publish(topics.status('dev-r-victim'), '{}', { qos: 1 });
      assert.equal(await closed, true);
    } finally {
      await endAll(prober);
    }
    const big = await connectDevice('dev-r-big', conn());
    const closed = closedWithin(big);
    big.publish(topics.status('dev-r-big'), Buffer.alloc(64 * 1024, 0x62), { qos: 1 });
    assert.equal(await closed, true);
    await endAll(big);

    await eventually(() => (delta()['tls-handshake'] ?? 0) >= 1, 30_000, 'the handshake failure counted');
    assert.deepEqual(delta(), { 'tls-handshake': 1, 'no-identity': 1, 'client-id': 1, subscribe: 2, publish: 1, 'packet-too-large': 1 });
  });

  test('broker.publish refuses topic filters', async () => {
    await assert.rejects(broker.publish(topics.command('+'), 'x'), /invalid topic name/);
    await assert.rejects(broker.publish('', 'x'), /invalid topic name/);
  });
});

describe('broker lifecycle', () => {
  let pki: TestPki;
  before(async () => {
    pki = await createTestPki();
  });
  after(async () => {
    await pki?.cleanup();
  });

  // Promptly: without ending them, close() would wait for an idle socket that never ends, and the
  // test runner's timeout (a bound for a failure only) would end the test.
  test('close() ends connected clients and half-open handshakes promptly', { timeout: 60_000 }, async () => {
    const broker = await startBroker({ port: 0, host: '127.0.0.1', tls: pki.serverTls, logger: pino({ level: 'silent' }) });
    const device = await connectDevice('dev-close', { port: broker.port, pki });
    const idle = net.connect(broker.port, '127.0.0.1'); // TCP only, never starts TLS
    idle.on('error', () => undefined);
    await new Promise((resolve) => idle.once('connect', resolve));
    const deviceClosed = closedWithin(device);
    const idleClosed = new Promise<void>((resolve) => idle.once('close', () => resolve()));
    await broker.close();
    assert.equal(await deviceClosed, true);
    await idleClosed;
    await broker.close(); // idempotent
    await endAll(device);
  });

  test('with a window of one handshake, a device waits for the slot and failed handshakes give theirs back', async () => {
    const broker = await startBroker({
      port: 0, host: '127.0.0.1', tls: pki.serverTls, logger: pino({ level: 'silent' }),
      handshakes: { minWindow: 1, maxWindow: 1 },
    });
    const clients: Awaited<ReturnType<typeof connectDevice>>[] = [];
    try {
      const silent = net.connect(broker.port, '127.0.0.1'); // holds the only slot, sends no ClientHello
      silent.on('error', () => undefined);
      await eventually(() => broker.handshakes().inProgress === 1, 30_000, 'the silent connection in its handshake');

      let connected = false;
      const waiting = connectDevice('dev-queued', { port: broker.port, pki }).then((c) => {
        connected = true;
        clients.push(c);
        return c;
      });
      await eventually(() => broker.handshakes().queued === 1, 30_000, 'the device queued');
      // Queued, it stays there while the slot is taken (the gate's tests prove it on a mocked
      // clock); what can be seen here is the order: the device connects only after the slot frees.
      assert.deepEqual(broker.handshakes(), { inProgress: 1, queued: 1, window: 1, refused: 0 });
      assert.equal(connected, false, 'the device must not handshake while the slot is taken');

      silent.destroy();
      await waiting;
      await eventually(() => broker.handshakes().inProgress === 0, 30_000, 'slots free after the handshake');

      // Failed handshakes, one after another, each release the single slot for the next.
      for (const id of ['dev-foreign-1', 'dev-foreign-2']) {
        const r = await connectFailure(id, { port: broker.port, pki, credentials: await pki.issueForeign(id) });
        assert.equal(r.connected, false);
      }
      await eventually(() => broker.handshakes().inProgress === 0, 30_000, 'slots free after failed handshakes');
      clients.push(await connectDevice('dev-after-failures', { port: broker.port, pki }));
      assert.deepEqual(broker.handshakes(), { inProgress: 0, queued: 0, window: 1, refused: 0 });
    } finally {
      await endAll(...clients);
      await broker.close();
    }
  });

  test('startBroker rejects when the port is taken', async () => {
    const first = await startBroker({ port: 0, host: '127.0.0.1', tls: pki.serverTls, logger: pino({ level: 'silent' }) });
    try {
      await assert.rejects(
        startBroker({ port: first.port, host: '127.0.0.1', tls: pki.serverTls, logger: pino({ level: 'silent' }) }),
        /EADDRINUSE/,
      );
    } finally {
      await first.close();
    }
  });
});
