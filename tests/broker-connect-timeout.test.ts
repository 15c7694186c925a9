// Connections that never send CONNECT are closed after the connect timeout, at every stage: past
// the TLS handshake (a valid device certificate, then silence), inside it (a ClientHello cut
// short), and before it (TCP open, not a byte sent). A device that sends CONNECT in time stays.
// The deadlines run on node:test's mock timers: each test waits until the broker holds the
// connections it opened, moves the clock past the timeout, and waits for the `close` events. No
// duration is asserted and the machine's speed decides nothing.
import { after, before, describe, mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import pino from 'pino';
import { startBroker, type Broker } from '../broker/index.js';
import { loadConfig } from '../src/config.js';
import { topics } from '../src/topics.js';
import { createTestPki, type TestPki } from './support/pki.js';
import { connectDevice, endAll, subscribeCodes } from './support/mqtt.js';

const CONNECT_TIMEOUT_MS = 300;

/** A TLS session with a valid device certificate that never sends an MQTT byte. */
async function idleTls(port: number, pki: TestPki, id: string): Promise<tls.TLSSocket> {
  const creds = await pki.issue(id);
  const socket = tls.connect({ host: '127.0.0.1', port, ca: creds.caPem, cert: creds.certPem, key: creds.keyPem, servername: 'localhost' });
  socket.on('error', () => undefined);
  await once(socket, 'secureConnect');
  return socket;
}

/** A TCP connection that sends `bytes` (nothing by default) and then waits. */
async function idleTcp(port: number, bytes?: Buffer): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  if (bytes) socket.write(bytes);
  return socket;
}

/** The real setTimeout, for polling while the mocked one holds the broker's deadlines. */
const realSetTimeout = globalThis.setTimeout;
async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; !check(); i++) {
    if (i > 2_000) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => realSetTimeout(r, 10));
  }
}

/** Resolves when the socket has closed, however (a reset from the server is the expected end). */
const closed = (socket: net.Socket) => socket.closed ? Promise.resolve() : new Promise<void>((resolve) => socket.once('close', () => resolve()));

describe('connect timeout', { timeout: 60_000 }, () => {
  let pki: TestPki;
  let broker: Broker;

  before(async () => {
    pki = await createTestPki();
    broker = await startBroker({ port: 0, host: '127.0.0.1', tls: pki.serverTls, logger: pino({ level: process.env.CT_LOG ?? 'silent' }), connectTimeoutMs: CONNECT_TIMEOUT_MS });
  });
  after(async () => {
    await broker?.close();
    await pki?.cleanup();
  });

  test('TLS sessions with a valid certificate but no CONNECT are closed; a device that connected stays', async () => {
    const before = broker.refusals().get('connect-timeout')!;
    mock.timers.enable({ apis: ['setTimeout'] });
    const device = await connectDevice('ct-device', { port: broker.port, pki });
    try {
      const idle = await Promise.all(Array.from({ length: 20 }, (_, i) => idleTls(broker.port, pki, `ct-idle-${i}`)));
      // Every handshake done on the broker's side too: the idle sessions wait past it.
      await until(() => broker.handshakes().inProgress === 0 && broker.handshakes().queued === 0, 'the handshakes to finish');
      assert.equal(idle.filter((s) => s.closed).length, 0);
      // Only the silent ones are under the deadline: the device's ended with its CONNECT.
      assert.equal(broker.awaitingConnect(), 20);
      mock.timers.tick(CONNECT_TIMEOUT_MS);
      await Promise.all(idle.map(closed));
      assert.equal(broker.refusals().get('connect-timeout')! - before, 20);
      assert.equal(broker.awaitingConnect(), 0);
      // The device's deadline passed at the same tick.
      assert.equal(device.connected, true);
      assert.deepEqual(await subscribeCodes(device, topics.command('ct-device')), [1]);
      assert.equal(broker.connectedDevices(), 1);
    } finally {
      mock.timers.reset();
      await endAll(device);
    }
  });

  test('connections that never finish the TLS handshake are closed too, including those waiting for a handshake slot', async () => {
    const before = broker.refusals();
    mock.timers.enable({ apis: ['setTimeout'] });
    // A TLS record header of a ClientHello and nothing more; and bare TCP connections, more than
    // the handshake window admits at once, so some wait in the gate's queue.
    const partial = await Promise.all(Array.from({ length: 5 }, () => idleTcp(broker.port, Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]))));
    const silent = await Promise.all(Array.from({ length: 40 }, () => idleTcp(broker.port)));
    const accepted = () => broker.handshakes().inProgress + broker.handshakes().queued;
    await until(() => accepted() === 45, 'the broker to accept the 45 connections');
    const queued = broker.handshakes().queued;
    assert.ok(queued > 0, `some wait for a handshake slot (${JSON.stringify(broker.handshakes())})`);
    mock.timers.tick(CONNECT_TIMEOUT_MS);
    mock.timers.reset();
    await Promise.all([...partial, ...silent].map(closed));
    const after = broker.refusals();
    const delta = (reason: 'connect-timeout' | 'tls-handshake') => after.get(reason)! - before.get(reason)!;
    // Each is counted once: by the deadline, or (a handshake under way, whose timer runs on the
    // real clock) by Node's own handshake timer as a failed handshake.
    assert.equal(delta('connect-timeout') + delta('tls-handshake'), 45, JSON.stringify([...after].map(([k, n]) => [k, n - before.get(k)!])));
    assert.ok(delta('connect-timeout') >= queued, 'the queued ones at least, by the deadline');
    await until(() => accepted() === 0, 'the broker to forget the closed connections');
    assert.equal(broker.handshakes().refused, 0);
    assert.equal(broker.awaitingConnect(), 0);

    // The broker still accepts devices.
    const device = await connectDevice('ct-after', { port: broker.port, pki });
    await endAll(device);
  });
});

test('MQTT_CONNECT_TIMEOUT_MS: 10 s by default, validated', () => {
  assert.equal(loadConfig({}).mqttConnectTimeoutMs, 10_000);
  assert.equal(loadConfig({ MQTT_CONNECT_TIMEOUT_MS: '300' }).mqttConnectTimeoutMs, 300);
  assert.throws(() => loadConfig({ MQTT_CONNECT_TIMEOUT_MS: '0' }), /MQTT_CONNECT_TIMEOUT_MS/);
  assert.throws(() => loadConfig({ MQTT_CONNECT_TIMEOUT_MS: 'soon' }), /MQTT_CONNECT_TIMEOUT_MS/);
});
