// mqota in external broker mode on Debian's Mosquitto, configured by `mqota broker config
// mosquitto`: the contract tests of the embedded broker (announce → command, an update to success
// with mqtt.js devices and with the real Linux device port, rollback, a command waiting in an
// offline device's session), certificate revocation through the CRL mqota rewrites, the ACL mqota
// rewrites for a new monitor, and the acknowledgement of device messages only after their handler.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { pino } from 'pino';
import { normalizeSerial } from '../certs/identity.js';
import { generateBrokerConfig } from '../src/cli/broker-config.js';
import { loadConfig } from '../src/config.js';
import { writeBrokerConfig } from '../src/device-link/broker-config.js';
import { connectExternalBroker } from '../src/device-link/external-broker.js';
import type { DeviceLink } from '../src/device-link/index.js';
import { buildEspAppImage } from '../src/firmware/test-image.js';
import { isTerminal } from '../src/rollouts/states.js';
import { topics } from '../src/topics.js';
import { eventually } from './support/eventually.js';
import { LinuxDevice, requireLinuxDevice } from './support/linux-device.js';
import { freePort, startMosquitto, type TestMosquitto } from './support/mosquitto.js';
import { collectMessages, connectDevice, connectFailure, endAll, nextMessage, openDevice, subscribeCodes } from './support/mqtt.js';
import { createTestPki, type ClientCredentials, type TestPki } from './support/pki.js';
import { announce, report, startTestServer, type TestServer } from './support/server.js';

type Json = Record<string, any>;
const logger = pino({ level: process.env.MQOTA_TEST_LOG ?? 'silent' });
const run = promisify(execFile);

describe('mqota on Mosquitto (MQOTA_BROKER=external)', () => {
  let server: TestServer;
  let mosquitto: TestMosquitto;
  let configDir: string;
  let tmp: string;

  before(async () => {
    const pki = await createTestPki();
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mqota-data-'));
    configDir = await mkdtemp(path.join(os.tmpdir(), 'mqota-broker-config-'));
    tmp = await mkdtemp(path.join(os.tmpdir(), 'mqota-external-'));
    const port = await freePort();
    // As an operator would: the broker's files first, with the service's environment, then the broker, then mqota.
    const env = { MQOTA_DATA_DIR: dataDir, MQOTA_CERTS_DIR: pki.paths.dir, MQOTA_HOSTNAMES: '127.0.0.1', LOG_LEVEL: 'silent' };
    await generateBrokerConfig(loadConfig(env), { kind: 'mosquitto', out: configDir, port }, logger);
    mosquitto = await startMosquitto(configDir, port);
    server = await startTestServer({
      pki, dataDir,
      env: { MQOTA_BROKER: 'external', MQOTA_BROKER_URL: `mqtts://127.0.0.1:${port}`, MQOTA_BROKER_CONFIG_DIR: configDir },
    });
  });
  after(async () => {
    await server?.close();
    await mosquitto?.close();
    for (const dir of [configDir, tmp]) if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function upload(projectName: string, version: string): Promise<Json> {
    const file = path.join(tmp, `${projectName}-${version}.bin`);
    await writeFile(file, buildEspAppImage({ projectName, version, payloadBytes: 64 * 1024 }));
    return server.api.uploadFirmware<Json>(file, {});
  }
  const getDevice = (id: string) => server.api.call<Json>('GET', `/api/devices/${id}`);

  test('devices are given the external broker, and mqota\'s health says it is connected', async () => {
    const provisioned = await server.api.call<Json>('POST', '/api/devices', { id: 'ext-bundle', type: 'lamp' });
    assert.equal(provisioned.bundle.brokerUrl, `mqtts://127.0.0.1:${mosquitto.port}`);
    const health = await server.api.call<Json>('GET', '/healthz');
    assert.equal(health.broker.ok, true);
    assert.equal(health.broker.port, mosquitto.port);
  });

  test('announce → command, and an update to success', async () => {
    await upload('thermo', '1.0.0');
    const dev = await server.device('ext-thermo');
    try {
      assert.deepEqual(await announce(dev, 'ext-thermo', { type: 'thermo', version: '1.0.0' }), { action: 'none', reason: 'up-to-date' });
      const fw = await upload('thermo', '1.1.0');
      const command = nextMessage(dev, topics.command('ext-thermo'));
      const rollout = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id });
      assert.equal(rollout.commanded, 1);
      const cmd = JSON.parse((await command).payload.toString());
      assert.equal(cmd.action, 'update');
      assert.equal(cmd.sha256, fw.sha256);
      for (const state of ['accepted', 'downloading', 'downloaded', 'rebooting']) await report(dev, 'ext-thermo', { updateId: cmd.updateId, state, ...(state === 'downloading' ? { progress: 100 } : {}) });
      await report(dev, 'ext-thermo', { updateId: cmd.updateId, state: 'succeeded', version: '1.1.0' });
      // The device's PUBACK comes from Mosquitto, not from mqota's commit: wait for the effects.
      const d = await eventually(async () => {
        const x = await getDevice('ext-thermo');
        return x.attempts[0]?.state === 'succeeded' && x.version === '1.1.0' ? x : null;
      }, 30_000, 'attempt succeeded and version recorded');
      assert.deepEqual(d.attempts[0].history.map((h: Json) => h.state), ['pending', 'sent', 'accepted', 'downloading', 'downloaded', 'rebooting', 'succeeded']);
      assert.equal(d.version, '1.1.0');
      assert.deepEqual(await announce(dev, 'ext-thermo', { type: 'thermo', version: '1.1.0' }), { action: 'none', reason: 'up-to-date' });
    } finally { await endAll(dev); }
  });

  test('a rolled-back device is recorded as such and not sent the same update again', async () => {
    await upload('valve', '2.0.0');
    const dev = await server.device('ext-valve');
    // A second target that never connects keeps the wave open: with ext-valve alone the wave would
    // settle below its success ratio and the rollout pause at its next tick, and the answer below
    // would depend on whether the tick or the announce came first.
    await server.api.call('POST', '/api/devices', { id: 'ext-valve-absent', type: 'valve' });
    try {
      await announce(dev, 'ext-valve', { type: 'valve', version: '2.0.0' });
      const fw = await upload('valve', '2.1.0');
      const command = nextMessage(dev, topics.command('ext-valve'));
      await server.api.call('POST', '/api/rollouts', { firmwareId: fw.id, deviceIds: ['ext-valve', 'ext-valve-absent'] });
      const cmd = JSON.parse((await command).payload.toString());
      for (const state of ['accepted', 'downloading', 'downloaded', 'rebooting']) await report(dev, 'ext-valve', { updateId: cmd.updateId, state });
      await report(dev, 'ext-valve', { updateId: cmd.updateId, state: 'rolled_back', error: 'self-test-failed' });
      // Acknowledged by Mosquitto, not yet necessarily handled by mqota: wait for it before asking again.
      await eventually(async () => (await getDevice('ext-valve')).attempts[0]?.state === 'rolled_back', 30_000, 'rollback recorded');
      assert.deepEqual(await announce(dev, 'ext-valve', { type: 'valve', version: '2.0.0' }), { action: 'none', reason: 'previously-failed' });
      const d = await getDevice('ext-valve');
      assert.equal(d.attempts[0].state, 'rolled_back');
      assert.equal(d.version, '2.0.0');
    } finally { await endAll(dev); }
  });

  test('presence comes from the device\'s last will; a command sent while it is away waits in its broker session', async () => {
    await upload('pump', '1.0.0');
    const fw = await upload('pump', '1.0.1');
    const dev = await server.device('ext-pump');
    await announce(dev, 'ext-pump', { type: 'pump', version: '1.0.0' });
    await eventually(() => server.mqota.services.registry.get('ext-pump')?.online, 30_000, 'ext-pump online');
    const update = nextMessage(dev, topics.command('ext-pump'));
    const r = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id });
    const cmd = JSON.parse((await update).payload.toString());
    await endAll(dev); // no DISCONNECT: the broker publishes the will
    await eventually(() => server.mqota.services.registry.get('ext-pump')?.online === false, 30_000, 'ext-pump offline');
    await server.api.call('POST', `/api/rollouts/${r.id}/cancel`);
    // Listen before CONNACK: the queued command can arrive in the same read.
    const back = await openDevice('ext-pump', { port: mosquitto.port, pki: server.pki, presence: true });
    try {
      const queued = await nextMessage(back, topics.command('ext-pump'));
      assert.deepEqual(JSON.parse(queued.payload.toString()), { action: 'cancel', updateId: cmd.updateId });
      await eventually(() => server.mqota.services.registry.get('ext-pump')?.online, 30_000, 'ext-pump online again');
    } finally { await endAll(back); }
  });

  test('a revoked certificate is refused once mqota rewrote the CRL and Mosquitto reloaded; a new one works', async () => {
    const first = (await server.api.call<Json>('POST', '/api/devices', { id: 'ext-rv', type: 'lamp' })).bundle as ClientCredentials;
    const conn = (credentials: ClientCredentials) => ({ port: mosquitto.port, pki: server.pki, credentials });
    assert.deepEqual(await connectFailure('ext-rv', conn(first)), { connected: true });
    const serial = normalizeSerial(new X509Certificate(first.certPem).serialNumber)!;
    await server.api.call('POST', '/api/devices/ext-rv/revoke', {});
    await eventually(async () => {
      const crl = new x509.X509Crl(await readFile(path.join(configDir, 'crl.pem'), 'utf8'));
      return crl.entries.some((e) => normalizeSerial(e.serialNumber) === serial);
    }, 30_000, 'the serial in crl.pem');
    // Mosquitto 2.0.11 reads the CRL again on SIGHUP (checked here; its manual page does not say).
    mosquitto.reload();
    const refused = await eventually(async () => {
      const r = await connectFailure('ext-rv', conn(first));
      return r.connected ? null : r;
    }, 30_000, 'the revoked certificate refused');
    assert.match(String(refused.error?.message), /certificate revoked/);
    const second = (await server.api.call<Json>('POST', '/api/devices/ext-rv/certificate', {})).bundle as ClientCredentials;
    assert.deepEqual(await connectFailure('ext-rv', conn(second)), { connected: true });
  });

  test('a new monitor is in the ACL mqota rewrites: after a reload it reads device statuses, and no commands', async () => {
    const issued = await server.api.call<Json>('POST', '/api/operators', { name: 'ext-watch', role: 'monitor' });
    await eventually(async () => (await readFile(path.join(configDir, 'acl'), 'utf8')).includes('user ext-watch'), 30_000, 'ext-watch in the ACL');
    mosquitto.reload();
    const watcher = await connectDevice('ext-watch', { port: mosquitto.port, pki: server.pki, role: 'monitor', clean: true, credentials: issued.bundle });
    const dev = await server.device('ext-seen');
    try {
      await subscribeCodes(watcher, [topics.status('+'), topics.command('+')]);
      const seen = collectMessages(watcher);
      // The reload is asynchronous: statuses are sent until one arrives.
      await eventually(async () => {
        await dev.publishAsync(topics.status('ext-seen'), '{"updateId":"u_none","state":"accepted"}', { qos: 1 });
        return seen.length > 0;
      }, 30_000, 'a status seen by the monitor');
      const command = nextMessage(dev, topics.command('ext-seen'));
      await server.mqota.services.broker.publish(topics.command('ext-seen'), 'marker', { qos: 1 });
      await command;
      assert.ok(seen.every((m) => m.topic === topics.status('ext-seen')), JSON.stringify(seen));
    } finally { await endAll(watcher, dev); }
  });

  test('the real Linux device port updates to success through Mosquitto', async () => {
    await requireLinuxDevice();
    const id = 'ext-linux';
    const bundle = path.join(tmp, id, 'bundle');
    await run(process.execPath, [path.resolve('bin/mqota.js'), '--server', server.mqota.publicUrl, '--token', server.config.adminToken!,
      '--ca', server.pki.paths.caCert, 'device', 'add', id, '--type', 'linuxthermo', '--out', bundle]);
    const factory = path.join(tmp, 'linuxthermo-1.0.0.bin');
    await writeFile(factory, buildEspAppImage({ projectName: 'linuxthermo', version: '1.0.0' }));
    const device = new LinuxDevice({ bundle, state: path.join(tmp, id, 'state'), install: factory, args: ['--self-test-timeout-ms', '60000', '--retry-backoff-ms', '100'] });
    try {
      await eventually(async () => (await getDevice(id)).version === '1.0.0', 30_000, `${id} announced`).catch((err: Error) => { throw new Error(`${err.message}\n${device.log()}`); });
      const fw = await upload('linuxthermo', '1.1.0');
      const rollout = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id, deviceIds: [id] });
      assert.equal(rollout.commanded, 1);
      const attempt = await eventually(async () => {
        const a = (await getDevice(id)).attempts[0];
        return a && isTerminal(a.state) ? a : null;
      }, 60_000, 'the attempt to finish').catch((err: Error) => { throw new Error(`${err.message}\n${device.log()}`); });
      assert.equal(attempt.state, 'succeeded', device.log());
      await device.waitForLine(/self-test passed: linuxthermo 1\.1\.0 confirmed/);
      // A clean stop says offline first (a DISCONNECT discards the will).
      assert.deepEqual(await device.stop(), { code: 0, signal: null });
      await eventually(() => server.mqota.services.registry.get(id)?.online === false, 30_000, `${id} offline after a clean stop`);
    } finally { await device.stop('SIGKILL'); }
  });
});

/**
 * A Mosquitto of its own on the generated files, for one describe block, and mqota's device link
 * to it as service `serviceId` (a persistent session, as mqota's).
 */
function serviceOnMosquitto(serviceId: string) {
  let pki: TestPki;
  let dir: string;
  let mosquitto: TestMosquitto;
  const links: DeviceLink[] = [];
  before(async () => {
    pki = await createTestPki();
    dir = await mkdtemp(path.join(os.tmpdir(), 'mqota-broker-config-'));
    const port = await freePort();
    await writeBrokerConfig(dir, { kind: 'mosquitto', port, brokerDir: dir }, pki.paths, { revokedSerials: [], holders: { monitor: [], service: [serviceId], claim: [] } });
    mosquitto = await startMosquitto(dir, port);
  });
  after(async () => {
    for (const link of links) await link.close();
    await mosquitto?.close();
    await rm(dir, { recursive: true, force: true });
    await pki?.cleanup();
  });
  return {
    broker: () => ({ pki, mosquitto }),
    async link(handle: (payload: string) => Promise<void> | void): Promise<DeviceLink> {
      const service = await pki.issue(serviceId, 'service');
      const l = connectExternalBroker({ url: `mqtts://127.0.0.1:${mosquitto.port}`, ca: pki.caPem, cert: service.certPem, key: service.keyPem, clientId: serviceId, sessionExpirySeconds: 300, logger });
      l.onDeviceMessage((m) => handle(m.payload.toString()));
      links.push(l);
      await l.listen();
      return l;
    },
  };
}

describe('device messages on an external broker are acknowledged only after their handler', () => {
  const { link, broker } = serviceOnMosquitto('ack-probe');

  test('a message whose handler never finishes is sent again to the session after a reconnect; one handled is not', async () => {
    const firstRun: string[] = [];
    const first = await link((payload) => {
      firstRun.push(payload);
      if (payload === 'hangs') return new Promise<void>(() => undefined);
    });
    const dev = await connectDevice('ack-dev', { port: broker().mosquitto.port, pki: broker().pki });
    try {
      await dev.publishAsync(topics.status('ack-dev'), 'handled', { qos: 1 });
      await dev.publishAsync(topics.status('ack-dev'), 'hangs', { qos: 1 });
      await eventually(() => firstRun.includes('hangs'), 30_000, 'the second message handled');
      assert.deepEqual(firstRun, ['handled', 'hangs']);
      await first.close(); // its handler is still running: no PUBACK went out for 'hangs'

      const secondRun: string[] = [];
      await link((payload) => { secondRun.push(payload); });
      await dev.publishAsync(topics.status('ack-dev'), 'marker', { qos: 1 });
      await eventually(() => secondRun.includes('marker'), 30_000, 'the marker');
      // The broker resent what was not acknowledged, before the new message [MQTT-4.4.0-1].
      assert.deepEqual(secondRun, ['hangs', 'marker']);
    } finally { await endAll(dev); }
  });

});

// Its own broker: a share group's messages are spread over every session in it, connected or not.
describe('the generated Mosquitto configuration keeps every report queued for an absent mqota', () => {
  const { link, broker } = serviceOnMosquitto('queue-probe');

  test('a session away while 1,500 device reports arrive is given every one (Mosquitto would drop past 1,000 by default)', async () => {
    const first = await link(() => undefined);
    await first.close(); // mqota is away (restarting, or killed): its session keeps the subscription
    const dev = await connectDevice('queue-dev', { port: broker().mosquitto.port, pki: broker().pki });
    const sent = Array.from({ length: 1500 }, (_, i) => `report ${i}`);
    try {
      for (const payload of sent) await dev.publishAsync(topics.status('queue-dev'), payload, { qos: 1 }); // each one PUBACKed by the broker
    } finally { await endAll(dev); }
    const received = new Set<string>();
    await link((payload) => { received.add(payload); });
    await eventually(() => received.size === sent.length, 60_000, 'all 1,500 reports');
    assert.deepEqual([...received].sort(), [...sent].sort());
  });
});
