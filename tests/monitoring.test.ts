// Monitoring over the real stack: operator certificates (API and CLI), the MQTT status topics seen
// by a monitor during a rollout of simulated devices, the monitor and device ACL on those topics,
// the server-sent event stream, and the Prometheus endpoint.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import type { MqttClient } from 'mqtt';
import { Agent, request } from 'undici';
import type { Broker } from '../broker/index.js';
import type { FleetEventName } from '../src/events.js';
import { isFinalRolloutState } from '../src/rollouts/states.js';
import { MONITOR_FILTERS, parseDeviceTopic, topics } from '../src/topics.js';
import { buildEspAppImage } from '../src/firmware/test-image.js';
import { closedWithin, collectMessages, connectDevice, endAll, nextMessage, subscribeCodes } from './support/mqtt.js';
import { eventually } from './support/eventually.js';
import { announce, report, startTestServer, type TestServer } from './support/server.js';

type Json = Record<string, any>;
const run = promisify(execFile);
const EVENT_NAMES: FleetEventName[] = ['attempt', 'rollout', 'presence', 'announce', 'command', 'rejection'];
const UPDATE_STEPS = [{ state: 'accepted' }, { state: 'downloading', progress: 50 }, { state: 'downloading', progress: 100 }, { state: 'downloaded' }, { state: 'rebooting' }];

describe('monitoring', () => {
  let server: TestServer;
  let agent: Agent;
  let tmp: string;
  const url = (p: string) => `${server.mqota.publicUrl}${p}`;
  const auth = () => ({ authorization: `Bearer ${server.config.adminToken}` });

  before(async () => {
    server = await startTestServer();
    agent = new Agent({ connect: { ca: server.pki.caPem } });
    tmp = await mkdtemp(path.join(os.tmpdir(), 'mqota-monitoring-'));
  });
  after(async () => { await agent?.close(); await server?.close(); });

  async function upload(projectName: string, version: string): Promise<Json> {
    const file = path.join(tmp, `${projectName}-${version}.bin`);
    await writeFile(file, buildEspAppImage({ projectName, version, payloadBytes: 48 * 1024 }));
    return server.api.call<Json>('GET', `/api/firmware/${(await server.api.uploadFirmware<Json>(file, {})).id}`);
  }

  const bundles = new Map<string, Json>();
  /** A monitor with a fresh operator certificate, or reconnected with the one issued before. */
  async function monitor(name: string): Promise<MqttClient> {
    if (!bundles.has(name)) bundles.set(name, (await server.api.call<Json>('POST', '/api/operators', { name, role: 'monitor' })).bundle);
    return connectDevice(name, { port: server.mqota.mqttPort, pki: server.pki, credentials: bundles.get(name) as { certPem: string; keyPem: string; caPem: string }, clean: true });
  }

  /** Devices of `type` on `from`, connected and announced; resolves with their clients. */
  async function fleet(type: string, ids: string[], from: string): Promise<MqttClient[]> {
    return Promise.all(ids.map(async (id) => {
      const dev = await server.device(id);
      await announce(dev, id, { type, version: from, chip: 'esp32' });
      return dev;
    }));
  }

  /** Starts a rollout and resolves with it and the update command each device received. */
  async function rollout(firmwareId: string, devices: MqttClient[], ids: string[]): Promise<{ rollout: Json; commands: Json[] }> {
    const commands = ids.map((id, i) => nextMessage(devices[i], topics.command(id)));
    const r = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId, deviceIds: ids });
    return { rollout: r, commands: (await Promise.all(commands)).map((m) => JSON.parse(m.payload.toString())) };
  }

  async function updateToSuccess(dev: MqttClient, id: string, cmd: Json): Promise<void> {
    for (const step of UPDATE_STEPS) await report(dev, id, { updateId: cmd.updateId, ...step });
    await report(dev, id, { updateId: cmd.updateId, state: 'succeeded', version: cmd.version });
  }

  /** Messages received from now on, without the retained ones replayed at SUBSCRIBE. */
  function collectLive(client: MqttClient): { topic: string; payload: string }[] {
    const received: { topic: string; payload: string }[] = [];
    client.on('message', (topic, payload, packet) => { if (!packet.retain) received.push({ topic, payload: payload.toString() }); });
    return received;
  }

  const listenerCounts = () => {
    const events = server.mqota.services.events;
    return Object.fromEntries(EVENT_NAMES.map((n) => [n, events.listenerCount(n)]));
  };

  describe('operator certificates', () => {
    test('POST /api/operators issues a monitor certificate and stores no key; names are shared with devices', async () => {
      const res = await server.api.call<Json>('POST', '/api/operators', { name: 'grafana', role: 'monitor' });
      const cert = new X509Certificate(res.bundle.certPem);
      assert.match(cert.subject, /^CN=grafana$/m);
      assert.match(cert.subject, /^OU=monitor$/m);
      assert.ok(cert.verify(new X509Certificate(await readFile(server.pki.paths.deviceCaCert, 'utf8')).publicKey));
      assert.equal(res.bundle.caPem, server.pki.caPem);
      assert.equal(res.bundle.fingerprint, cert.fingerprint256);
      assert.equal(res.bundle.brokerUrl, `mqtts://127.0.0.1:${server.mqota.mqttPort}`);
      assert.deepEqual(res.bundle.topics, MONITOR_FILTERS);
      assert.match(res.bundle.keyPem, /^-----BEGIN PRIVATE KEY-----/);
      assert.deepEqual(Object.keys(res.operator).sort(), ['createdAt', 'fingerprint', 'name', 'notAfter', 'role', 'serial']);
      assert.equal(res.operator.serial, cert.serialNumber.toLowerCase());

      const row = await server.mqota.services.db.prisma.operatorCertificate.findUnique({ where: { name: 'grafana' } });
      assert.equal(row?.fingerprint, cert.fingerprint256);
      assert.ok(!JSON.stringify(row).includes('PRIVATE KEY'));
      assert.deepEqual((await server.api.call<Json[]>('GET', '/api/operators')).map((o) => [o.name, o.role, o.fingerprint]), [['grafana', 'monitor', cert.fingerprint256]]);

      await server.api.call('POST', '/api/devices', { id: 'shared-name', type: 'lamp' });
      const refusals: [Json, number, RegExp][] = [
        [{ name: 'grafana', role: 'monitor' }, 409, /already exists/],
        [{ name: 'shared-name', role: 'monitor' }, 409, /is a device id/],
        [{ name: 'x', role: 'device' }, 400, /role/],
        [{ name: '../x', role: 'monitor' }, 400, /name/],
        [{ name: 'x' }, 400, /role/],
      ];
      for (const [body, status, message] of refusals) {
        await assert.rejects(server.api.call('POST', '/api/operators', body), (e: any) => e.statusCode === status && message.test(e.message), JSON.stringify(body));
      }
      await assert.rejects(server.api.call('POST', '/api/devices', { id: 'grafana', type: 'lamp' }), (e: any) => e.statusCode === 409 && /operator/.test(e.message));
      // Issuing a certificate is for admins, as issuing a token is.
      const { token } = await server.api.call<Json>('POST', '/api/tokens', { name: 'ci-operator', role: 'operator' });
      const asOperator = await request(url('/api/operators'), { method: 'POST', dispatcher: agent, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'sneaky', role: 'monitor' }) });
      assert.equal(asOperator.statusCode, 403);
      await asOperator.body.dump();
      assert.equal(await server.mqota.services.db.prisma.operatorCertificate.count({ where: { name: 'sneaky' } }), 0);
      assert.equal(server.mqota.services.registry.get('grafana'), undefined);
    });

    test('mqota operator add writes the certificate, a 0600 key, the CA and a mosquitto_sub line that names the broker', async () => {
      const out = path.join(tmp, 'ops-bundle');
      // The sources through tsx, as bin/mqota.js runs them in a clone (a local dist/ build may be older).
      const args = ['--import', 'tsx', path.resolve('src/cli/main.ts'), '--server', server.mqota.publicUrl, '--token', server.config.adminToken!, '--ca', server.pki.paths.caCert, 'operator', 'add', 'ops-1', '--role', 'monitor', '--out', out];
      const { stdout } = await run(process.execPath, args);
      assert.match(stdout, /operator ops-1 \(monitor\) certificate issued/);
      const [certPem, keyPem, caPem, readme] = await Promise.all(['operator.crt', 'operator.key', 'ca.crt', 'README.txt'].map((f) => readFile(path.join(out, f), 'utf8')));
      assert.match(new X509Certificate(certPem).subject, /OU=monitor/);
      assert.equal((await stat(path.join(out, 'operator.key'))).mode & 0o777, 0o600);
      assert.equal(caPem, server.pki.caPem);
      assert.ok(readme.includes(`mosquitto_sub -h 127.0.0.1 -p ${server.mqota.mqttPort} --cafile ca.crt --cert operator.crt --key operator.key -i ops-1 -q 1 -v -t 'rollouts/#' -t 'fleet/#'`), readme);
      // The files work: the bundle connects as a monitor.
      const client = await connectDevice('ops-1', { port: server.mqota.mqttPort, pki: server.pki, credentials: { certPem, keyPem, caPem }, clean: true });
      try {
        assert.deepEqual(await subscribeCodes(client, [...MONITOR_FILTERS]), [1, 1, 1]);
      } finally { await endAll(client); }
      await assert.rejects(run(process.execPath, args), (e: any) => /already exists/.test(e.stderr));
      await assert.rejects(run(process.execPath, [...args.slice(0, -4), '--role', 'admin']), (e: any) => /--role/.test(e.stderr));
    });
  });

  describe('MQTT status topics', () => {
    test('a monitor sees the device events and the throttled, retained progress of a rollout; a late monitor gets the retained summary', async () => {
      await upload('heater', '1.0.0');
      const ids = ['heater-1', 'heater-2', 'heater-3'];
      const mon = await monitor('mon-1');
      const devices: MqttClient[] = [];
      try {
        assert.deepEqual(await subscribeCodes(mon, ['rollouts/#', 'fleet/#']), [1, 1]);
        const received: { topic: string; payload: string; retain: boolean }[] = [];
        mon.on('message', (topic, payload, packet) => received.push({ topic, payload: payload.toString(), retain: packet.retain }));
        devices.push(...await fleet('heater', ids, '1.0.0'));
        const fw = await upload('heater', '1.1.0');
        const { rollout: r, commands } = await rollout(fw.id, devices, ids);
        // Two devices succeed; the third fails. The stray report is rejected.
        await updateToSuccess(devices[0], ids[0], commands[0]);
        await updateToSuccess(devices[1], ids[1], commands[1]);
        await report(devices[2], ids[2], { updateId: commands[2].updateId, state: 'accepted' });
        await report(devices[2], ids[2], { updateId: commands[2].updateId, state: 'failed', error: 'sha256-mismatch' });
        await report(devices[2], ids[2], { updateId: commands[2].updateId, state: 'exploded' });

        const progressTopic = topics.rolloutProgress(r.id);
        const progress = () => received.filter((m) => m.topic === progressTopic);
        // The last summary carries every outcome and the rollout's state as the API tells it (the policy decides which).
        // With every device done the rollout leaves 'running' on its next tick; until then a summary
        // saying 'running' may be the latest, and the one the tick publishes would follow it.
        const last = await eventually(async () => {
          const p = progress().at(-1);
          const summary = p ? JSON.parse(p.payload) : null;
          if (!summary || summary.counts.succeeded + summary.counts.failed !== 3) return null;
          const state = (await server.api.call<Json>('GET', `/api/rollouts/${r.id}`)).state;
          return state !== 'running' && summary.state === state ? summary : null;
        }, 30_000, 'progress with every outcome');
        assert.equal(last.rolloutId, r.id);
        assert.equal(last.counts.succeeded, 2);
        assert.equal(last.counts.failed, 1);
        assert.equal(Object.values(last.counts as Record<string, number>).reduce((a, b) => a + b, 0), 3);
        assert.equal(last.targets ?? 3, 3);
        assert.equal(typeof last.wave, 'number');
        // Publications of one rollout never overlap, so no summary lands after a newer one: the
        // finished count never goes back. (How often they come is the throttle's, tested on a
        // mocked clock in monitoring-units.test.ts: here it would depend on the machine's speed.)
        const finished = progress().map((m) => { const c = JSON.parse(m.payload).counts; return c.succeeded + c.failed; });
        for (let i = 1; i < finished.length; i++) assert.ok(finished[i] >= finished[i - 1], `summaries out of order: ${finished}`);

        // Device events, one shape, in order, on each device's topic.
        const eventsOf = (id: string) => received.filter((m) => m.topic === topics.fleetEvents(id)).map((m) => JSON.parse(m.payload) as Json);
        await eventually(() => eventsOf(ids[0]).some((e) => e.type === 'attempt' && e.state === 'succeeded'), 30_000, 'success event');
        const e0 = eventsOf(ids[0]);
        for (const e of e0) {
          assert.equal(e.deviceId, ids[0]);
          assert.ok(!Number.isNaN(Date.parse(e.at)), e.at);
        }
        assert.deepEqual(e0.find((e) => e.type === 'presence'), { type: 'presence', deviceId: ids[0], at: e0.find((e) => e.type === 'presence')!.at, online: true });
        const ann = e0.find((e) => e.type === 'announce')!;
        assert.deepEqual([ann.firmwareType, ann.version, ann.chip], ['heater', '1.0.0', 'esp32']);
        const commandEvents = e0.filter((e) => e.type === 'command');
        assert.deepEqual(commandEvents.map((e) => [e.action, e.updateId]), [['none', null], ['update', commands[0].updateId]]);
        const attempts = e0.filter((e) => e.type === 'attempt');
        assert.ok(attempts.every((a) => a.rolloutId === r.id && a.updateId === commands[0].updateId));
        // (An engine may or may not announce the attempt's creation as 'pending' before it is sent.)
        assert.deepEqual(attempts.map((a) => a.state).filter((st, i) => i > 0 || st !== 'pending'), ['sent', 'accepted', 'downloading', 'downloading', 'downloaded', 'rebooting', 'succeeded']);
        assert.deepEqual(attempts.filter((a) => a.state === 'downloading').map((a) => a.progress), [50, 100]);
        assert.equal(attempts.find((a) => a.state === 'accepted')?.previousState, 'sent');
        const e2 = eventsOf(ids[2]);
        assert.equal(e2.find((e) => e.type === 'attempt' && e.state === 'failed')?.error, 'sha256-mismatch');
        const rejection = await eventually(() => eventsOf(ids[2]).find((e) => e.type === 'rejection'), 30_000, 'rejection event');
        assert.equal(rejection.kind, 'status');
        assert.match(rejection.error, /state/);
        assert.ok(received.filter((m) => m.topic.startsWith('fleet/')).every((m) => !m.retain), 'device events are not retained');

        // Offline is an event too.
        await endAll(devices[0]);
        await eventually(() => eventsOf(ids[0]).some((e) => e.type === 'presence' && e.online === false), 30_000, 'offline event');

        // A monitor that subscribes afterwards gets the final summary, retained.
        const late = await monitor('mon-late');
        try {
          const retained = nextMessage(late, progressTopic);
          await subscribeCodes(late, `rollouts/${r.id}/#`);
          const m = await retained;
          assert.equal(m.packet.retain, true);
          assert.deepEqual(JSON.parse(m.payload.toString()), last);
        } finally { await endAll(late); }
      } finally { await endAll(mon, ...devices); }
    });

    // That the final summary is not held back by the throttle is tested on a mocked clock in
    // monitoring-units.test.ts; here, that it and the cancelled attempt reach a monitor.
    test('a cancelled rollout publishes its final summary, then its cancelled attempt', async () => {
      await upload('blind', '1.0.0');
      const mon = await monitor('mon-final');
      const [dev] = await fleet('blind', ['blind-1'], '1.0.0');
      try {
        const fw = await upload('blind', '2.0.0');
        const summaries: Json[] = [];
        mon.on('message', (topic, payload) => { if (topic.endsWith('/progress')) summaries.push(JSON.parse(payload.toString())); });
        const { rollout: r } = await rollout(fw.id, [dev], ['blind-1']);
        await subscribeCodes(mon, topics.rolloutProgress(r.id));
        await eventually(() => summaries.length > 0, 30_000, 'first summary');
        await server.api.call('POST', `/api/rollouts/${r.id}/cancel`);
        await eventually(() => summaries.find((s) => s.state === 'cancelled'), 30_000, 'cancelled summary');
        // The attempt is cancelled right after the rollout; that change lands too (trailing edge).
        await eventually(() => summaries.at(-1)!.counts.cancelled === 1, 30_000, 'cancelled attempt counted');
        assert.equal(summaries.at(-1)!.state, 'cancelled');
      } finally { await endAll(mon, dev); }
    });

    test('a monitor can publish nothing: the connection closes and no one receives it', async () => {
      const watcher = await monitor('mon-watch');
      const rogue = await monitor('mon-rogue');
      const dev = await server.device('victim-1');
      try {
        const seen = collectLive(watcher);
        await subscribeCodes(watcher, [...MONITOR_FILTERS]);
        const deviceSaw = collectMessages(dev);
        rogue.publish(topics.rolloutProgress('ro_fake'), '{"state":"completed"}', { qos: 1, retain: true });
        assert.equal(await closedWithin(rogue), true);
        const rogue2 = await monitor('mon-rogue');
        rogue2.publish(topics.command('victim-1'), '{"action":"update"}', { qos: 1 });
        assert.equal(await closedWithin(rogue2), true);
        const rogue3 = await monitor('mon-rogue');
        rogue3.publish(topics.status('victim-1'), '{"updateId":"u_x","state":"failed"}', { qos: 0 });
        assert.equal(await closedWithin(rogue3), true);
        // Markers sent after every rogue was refused, on the topics the rogues aimed at: when they
        // arrive, anything the broker had let through from the rogues would have arrived before them.
        const marker = '{"marker":true}';
        await dev.publishAsync(topics.status('victim-1'), marker, { qos: 1 });
        const answer = await announce(dev, 'victim-1', { type: 'victim', version: '1.0.0' });
        await eventually(() => seen.some((m) => m.topic === topics.status('victim-1') && m.payload === marker), 30_000, 'the status marker');
        // Other rollouts may legitimately publish meanwhile; nothing the rogues sent may arrive.
        assert.deepEqual(seen.filter((m) => m.topic === topics.rolloutProgress('ro_fake') || parseDeviceTopic(m.topic)?.deviceId === 'victim-1'), [{ topic: topics.status('victim-1'), payload: marker }]);
        assert.deepEqual(deviceSaw.map((m) => [m.topic, JSON.parse(m.payload)]), [[topics.command('victim-1'), answer]]);
        // The forged retained summary was not stored either: the broker's retained messages hold
        // a marker retained the same way, and not the forgery.
        const broker = server.mqota.services.broker as Broker; // embedded here
        await broker.publish(topics.rolloutProgress('ro_marker'), marker, { qos: 0, retain: true });
        const retained: string[] = [];
        for await (const packet of (broker.aedes as unknown as { persistence: { createRetainedStream(pattern: string): AsyncIterable<{ topic: string }> } }).persistence.createRetainedStream('rollouts/#')) retained.push(packet.topic);
        await broker.publish(topics.rolloutProgress('ro_marker'), '', { qos: 0, retain: true }); // an empty retained message clears it [MQTT-3.3.1-10]
        assert.ok(retained.includes(topics.rolloutProgress('ro_marker')), JSON.stringify(retained));
        assert.ok(!retained.includes(topics.rolloutProgress('ro_fake')), JSON.stringify(retained));
      } finally { await endAll(watcher, rogue, dev); }
    });

    test('a device cannot subscribe to the monitoring topics', async () => {
      const dev = await server.device('nosy-1');
      try {
        assert.deepEqual(await subscribeCodes(dev, ['rollouts/#', 'fleet/#', topics.fleetEvents('nosy-1'), topics.status('+'), topics.rolloutProgress('+')]), [0x80, 0x80, 0x80, 0x80, 0x80]);
        assert.equal(dev.connected, true);
      } finally { await endAll(dev); }
    });

    test('device events are published only while a monitor is connected (none could receive them otherwise)', async () => {
      const broker = server.mqota.services.broker as Broker; // embedded here
      const aedes = broker.aedes as unknown as { on(e: 'publish', f: (p: { topic: string }) => void): void; off(e: 'publish', f: (p: { topic: string }) => void): void };
      const published: string[] = [];
      const onPublish = (p: { topic: string }) => { if (p.topic.startsWith('fleet/')) published.push(p.topic); };
      aedes.on('publish', onPublish);
      const alone = await server.device('unwatched-1');
      let watched: MqttClient | undefined;
      let mon: MqttClient | undefined;
      try {
        await eventually(() => broker.statusTopicReaders() === 0, 30_000, 'the other tests\' monitors gone');
        await announce(alone, 'unwatched-1', { type: 'unwatched', version: '1.0.0' });
        // Positive control: with a monitor connected, the same kind of announce is published; the
        // first announce's events, had they been published, would have come before these.
        mon = await monitor('mon-counted');
        await eventually(() => broker.statusTopicReaders() === 1, 30_000, 'the monitor counted');
        watched = await server.device('watched-1');
        await announce(watched, 'watched-1', { type: 'unwatched', version: '1.0.0' });
        await eventually(() => published.includes(topics.fleetEvents('watched-1')), 30_000, 'the watched device\'s events');
        assert.ok(!published.includes(topics.fleetEvents('unwatched-1')), JSON.stringify(published));
      } finally {
        aedes.off('publish', onPublish);
        await endAll(alone, ...(watched ? [watched] : []), ...(mon ? [mon] : []));
      }
    });

  });

  describe('server-sent events', () => {
    interface Sse { status: number; headers: Json; events: { event: string; data: Json }[]; comments: string[]; body: string; ended: Promise<void>; close(): Promise<void> }

    async function openSse(query: string, headers: Record<string, string> = auth()): Promise<Sse> {
      const abort = new AbortController();
      const res = await request(url(`/api/events${query}`), { dispatcher: agent, headers, signal: abort.signal });
      const sse: Sse = { status: res.statusCode, headers: res.headers, events: [], comments: [], body: '', ended: Promise.resolve(), close: async () => { abort.abort(); await sse.ended; } };
      sse.ended = (async () => {
        let buffer = '';
        try {
          for await (const chunk of res.body) {
            buffer += chunk.toString();
            sse.body += chunk.toString();
            for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
              const frame = buffer.slice(0, end).split('\n');
              buffer = buffer.slice(end + 2);
              sse.comments.push(...frame.filter((l) => l.startsWith(':')).map((l) => l.slice(1).trim()));
              const event = frame.find((l) => l.startsWith('event: '))?.slice(7);
              const data = frame.find((l) => l.startsWith('data: '))?.slice(6);
              if (event && data) sse.events.push({ event, data: JSON.parse(data) });
            }
          }
        } catch { /* aborted */ }
      })();
      return sse;
    }

    test('the stream needs the token and known event types', async () => {
      for (const [query, headers, status] of [['', {}, 401], ['?types=attempt,bogus', auth(), 400], ['?rolloutId=../x', auth(), 400]] as const) {
        const sse = await openSse(query, headers);
        assert.equal(sse.status, status, query);
        await sse.ended;
        assert.equal(sse.events.length, 0);
        if (status === 400) assert.match(JSON.parse(sse.body).message, query.includes('bogus') ? /unknown event types: bogus/ : /./);
      }
    });

    test('events of one rollout only, of the chosen types; closing the stream removes its listeners', async () => {
      const baseline = listenerCounts();
      await upload('lamp', '1.0.0');
      await upload('fan', '1.0.0');
      const [other] = await fleet('fan', ['fan-9'], '1.0.0');
      const [lamp] = await fleet('lamp', ['lamp-9'], '1.0.0');
      await endAll(lamp); // offline: its command waits for its next announce
      await eventually(() => !server.mqota.services.registry.get('lamp-9')?.online, 30_000, 'lamp-9 offline');
      const fw = await upload('lamp', '1.1.0');
      const r = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id, deviceIds: ['lamp-9'] });
      const sse = await openSse(`?rolloutId=${r.id}&types=attempt,rollout`);
      const byDevice = await openSse('?deviceId=lamp-9');
      let back: MqttClient | undefined;
      try {
        assert.equal(sse.status, 200);
        assert.match(String(sse.headers['content-type']), /^text\/event-stream/);
        assert.equal(sse.headers['cache-control'], 'no-cache, no-transform');
        await eventually(() => sse.comments.includes('connected'), 30_000, 'stream open');
        const counts = listenerCounts();
        assert.equal(counts.attempt, baseline.attempt + 2);
        assert.equal(counts.rollout, baseline.rollout + 2);
        assert.equal(counts.presence, baseline.presence + 1);

        // Another rollout runs at the same time: none of its events may show up.
        const otherFw = await upload('fan', '1.1.0');
        const { commands: [otherCmd] } = await rollout(otherFw.id, [other], ['fan-9']);
        await updateToSuccess(other, 'fan-9', otherCmd);

        back = await server.device('lamp-9');
        const cmd = await announce(back, 'lamp-9', { type: 'lamp', version: '1.0.0' });
        assert.equal(cmd.action, 'update');
        await updateToSuccess(back, 'lamp-9', cmd);
        const done = await eventually(() => sse.events.find((e) => e.event === 'rollout' && e.data.state !== 'running'), 30_000, 'rollout finished event');
        assert.equal(done.data.rolloutId, r.id);
        assert.equal(done.data.state, (await server.api.call<Json>('GET', `/api/rollouts/${r.id}`)).state);
        assert.ok(sse.events.every((e) => ['attempt', 'rollout'].includes(e.event) && e.event === e.data.type && e.data.rolloutId === r.id), JSON.stringify(sse.events));
        const attempts = sse.events.filter((e) => e.event === 'attempt').map((e) => e.data);
        assert.ok(attempts.every((a) => a.deviceId === 'lamp-9' && a.updateId === cmd.updateId));
        assert.deepEqual([...new Set(attempts.map((a) => a.state))].filter((st) => st !== 'pending'), ['sent', 'accepted', 'downloading', 'downloaded', 'rebooting', 'succeeded']);

        // The device stream: everything about lamp-9 and nothing else, in order.
        await eventually(() => byDevice.events.some((e) => e.event === 'attempt' && e.data.state === 'succeeded'), 30_000, 'device stream success');
        assert.ok(byDevice.events.every((e) => e.data.deviceId === 'lamp-9'));
        assert.deepEqual(byDevice.events.slice(0, 3).map((e) => e.event), ['presence', 'announce', ...(byDevice.events[2].event === 'attempt' ? ['attempt'] : ['command'])]);
        assert.ok(byDevice.events.some((e) => e.event === 'command' && e.data.action === 'update' && e.data.updateId === cmd.updateId));
      } finally {
        await sse.close();
        await byDevice.close();
        await endAll(back, other);
      }
      await eventually(() => JSON.stringify(listenerCounts()) === JSON.stringify(baseline), 30_000, 'listeners removed');
    });

    test('a client that does not read is dropped once 4 MiB wait for it; a reading client gets every event', async () => {
      const baseline = listenerCounts();
      const { port } = new URL(server.mqota.publicUrl);
      const stalled: TLSSocket = await new Promise((resolve, reject) => {
        const socket = tlsConnect({ host: '127.0.0.1', port: Number(port), ca: server.pki.caPem, servername: '127.0.0.1' }, () => {
          socket.write(`GET /api/events?deviceId=flood-1 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${server.config.adminToken}\r\n\r\n`);
          socket.once('data', () => { socket.pause(); resolve(socket); });
        });
        socket.on('error', reject);
      });
      const stalledClosed = new Promise<void>((resolve) => stalled.once('close', () => resolve()));
      const reader = await openSse('?deviceId=flood-1&types=rejection');
      try {
        await eventually(() => reader.comments.includes('connected'), 30_000, 'reader open');
        assert.equal(listenerCounts().rejection, baseline.rejection + 2);
        const error = 'x'.repeat(8 * 1024);
        let sent = 0;
        // Batches between which the event loop runs, as device traffic would; at most 64 MiB.
        while (listenerCounts().rejection === baseline.rejection + 2 && sent < 8 * 1024) {
          for (let i = 0; i < 32; i++, sent++) server.mqota.services.events.emit('rejection', { deviceId: 'flood-1', kind: 'mqtt', error, at: new Date() });
          await new Promise((r) => setImmediate(r));
        }
        assert.equal(listenerCounts().rejection, baseline.rejection + 1, `the stalled client was not dropped after ${sent} events`);
        assert.ok(sent * error.length > 4 * 1024 * 1024, `dropped after ${sent} events`);
        stalled.resume(); // reads what was sent before the drop, then sees the end of the connection
        await stalledClosed;
        await eventually(() => reader.events.length === sent, 30_000, `the reader got ${sent} events`);
        assert.ok(reader.events.every((e) => e.data.error === error));
      } finally {
        stalled.destroy();
        await reader.close();
      }
      await eventually(() => JSON.stringify(listenerCounts()) === JSON.stringify(baseline), 30_000, 'listeners removed');
    });
  });

  describe('Prometheus /metrics', () => {
    async function scrape(): Promise<Map<string, number>> {
      const res = await request(url('/metrics'), { dispatcher: agent, headers: auth() });
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
      const series = new Map<string, number>();
      for (const line of (await res.body.text()).split('\n')) {
        if (!line || line.startsWith('#')) continue;
        const at = line.lastIndexOf(' ');
        series.set(line.slice(0, at), Number(line.slice(at + 1)));
      }
      return series;
    }
    const value = (m: Map<string, number>, key: string) => m.get(key) ?? 0;

    test('/metrics needs an API token (revoked ones refused); errors are counted by class', async () => {
      const before = await scrape();
      for (const headers of [{}, { authorization: 'Bearer wrong-token-0000000000' }]) {
        const res = await request(url('/metrics'), { dispatcher: agent, headers });
        assert.equal(res.statusCode, 401);
        await res.body.dump();
      }
      // The same tokens as /api, revocations included: a viewer token works until it is revoked.
      const { token } = await server.api.call<Json>('POST', '/api/tokens', { name: 'prometheus', role: 'viewer' });
      const withViewer = await request(url('/metrics'), { dispatcher: agent, headers: { authorization: `Bearer ${token}` } });
      assert.equal(withViewer.statusCode, 200);
      assert.match(await withViewer.body.text(), /^mqota_announces_total \d+$/m);
      await server.api.call('DELETE', '/api/tokens/prometheus');
      const revoked = await request(url('/metrics'), { dispatcher: agent, headers: { authorization: `Bearer ${token}` } });
      assert.equal(revoked.statusCode, 401);
      await revoked.body.dump();
      const missing = await request(url('/api/nothing-here'), { dispatcher: agent, headers: auth() });
      assert.equal(missing.statusCode, 404);
      await missing.body.dump();
      const after = await scrape();
      assert.equal(value(after, 'mqota_http_errors_total{class="4xx"}') - value(before, 'mqota_http_errors_total{class="4xx"}'), 4);
      assert.equal(value(after, 'mqota_http_errors_total{class="5xx"}'), value(before, 'mqota_http_errors_total{class="5xx"}'));
      // The broker's refusals, one series per reason even at zero, so an alert has a series to watch.
      for (const [reason, n] of server.mqota.services.broker.refusals()) assert.equal(after.get(`mqota_mqtt_refusals_total{reason="${reason}"}`), n, reason);
      assert.ok(after.has('nodejs_eventloop_lag_seconds'));
      assert.ok(after.get('nodejs_eventloop_lag_seconds')! >= 0);
      assert.ok(after.get('process_resident_memory_bytes')! > 0);
      // Read off the event loop, and this process holds at least the listeners and the database.
      assert.ok(after.get('process_open_fds')! > 3);
      assert.ok(after.get('process_max_fds')! >= after.get('process_open_fds')!);
      // The per-handle listings are gone: they cost O(connected devices) on the loop per scrape.
      assert.ok(!after.has('nodejs_active_handles') && !after.has('nodejs_active_resources'));
    });

    test('counters move with a rollout: announces, commands, attempts, per-rollout progress, image bytes (Range included)', async () => {
      await upload('valve', '1.0.0');
      const ids = ['valve-1', 'valve-2'];
      const before = await scrape();
      const devices = await fleet('valve', ids, '1.0.0');
      try {
        const bad = await announce(devices[0], ids[0], '{"type":"valve"}');
        assert.equal(bad.reason, 'invalid-announce');
        const fw = await upload('valve', '1.1.0');
        const { rollout: r, commands } = await rollout(fw.id, devices, ids);
        for (const [i, id] of ids.entries()) {
          await report(devices[i], id, { updateId: commands[i].updateId, state: 'accepted' });
          await report(devices[i], id, { updateId: commands[i].updateId, state: 'downloading', progress: 10 });
        }
        const during = await eventually(async () => {
          const m = await scrape();
          return value(m, 'mqota_attempts_in_flight{state="downloading"}') - value(before, 'mqota_attempts_in_flight{state="downloading"}') === 2 ? m : null;
        }, 30_000, 'two attempts downloading');
        assert.equal(during.get(`mqota_rollout_targets{rollout_id="${r.id}"}`), 2);
        assert.equal(during.get(`mqota_rollout_succeeded{rollout_id="${r.id}"}`), 0);
        assert.equal(during.get(`mqota_rollout_failed{rollout_id="${r.id}"}`), 0);
        assert.equal(during.get('mqota_connected_devices'), server.mqota.services.broker.connectedDevices());
        assert.ok(during.get('mqota_connected_devices')! >= 2);
        const handshakes = server.mqota.services.broker.handshakes();
        assert.equal(during.get('mqota_tls_handshakes{kind="window"}'), handshakes.window);
        assert.equal(during.get('mqota_tls_handshakes{kind="queued"}'), 0);
        assert.equal(during.get('mqota_tls_handshakes_refused_total'), 0);
        // Every device here has sent CONNECT: none is under the connect deadline.
        assert.equal(during.get('mqota_mqtt_awaiting_connect'), 0);

        // The image, whole, from byte 1000, and answers without a body, fetched as valve-1 would.
        const image = url(`/firmware/${fw.sha256}.bin`);
        const creds = await server.pki.issue('valve-1');
        const device = new Agent({ connect: { ca: server.pki.caPem, cert: creds.certPem, key: creds.keyPem } });
        const whole = await request(image, { dispatcher: device });
        const wholeBytes = Buffer.from(await whole.body.arrayBuffer());
        const part = await request(image, { dispatcher: device, headers: { range: 'bytes=1000-' } });
        assert.equal(part.statusCode, 206);
        const partBytes = Buffer.from(await part.body.arrayBuffer());
        const head = await request(image, { dispatcher: device, method: 'HEAD' });
        await head.body.dump();
        const notModified = await request(image, { dispatcher: device, headers: { 'if-none-match': `"${fw.sha256}"` } });
        assert.equal(notModified.statusCode, 304);
        await notModified.body.dump();
        assert.equal(wholeBytes.length, fw.size);
        assert.equal(partBytes.length, fw.size - 1000);
        await device.close();

        await updateToSuccess(devices[0], ids[0], commands[0]);
        await report(devices[1], ids[1], { updateId: commands[1].updateId, state: 'failed', error: 'download-failed' });
        const after = await eventually(async () => {
          const m = await scrape();
          return value(m, 'mqota_attempt_transitions_total{state="failed"}') > value(before, 'mqota_attempt_transitions_total{state="failed"}')
            && value(m, 'mqota_attempt_transitions_total{state="succeeded"}') > value(before, 'mqota_attempt_transitions_total{state="succeeded"}') ? m : null;
        }, 30_000, 'both outcomes counted');
        const delta = (key: string) => value(after, key) - value(before, key);
        assert.equal(delta('mqota_announces_total'), 2);
        // Two devices, their reports and their attempts were written: some commits, never more than the writes.
        assert.ok(delta('mqota_db_commits_total') >= 1);
        // A copy of the repository's count at the scrape (the rollout may commit more since).
        assert.ok(after.get('mqota_db_commits_total')! <= server.mqota.services.repository.commits);
        assert.equal(delta('mqota_mqtt_rejections_total{kind="announce"}'), 1);
        assert.equal(delta('mqota_commands_sent_total{action="update"}'), 2);
        assert.equal(delta('mqota_commands_sent_total{action="none"}'), 3);
        assert.equal(delta('mqota_image_bytes_served_total'), wholeBytes.length + partBytes.length);
        for (const state of ['sent', 'accepted', 'downloading']) assert.equal(delta(`mqota_attempt_transitions_total{state="${state}"}`), 2, state);
        for (const state of ['downloaded', 'rebooting', 'succeeded', 'failed']) assert.equal(delta(`mqota_attempt_transitions_total{state="${state}"}`), 1, state);
        for (const state of ['sent', 'accepted', 'downloading', 'downloaded', 'rebooting']) assert.equal(delta(`mqota_attempts_in_flight{state="${state}"}`), 0, state);
        const state = (await server.api.call<Json>('GET', `/api/rollouts/${r.id}`)).state;
        if (isFinalRolloutState(state)) {
          assert.equal(after.has(`mqota_rollout_targets{rollout_id="${r.id}"}`), false);
        } else {
          assert.equal(after.get(`mqota_rollout_succeeded{rollout_id="${r.id}"}`), 1);
          assert.equal(after.get(`mqota_rollout_failed{rollout_id="${r.id}"}`), 1);
        }
      } finally { await endAll(...devices); }
    });
  });
});
