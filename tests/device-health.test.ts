// Device health: the `health` of an announce (parsed, stored, served, listed), and the rule that a
// crash right after an update makes it unhealthy during the soak, even without a rollback.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { unhealthyReason, type HealthCheckInput } from '../src/fleet/health.js';
import { parseAnnounce } from '../src/protocol/messages.js';
import { buildEspAppImage } from '../src/firmware/test-image.js';
import { topics } from '../src/topics.js';
import { eventually } from './support/eventually.js';
import { endAll } from './support/mqtt.js';
import { announce, startTestServer, type TestServer } from './support/server.js';

type Json = Record<string, any>;
const ELF = 'ab'.repeat(32);
const HEALTH = { rssi: -61, freeHeap: 182_344, minFreeHeap: 150_112, uptimeS: 42, resetReason: 'software', partitionSize: 1_572_864, elfSha256: ELF };

describe('health rule (pure)', () => {
  const base: HealthCheckInput = {
    latest: { state: 'succeeded', finishedAt: 1_000_000 }, unhealthy: false, onTargetVersion: true, resetReason: 'software', soakSeconds: 60, now: 1_030_000,
  };
  test('a panic or watchdog reset within the soak after a success is unhealthy', () => {
    for (const resetReason of ['panic', 'int_wdt', 'task_wdt', 'wdt'] as const) {
      assert.match(unhealthyReason({ ...base, resetReason })!, new RegExp(`crash \\(reset reason ${resetReason}\\)`));
    }
  });
  test('other reset reasons, a crash after the soak, no soak, or no success are not', () => {
    for (const resetReason of ['software', 'poweron', 'brownout', 'external', null, undefined] as const) assert.equal(unhealthyReason({ ...base, resetReason }), null);
    assert.equal(unhealthyReason({ ...base, resetReason: 'panic', now: 1_060_001 }), null, 'after the soak');
    assert.notEqual(unhealthyReason({ ...base, resetReason: 'panic', now: 1_060_000 }), null, 'at the end of the soak');
    assert.equal(unhealthyReason({ ...base, resetReason: 'panic', soakSeconds: 0 }), null, 'no soak: nothing to watch');
    assert.equal(unhealthyReason({ ...base, resetReason: 'panic', latest: { state: 'failed', finishedAt: 1_000_000 } }), null);
    assert.equal(unhealthyReason({ ...base, resetReason: 'panic', latest: null }), null);
    assert.equal(unhealthyReason({ ...base, resetReason: 'panic', unhealthy: true }), null, 'decided once');
  });
  test('leaving the new version after succeeding is unhealthy whatever the reset reason', () => {
    assert.equal(unhealthyReason({ ...base, onTargetVersion: false }), 'left the new version after succeeding');
  });
});

describe('announce health parsing (pure)', () => {
  const parse = (body: unknown) => parseAnnounce(Buffer.from(JSON.stringify(body)));
  test('a valid report is kept', () => {
    const p = parse({ type: 't', version: '1.0.0', health: HEALTH });
    assert.ok(p.ok);
    assert.deepEqual(p.value.health, HEALTH);
    assert.equal(p.healthError, undefined);
  });
  test('a bad report is dropped with the reason; the announce still counts', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ ...HEALTH, rssi: 12 }, /health\/rssi/], [{ ...HEALTH, resetReason: 'gremlins' }, /health\/resetReason/],
      [{ ...HEALTH, elfSha256: 'xyz' }, /health\/elfSha256/], [{ ...HEALTH, freeHeap: -1 }, /health\/freeHeap/],
      [{ ...HEALTH, extra: 1 }, /health/], ['fine', /health: must be an object/], [[1], /health: must be an object/],
    ];
    for (const [health, reason] of cases) {
      const p = parse({ type: 't', version: 'v1.2.0', health });
      assert.ok(p.ok, JSON.stringify(health));
      assert.equal(p.value.version, '1.2.0');
      assert.equal(p.value.health, undefined);
      assert.match(p.healthError!, reason);
    }
  });
  test('a bad identity still fails the whole announce', () => {
    assert.equal(parse({ type: 't', version: 'nope', health: HEALTH }).ok, false);
  });
});

describe('device health over the network', () => {
  let server: TestServer;
  let tmp: string;
  const clients: MqttClient[] = [];

  before(async () => {
    server = await startTestServer({ env: { MQOTA_ROLLOUT_TICK_MS: '50' } });
    tmp = await mkdtemp(path.join(os.tmpdir(), 'mqota-health-'));
  });
  after(async () => {
    await endAll(...clients);
    await server?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  async function device(id: string): Promise<MqttClient> {
    const c = await server.device(id);
    clients.push(c);
    return c;
  }

  test('is stored and served with the device, survives a restart, and a bad one is counted but the announce is not lost', async () => {
    const c = await device('hl-1');
    assert.equal((await announce(c, 'hl-1', { type: 'hl', version: '1.0.0', slot: 'ota_0', health: HEALTH })).reason, 'unknown-type');
    const d = await server.api.call<Json>('GET', '/api/devices/hl-1');
    assert.deepEqual({ ...d.health, at: undefined }, { ...HEALTH, at: undefined });
    assert.ok(Date.parse(d.health.at) > 0);
    await endAll(c);
    clients.length = 0;
    await server.restart();
    const listed = (await server.api.call<Json[]>('GET', '/api/devices?type=hl')).find((x) => x.id === 'hl-1')!;
    assert.equal(listed.health.elfSha256, ELF, 'stored, not only in memory');

    const c2 = await device('hl-1');
    await announce(c2, 'hl-1', { type: 'hl', version: '1.0.1', health: { ...HEALTH, rssi: 5 } });
    const after = await server.api.call<Json>('GET', '/api/devices/hl-1');
    assert.equal(after.version, '1.0.1', 'the announce counted');
    assert.equal(after.health.rssi, HEALTH.rssi, 'the bad report was dropped, the last good one kept');
    const metrics = await server.api.call<string>('GET', '/metrics');
    assert.match(metrics, /mqota_device_message_rejections_total\{kind="announce",reason="malformed-health"\} 1/);
  });

  test('a device that reboots after a panic during the soak counts as failed though it never rolled back', async () => {
    for (const v of ['1.0.0', '1.1.0']) {
      const file = path.join(tmp, `pc-${v}.bin`);
      await writeFile(file, buildEspAppImage({ projectName: 'pc', version: v, payloadBytes: 1024 }));
      await server.api.uploadFirmware(file, {});
    }
    const ids = ['pc-1', 'pc-2'];
    const commands = new Map<string, Json[]>(ids.map((id) => [id, []]));
    const cs = await Promise.all(ids.map((id) => device(id)));
    cs.forEach((c, i) => c.on('message', (_t, p) => commands.get(ids[i])!.push(JSON.parse(p.toString()))));
    await Promise.all(cs.map((c, i) => c.publishAsync(topics.announce(ids[i]), JSON.stringify({ type: 'pc', version: '1.0.0', health: HEALTH }), { qos: 1 })));
    await eventually(() => ids.every((id) => commands.get(id)!.length >= 1), 30_000, 'first answers');
    const fw = (await server.api.call<Json[]>('GET', '/api/firmware')).find((f) => f.type === 'pc' && f.version === '1.1.0')!;
    const r = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id, waves: [50, 100], soakSeconds: 600 });
    const first = await eventually(() => ids.find((id) => commands.get(id)!.some((c) => c.action === 'update')), 30_000, 'wave 1 commanded');
    const c = cs[ids.indexOf(first)];
    const cmd = commands.get(first)!.find((x) => x.action === 'update')!;
    for (const state of ['accepted', 'downloading', 'downloaded', 'rebooting']) {
      await c.publishAsync(topics.status(first), JSON.stringify({ updateId: cmd.updateId, state }), { qos: 1 });
    }
    // The new image boots (an OTA reboot is a software reset) and the attempt succeeds...
    await c.publishAsync(topics.announce(first), JSON.stringify({ type: 'pc', version: '1.1.0', health: { ...HEALTH, resetReason: 'software', uptimeS: 3 } }), { qos: 1 });
    await eventually(async () => (await server.api.call<Json>('GET', `/api/rollouts/${r.id}`)).counts.succeeded === 1, 30_000, 'succeeded');
    // ...then panics, and boots the same new image again: no rollback, but not healthy either.
    await c.publishAsync(topics.announce(first), JSON.stringify({ type: 'pc', version: '1.1.0', health: { ...HEALTH, resetReason: 'panic', uptimeS: 2 } }), { qos: 1 });
    const paused = await eventually(async () => { const x = await server.api.call<Json>('GET', `/api/rollouts/${r.id}`); return x.state === 'paused' ? x : null; }, 30_000, 'paused');
    assert.match(paused.reason, /wave 1 finished with 0 % success/);
    const other = ids.find((id) => id !== first)!;
    assert.ok(!commands.get(other)!.some((x) => x.action === 'update'), 'the next wave got nothing');
  });
});
