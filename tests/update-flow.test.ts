// The announce → command → status exchange end to end over the real stack (TLS broker, mqtt.js
// devices, HTTPS API and image downloads), on PGlite and on a real PostgreSQL.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Agent, request } from 'undici';
import { topics } from '../src/topics.js';
import { buildEspAppImage } from '../src/firmware/test-image.js';
import { endAll, nextMessage, openDevice } from './support/mqtt.js';
import { eventually } from './support/eventually.js';
import { announce, DATABASES, report, startTestServer, type TestServer } from './support/server.js';

type Json = Record<string, any>;

async function upload(server: TestServer, projectName: string, version: string, extra: Record<string, string> = {}): Promise<Json> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mqota-img-'));
  const file = path.join(dir, `${projectName}-${version}.bin`);
  await writeFile(file, buildEspAppImage({ projectName, version, payloadBytes: 64 * 1024 }));
  return server.api.uploadFirmware<Json>(file, extra);
}

async function provision(server: TestServer, id: string, type: string): Promise<void> {
  await server.api.call('POST', '/api/devices', { id, type });
}

for (const database of DATABASES) {
  describe(`update flow on ${database}`, () => {
    let server: TestServer;
    before(async () => { server = await startTestServer({ database }); });
    after(async () => { await server?.close(); });

    test('announce of an unknown type, then with nothing newer, gets none with the reason', async () => {
      const dev = await server.device('lamp-1');
      try {
        assert.deepEqual(await announce(dev, 'lamp-1', { type: 'lamp', version: '1.0.0' }), { action: 'none', reason: 'unknown-type' });
        await upload(server, 'lamp', '1.0.0');
        assert.deepEqual(await announce(dev, 'lamp-1', { type: 'lamp', version: '1.0.0' }), { action: 'none', reason: 'up-to-date' });
        const seen = await server.api.call<Json>('GET', '/api/devices/lamp-1');
        assert.equal(seen.version, '1.0.0');
        assert.equal(seen.online, true);
      } finally { await endAll(dev); }
    });

    test('invalid announces are answered with invalid-announce and change nothing', async () => {
      const dev = await server.device('lamp-2');
      try {
        await announce(dev, 'lamp-2', { type: 'lamp', version: '1.0.0' });
        for (const bad of ['not json', '[1,2]', '{"type":"lamp"}', '{"type":"lamp","version":"one"}', '{"type":"../x","version":"1.0.0"}']) {
          const answer = await announce(dev, 'lamp-2', bad);
          assert.equal(answer.action, 'none', bad);
          assert.equal(answer.reason, 'invalid-announce', bad);
          assert.equal(typeof answer.error, 'string');
        }
        assert.equal((await server.api.call<Json>('GET', '/api/devices/lamp-2')).version, '1.0.0');
      } finally { await endAll(dev); }
    });

    test('upload → rollout → update command whose link downloads the announced bytes over HTTPS, with Range', async () => {
      await upload(server, 'thermo', '1.0.0');
      const dev = await server.device('thermo-1');
      try {
        await announce(dev, 'thermo-1', { type: 'thermo', version: '1.0.0', chip: 'esp32' });
        const fw = await upload(server, 'thermo', '1.1.0');
        const command = nextMessage(dev, topics.command('thermo-1'));
        const rollout = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id });
        assert.equal(rollout.commanded, 1);
        const cmd = JSON.parse((await command).payload.toString());
        assert.equal(cmd.action, 'update');
        assert.equal(cmd.type, 'thermo');
        assert.equal(cmd.version, '1.1.0');
        assert.equal(cmd.sha256, fw.sha256);
        assert.equal(cmd.size, fw.size);
        assert.match(cmd.updateId, /^[A-Za-z0-9_-]+$/);

        // As the device downloads it: verifying the server against the CA, presenting its own certificate.
        const creds = await server.pki.issue('thermo-1');
        const agent = new Agent({ connect: { ca: server.pki.caPem, cert: creds.certPem, key: creds.keyPem } });
        const whole = await request(cmd.url, { dispatcher: agent });
        assert.equal(whole.statusCode, 200);
        const bytes = Buffer.from(await whole.body.arrayBuffer());
        assert.equal(bytes.length, cmd.size);
        assert.equal(createHash('sha256').update(bytes).digest('hex'), cmd.sha256);
        assert.equal(whole.headers.etag, `"${cmd.sha256}"`);

        const part = await request(cmd.url, { dispatcher: agent, headers: { range: 'bytes=1000-' } });
        assert.equal(part.statusCode, 206);
        assert.equal(part.headers.etag, `"${cmd.sha256}"`);
        assert.deepEqual(Buffer.from(await part.body.arrayBuffer()), bytes.subarray(1000));
        await agent.close();

        // The device works through the states; a duplicate and a stale report change nothing.
        for (const s of [{ state: 'accepted' }, { state: 'downloading', progress: 50 }, { state: 'downloading', progress: 50 }, { state: 'accepted' },
          { state: 'downloading', progress: 100 }, { state: 'downloaded' }, { state: 'rebooting' }]) {
          await report(dev, 'thermo-1', { updateId: cmd.updateId, ...s });
        }
        await report(dev, 'thermo-1', { updateId: cmd.updateId, state: 'succeeded', version: '1.1.0' });
        const after = await eventually(async () => {
          const d = await server.api.call<Json>('GET', '/api/devices/thermo-1');
          return d.attempts[0]?.state === 'succeeded' ? d : null;
        }, 30_000, 'attempt succeeded');
        assert.equal(after.version, '1.1.0');
        assert.deepEqual(after.attempts[0].history.map((h: Json) => h.state),
          ['pending', 'sent', 'accepted', 'downloading', 'downloading', 'downloaded', 'rebooting', 'succeeded']);
        assert.deepEqual(after.attempts[0].history.filter((h: Json) => h.state === 'downloading').map((h: Json) => h.progress), [50, 100]);
        const done = await eventually(async () => {
          const r = await server.api.call<Json>('GET', `/api/rollouts/${rollout.id}`);
          return r.state === 'completed' ? r : null;
        }, 30_000, 'rollout completed');
        assert.equal(done.counts.succeeded, 1);

        // After success the device announces its new version and is up to date.
        assert.deepEqual(await announce(dev, 'thermo-1', { type: 'thermo', version: '1.1.0' }), { action: 'none', reason: 'up-to-date' });
      } finally { await endAll(dev); }
    });

    test('a rolled-back device is recorded as such and not sent the same update again', async () => {
      const fw0 = await upload(server, 'valve', '2.0.0');
      assert.ok(fw0.id);
      await provision(server, 'valve-1', 'valve');
      // A second target that never connects keeps the wave open: with valve-1 alone the wave would
      // settle below its success ratio and the rollout pause at its next tick, and the announce's
      // answer below would depend on whether the tick or the announce came first.
      await provision(server, 'valve-absent', 'valve');
      const dev = await server.device('valve-1');
      try {
        await announce(dev, 'valve-1', { type: 'valve', version: '2.0.0' });
        const fw = await upload(server, 'valve', '2.1.0');
        const command = nextMessage(dev, topics.command('valve-1'));
        await server.api.call('POST', '/api/rollouts', { firmwareId: fw.id, deviceIds: ['valve-1', 'valve-absent'] });
        const cmd = JSON.parse((await command).payload.toString());
        for (const state of ['accepted', 'downloading', 'downloaded', 'rebooting']) await report(dev, 'valve-1', { updateId: cmd.updateId, state });
        await report(dev, 'valve-1', { updateId: cmd.updateId, state: 'rolled_back', error: 'self-test-failed', reason: 'broker not reached' });
        // A late 'succeeded' (or anything) after the terminal state changes nothing. A late progress
        // report (with several instances, one may commit the end before another handles this one)
        // was acknowledged, so the history keeps it; a second final state it does not.
        await report(dev, 'valve-1', { updateId: cmd.updateId, state: 'succeeded', version: '2.1.0' });
        await report(dev, 'valve-1', { updateId: cmd.updateId, state: 'downloading', progress: 70 });
        assert.deepEqual(await announce(dev, 'valve-1', { type: 'valve', version: '2.0.0' }), { action: 'none', reason: 'previously-failed' });
        const d = await server.api.call<Json>('GET', '/api/devices/valve-1');
        assert.equal(d.version, '2.0.0');
        assert.equal(d.attempts[0].state, 'rolled_back');
        assert.equal(d.attempts[0].error, 'self-test-failed');
        const history = d.attempts[0].history.map((h: Json) => `${h.state}${h.progress === null ? '' : ` ${h.progress}`}`);
        assert.ok(history.includes('downloading 70'), history.join(', '));
        assert.ok(!history.includes('succeeded'), history.join(', '));
        assert.equal(history.filter((h: string) => h.startsWith('rolled_back')).length, 1);
      } finally { await endAll(dev); }
    });

    test('messages of one device that arrive in one read are handled one at a time and acknowledged in order', async () => {
      await upload(server, 'siren', '1.0.0');
      const fw = await upload(server, 'siren', '1.1.0');
      await provision(server, 'siren-absent', 'siren'); // keeps the wave open (see the rolled-back test)
      const dev = await server.device('siren-1');
      try {
        await announce(dev, 'siren-1', { type: 'siren', version: '1.0.0' });
        const update = nextMessage(dev, topics.command('siren-1'));
        await server.api.call('POST', '/api/rollouts', { firmwareId: fw.id, deviceIds: ['siren-1', 'siren-absent'] });
        const cmd = JSON.parse((await update).payload.toString());
        for (const state of ['accepted', 'downloading', 'downloaded']) await report(dev, 'siren-1', { updateId: cmd.updateId, state });
        // A reconnecting device's announce (still the old version) and its next report, written
        // together so the broker reads them in one batch. Handled side by side, the report was
        // committed and acknowledged before the announce: a kill -9 in between left the announce
        // to be sent again after the restart, where it read as a rollback (tests/fault-injection.test.ts).
        const acks: number[] = [];
        dev.on('packetreceive', (p) => { if (p.cmd === 'puback') acks.push(p.messageId!); });
        const answer = nextMessage(dev, topics.command('siren-1'));
        const stream = dev.stream as unknown as { cork(): void; uncork(): void };
        stream.cork();
        const sent = [
          dev.publishAsync(topics.announce('siren-1'), JSON.stringify({ type: 'siren', version: '1.0.0' }), { qos: 1 }),
          dev.publishAsync(topics.status('siren-1'), JSON.stringify({ updateId: cmd.updateId, state: 'rebooting' }), { qos: 1 }),
        ];
        stream.uncork();
        const ids = (await Promise.all(sent)).map((p) => p!.messageId!);
        // [MQTT-4.6.0-2]: PUBACKs in the order of the PUBLISHes.
        assert.deepEqual(acks, ids);
        // The announce came first: it was answered with the same update, and did not end the attempt.
        assert.equal(JSON.parse((await answer).payload.toString()).updateId, cmd.updateId);
        await report(dev, 'siren-1', { updateId: cmd.updateId, state: 'succeeded', version: '1.1.0' });
        const d = await server.api.call<Json>('GET', '/api/devices/siren-1');
        assert.equal(d.attempts[0].state, 'succeeded');
        assert.deepEqual(d.attempts[0].history.map((h: Json) => h.state).slice(-2), ['rebooting', 'succeeded']);
      } finally { await endAll(dev); }
    });

    test('an announce of the previous version after rebooting is a rollback, unless the device has been up since before it reported rebooting', async () => {
      await upload(server, 'relay', '3.0.0');
      const fw = await upload(server, 'relay', '3.1.0');
      const ids = ['relay-1', 'relay-2', 'relay-3'];
      await provision(server, 'relay-absent', 'relay');
      const devs = await Promise.all(ids.map((id) => server.device(id)));
      try {
        for (const [i, dev] of devs.entries()) await announce(dev, ids[i], { type: 'relay', version: '3.0.0' });
        const commands = devs.map((dev, i) => nextMessage(dev, topics.command(ids[i])));
        await server.api.call('POST', '/api/rollouts', { firmwareId: fw.id, deviceIds: [...ids, 'relay-absent'] });
        const updateIds: string[] = [];
        for (const [i, dev] of devs.entries()) {
          const cmd = JSON.parse((await commands[i]).payload.toString());
          updateIds.push(cmd.updateId);
          for (const state of ['accepted', 'downloading', 'downloaded', 'rebooting']) await report(dev, ids[i], { updateId: cmd.updateId, state });
        }
        // Back on the previous image: without a health report, and with an uptime that began after `rebooting`.
        await announce(devs[0], 'relay-1', { type: 'relay', version: '3.0.0' });
        await announce(devs[1], 'relay-2', { type: 'relay', version: '3.0.0', health: { uptimeS: 0 } });
        // Up for a day: this announce left before the reboot (another instance, or a resend, brought it late).
        const again = await announce(devs[2], 'relay-3', { type: 'relay', version: '3.0.0', health: { uptimeS: 86_400 } });
        assert.equal(again.action, 'update');
        assert.equal(again.updateId, updateIds[2]);
        await report(devs[2], 'relay-3', { updateId: updateIds[2], state: 'succeeded', version: '3.1.0' });
        const attempts = await Promise.all(ids.map(async (id) => (await server.api.call<Json>('GET', `/api/devices/${id}`)).attempts[0]));
        assert.deepEqual(attempts.map((a) => [a.state, a.error]), [['rolled_back', 'booted-previous-version'], ['rolled_back', 'booted-previous-version'], ['succeeded', null]]);
      } finally { await endAll(...devs); }
    });

    test('status for an unknown or another device\'s updateId is rejected', async () => {
      const fw = await upload(server, 'fan', '1.1.0');
      const a = await server.device('fan-a');
      const b = await server.device('fan-b');
      try {
        await announce(a, 'fan-a', { type: 'fan', version: '1.0.0' });
        await announce(b, 'fan-b', { type: 'fan', version: '1.0.0' });
        const cmdA = nextMessage(a, topics.command('fan-a'));
        await server.api.call('POST', '/api/rollouts', { firmwareId: fw.id, deviceIds: ['fan-a'] });
        const { updateId } = JSON.parse((await cmdA).payload.toString());
        await report(b, 'fan-b', { updateId, state: 'failed', error: 'forged' });
        await report(b, 'fan-b', { updateId: 'u_doesnotexist', state: 'succeeded' });
        await report(a, 'fan-a', { updateId, state: 'accepted' });
        const d = await eventually(async () => {
          const x = await server.api.call<Json>('GET', '/api/devices/fan-a');
          return x.attempts[0]?.state === 'accepted' ? x : null;
        }, 30_000, 'fan-a accepted');
        assert.deepEqual(d.attempts[0].history.map((h: Json) => h.state), ['pending', 'sent', 'accepted']);
        assert.equal((await server.api.call<Json>('GET', '/api/devices/fan-b')).attempts.length, 0);
      } finally { await endAll(a, b); }
    });

    test('an offline device gets its command when it reconnects, and a pending attempt survives a restart', async () => {
      await upload(server, 'meter', '1.0.0');
      const fw = await upload(server, 'meter', '1.2.0');
      let dev = await server.device('meter-1');
      await announce(dev, 'meter-1', { type: 'meter', version: '1.0.0' });
      await endAll(dev);
      await eventually(() => !server.mqota.services.registry.get('meter-1')?.online, 30_000, 'meter-1 offline');
      const rollout = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id });
      assert.equal(rollout.commanded, 0);

      await server.restart();
      dev = await server.device('meter-1');
      try {
        const cmd = await announce(dev, 'meter-1', { type: 'meter', version: '1.0.0' });
        assert.equal(cmd.action, 'update');
        assert.equal(cmd.version, '1.2.0');
        await report(dev, 'meter-1', { updateId: cmd.updateId, state: 'accepted' });
        await eventually(async () => (await server.api.call<Json>('GET', '/api/devices/meter-1')).attempts[0]?.state === 'accepted', 30_000, 'accepted');

        // Restart mid-update: the device reconnects, announces the old version and is sent the same update again.
        await endAll(dev);
        await server.restart();
        dev = await server.device('meter-1');
        const again = await announce(dev, 'meter-1', { type: 'meter', version: '1.0.0' });
        assert.equal(again.updateId, cmd.updateId);
        await report(dev, 'meter-1', { updateId: cmd.updateId, state: 'rebooting' });
        // Success by announcing the target version.
        const last = await announce(dev, 'meter-1', { type: 'meter', version: '1.2.0' });
        assert.deepEqual(last, { action: 'none', reason: 'up-to-date' });
        const d = await server.api.call<Json>('GET', '/api/devices/meter-1');
        assert.equal(d.attempts.length, 1);
        assert.equal(d.attempts[0].state, 'succeeded');
      } finally { await endAll(dev); }
    });

    test('a command published while the device is offline is delivered on reconnect (persistent session)', async () => {
      await upload(server, 'pump', '1.0.0');
      const fw = await upload(server, 'pump', '1.0.1');
      const dev = await server.device('pump-1');
      await announce(dev, 'pump-1', { type: 'pump', version: '1.0.0' });
      const update = nextMessage(dev, topics.command('pump-1'));
      const r = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id });
      const cmd = JSON.parse((await update).payload.toString());
      await endAll(dev);
      await eventually(() => !server.mqota.services.registry.get('pump-1')?.online, 30_000, 'pump-1 offline');
      // The operator cancels while the device is away: the cancel waits in its session.
      await server.api.call('POST', `/api/rollouts/${r.id}/cancel`);
      // Listen before CONNACK: the queued command can arrive in the same read.
      const back = await openDevice('pump-1', { port: server.mqota.mqttPort, pki: server.pki });
      try {
        const queued = await nextMessage(back, topics.command('pump-1'));
        assert.deepEqual(JSON.parse(queued.payload.toString()), { action: 'cancel', updateId: cmd.updateId });
      } finally { await endAll(back); }
    });

    test('cancel tells devices that have not started, and a cancelled rollout cannot be cancelled again', async () => {
      await upload(server, 'gate', '1.0.0');
      const fw = await upload(server, 'gate', '1.5.0');
      const dev = await server.device('gate-1');
      try {
        await announce(dev, 'gate-1', { type: 'gate', version: '1.0.0' });
        const update = nextMessage(dev, topics.command('gate-1'));
        const r = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id });
        const cmd = JSON.parse((await update).payload.toString());
        const cancel = nextMessage(dev, topics.command('gate-1'));
        const cancelled = await server.api.call<Json>('POST', `/api/rollouts/${r.id}/cancel`);
        assert.equal(cancelled.state, 'cancelled');
        assert.deepEqual(JSON.parse((await cancel).payload.toString()), { action: 'cancel', updateId: cmd.updateId });
        await assert.rejects(server.api.call('POST', `/api/rollouts/${r.id}/cancel`), (e: any) => e.statusCode === 409);
        assert.deepEqual(await announce(dev, 'gate-1', { type: 'gate', version: '1.0.0' }), { action: 'none', reason: 'up-to-date' });
        // The firmware is free again once no running rollout uses it.
        await server.api.call('DELETE', `/api/firmware/${fw.id}`);
      } finally { await endAll(dev); }
    });
  });
}
