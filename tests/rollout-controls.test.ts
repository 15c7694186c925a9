// Rollout controls with simulated devices over the real stack: waves, failure threshold, rate
// limit, timeouts and retries, schedule and maintenance window, cancel, downgrade, late joiners,
// soak, and a restart in the middle of a wave.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { buildEspAppImage } from './support/esp-image.js';
import { SimulatedDevice, startFleet, stopFleet } from './support/fleet.js';
import { eventually, startTestServer, type TestServer } from './support/server.js';

type Json = Record<string, any>;

describe('rollout controls', () => {
  let server: TestServer;
  let tmp: string;
  const fleets: SimulatedDevice[][] = [];

  before(async () => {
    server = await startTestServer({ env: { MQOTA_ROLLOUT_TICK_MS: '50' } });
    tmp = await mkdtemp(path.join(os.tmpdir(), 'mqota-ctl-'));
  });
  after(async () => {
    for (const f of fleets) await stopFleet(f);
    await server?.close();
  });

  async function firmware(type: string, version: string, secureVersion = 0): Promise<Json> {
    const file = path.join(tmp, `${type}-${version}.bin`);
    await writeFile(file, buildEspAppImage({ projectName: type, version, secureVersion, payloadBytes: 2048 }));
    return server.api.uploadFirmware<Json>(file, {});
  }

  async function fleet(prefix: string, n: number, type: string, version: string, opts: ConstructorParameters<typeof SimulatedDevice>[4] = {}) {
    const devices = await startFleet(server, prefix, n, type, version, opts);
    fleets.push(devices);
    await eventually(() => devices.every((d) => d.commands.length >= 1), 30_000, 'first answers');
    return devices;
  }

  const rollout = (id: string) => server.api.call<Json>('GET', `/api/rollouts/${id}`);
  const until = (id: string, pred: (r: Json) => boolean, what: string, ms = 30_000) =>
    eventually(async () => { const r = await rollout(id); return pred(r) ? r : null; }, ms, what);

  test('waves advance only on success, in hash order, and every device is commanded once', async () => {
    await firmware('wv', '1.0.0');
    const fw = await firmware('wv', '1.1.0');
    const devices = await fleet('wv', 20, 'wv', '1.0.0');
    const r = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id, waves: [10, 50, 100] });
    assert.equal(r.targets, 20);
    const done = await until(r.id, (x) => x.state === 'completed', 'completed');
    assert.deepEqual(done.waves.map((w: Json) => w.devices), [2, 8, 10]);
    assert.deepEqual(done.waves.map((w: Json) => w.state), ['done', 'done', 'done']);
    assert.equal(done.counts.succeeded, 20);
    const waveOf = new Map(done.devices.map((d: Json) => [d.deviceId, d.wave]));
    // A device of wave n gets its command only after every device of wave n-1 succeeded.
    const firstUpdate = (d: SimulatedDevice) => d.updates()[0].at;
    for (let w = 1; w < 3; w++) {
      const earlier = devices.filter((d) => waveOf.get(d.id) === w - 1);
      const later = devices.filter((d) => waveOf.get(d.id) === w);
      const lastEarlierDone = Math.max(...earlier.map((d) => d.succeededAt));
      assert.ok(later.every((d) => firstUpdate(d) > lastEarlierDone), `wave ${w} started before wave ${w - 1} finished`);
    }
    assert.ok(devices.every((d) => new Set(d.updates().map((c) => c.command.updateId)).size === 1));
    assert.deepEqual(done.history.map((h: Json) => h.state), ['running', 'running', 'running', 'completed']);
    assert.match(done.history[1].reason, /wave 2 of 3 started/);
  });

  test('a wave below the success ratio pauses the rollout and the next wave gets nothing', async () => {
    await firmware('wr', '1.0.0');
    const fw = await firmware('wr', '2.0.0');
    const devices = await fleet('wr', 10, 'wr', '1.0.0', { behaviour: 'rollback' });
    const r = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id, waves: [20, 100], minSuccessRatio: 0.5 });
    const paused = await until(r.id, (x) => x.state === 'paused', 'paused');
    assert.match(paused.reason, /wave 1 finished with 0 % success, below the required 50 %/);
    const waveOf = new Map(paused.devices.map((d: Json) => [d.deviceId, d.wave]));
    assert.equal(devices.filter((d) => waveOf.get(d.id) === 1 && d.updates().length > 0).length, 0);
    assert.equal(paused.counts.rolled_back, 2);
    // Resuming re-evaluates the same wave: still below the ratio, so it pauses again.
    await server.api.call('POST', `/api/rollouts/${r.id}/resume`);
    await until(r.id, (x) => x.state === 'paused' && x.history.length >= 4, 'paused again');
  });

  test('a failure burst pauses the rollout at the threshold', async () => {
    await firmware('fb', '1.0.0');
    const fw = await firmware('fb', '1.0.1');
    await fleet('fb', 12, 'fb', '1.0.0', { behaviour: 'fail' });
    const r = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id, maxPerMinute: 240, failureThreshold: { percent: 50, minSample: 4 } });
    const paused = await until(r.id, (x) => x.state === 'paused', 'paused at threshold');
    assert.match(paused.reason, /failure threshold reached: \d+ of \d+ finished attempts failed/);
    assert.ok(paused.counts.failed >= 4 && paused.counts.failed < 12, `failed ${paused.counts.failed}`);
    const sentBefore = paused.attempts;
    await new Promise((res) => setTimeout(res, 600));
    assert.equal((await rollout(r.id)).attempts, sentBefore, 'a paused rollout sends nothing');
  });

  test('a device refusing the image counts against the failure threshold and is not retried', async () => {
    await firmware('rj', '1.0.0');
    const fw = await firmware('rj', '1.0.1');
    const devices = await fleet('rj', 4, 'rj', '1.0.0', { behaviour: 'reject' });
    // Without the threshold, four refusals would settle the wave and pause it on the success ratio instead.
    const r = await server.api.call<Json>('POST', '/api/rollouts', {
      firmwareId: fw.id, failureThreshold: { count: 3 }, onFailureThreshold: 'abort', maxRetries: 3, retryBackoffSeconds: 0,
    });
    const aborted = await until(r.id, (x) => x.state === 'aborted', 'aborted at the threshold');
    assert.match(aborted.reason, /failure threshold reached: \d+ of \d+ finished attempts failed/);
    assert.ok(aborted.counts.rejected >= 3, `rejected ${aborted.counts.rejected}`);
    assert.equal(aborted.counts.rejected, aborted.attempts, 'every attempt was a refusal, none a retry');
    assert.ok(devices.every((d) => d.updates().length <= 1), 'no device was sent the image twice');
  });

  test('the rate limit holds: at most maxPerMinute commands, no burst over a second\'s share', async () => {
    await firmware('rl', '1.0.0');
    const fw = await firmware('rl', '1.0.1');
    const devices = await fleet('rl', 10, 'rl', '1.0.0');
    const t0 = Date.now();
    const r = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id, maxPerMinute: 120 });
    assert.ok(r.commanded >= 1 && r.commanded <= 2, `commanded ${r.commanded} at once, the bucket holds 2`);
    await eventually(() => devices.flatMap((d) => d.updates()).length >= 5, 30_000, 'five commands on the devices');
    const times = devices.flatMap((d) => d.updates().map((c) => c.at)).sort((a, b) => a - b);
    // 2 per second: the fifth command cannot come before ~1.5 s.
    assert.ok(times[4] - t0 >= 1_300, `fifth command after ${times[4] - t0} ms`);
    // A second's share is 2: with the bucket full, no 4 commands fall within 0.9 s.
    for (let i = 3; i < times.length; i++) assert.ok(times[i] - times[i - 3] >= 800, `4 commands within ${times[i] - times[i - 3]} ms`);
    await server.api.call('POST', `/api/rollouts/${r.id}/cancel`);
  });

  test('an attempt without progress times out and is retried after the back-off', async () => {
    await firmware('to', '1.0.0');
    const fw = await firmware('to', '1.2.0');
    const [dev] = await fleet('to', 1, 'to', '1.0.0', { behaviour: 'silent' });
    const r = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id, attemptTimeoutSeconds: 1, maxRetries: 1, retryBackoffSeconds: 0 });
    await eventually(() => dev.updates().length === 1, 30_000, 'first command');
    dev.behaviour = 'succeed';
    const done = await until(r.id, (x) => x.state === 'completed', 'completed after retry');
    assert.equal(done.counts.timed_out, 1);
    assert.equal(done.counts.succeeded, 1);
    const d = await server.api.call<Json>('GET', '/api/devices/to-0');
    assert.deepEqual(d.attempts.map((a: Json) => a.state).sort(), ['succeeded', 'timed_out']);
    assert.equal(d.attempts.find((a: Json) => a.state === 'timed_out').error, 'timed-out');
    assert.equal(dev.updates().length, 2);
  });

  test('a scheduled rollout waits for startAt; outside the maintenance window nothing is sent', async () => {
    await firmware('sc', '1.0.0');
    const fw = await firmware('sc', '1.3.0');
    const [dev] = await fleet('sc', 1, 'sc', '1.0.0');
    const startAt = new Date(Date.now() + 1_500).toISOString();
    const r = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id, startAt });
    assert.equal(r.state, 'scheduled');
    assert.equal(r.commanded, 0);
    await dev.announce();
    await eventually(() => dev.commands.at(-1)?.command.reason === 'rollout-scheduled', 30_000, 'scheduled answer');
    await until(r.id, (x) => x.state === 'completed', 'completed after start');
    assert.ok(dev.updates()[0].at >= Date.parse(startAt));

    const fw2 = await firmware('sc', '1.4.0');
    const h = new Date().getUTCHours();
    const window = { start: `${String((h + 2) % 24).padStart(2, '0')}:00`, end: `${String((h + 3) % 24).padStart(2, '0')}:00` };
    const r2 = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw2.id, maintenanceWindow: window });
    assert.equal(r2.commanded, 0);
    await dev.announce();
    await eventually(() => dev.commands.at(-1)?.command.reason === 'outside-maintenance-window', 30_000, 'window answer');
    await server.api.call('POST', `/api/rollouts/${r2.id}/cancel`);
  });

  test('a downgrade needs the flag and a reason, and never goes below the secure version', async () => {
    const old = await firmware('dg', '1.0.0', 1);
    await firmware('dg', '1.1.0', 1);
    const a = new SimulatedDevice(server, 'dg-a', 'dg', '1.1.0', { secureVersion: 1 });
    const b = new SimulatedDevice(server, 'dg-b', 'dg', '1.1.0', { secureVersion: 2 });
    await Promise.all([a.start(), b.start()]);
    fleets.push([a, b]);
    // Without the flag an older version is nothing to do: every target already runs something newer.
    const plain = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: old.id });
    assert.equal(plain.commanded, 0);
    await until(plain.id, (x) => x.state === 'completed' && x.attempts === 0, 'nothing to do');
    await a.announce();
    await eventually(() => a.commands.at(-1)?.command.reason === 'up-to-date', 30_000, 'a up to date');
    await assert.rejects(server.api.call('POST', '/api/rollouts', { firmwareId: old.id, allowDowngrade: true }), (e: any) => e.statusCode === 400 && /downgradeReason/.test(e.message));
    const down = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: old.id, allowDowngrade: true, downgradeReason: 'regression in 1.1.0' });
    assert.equal(down.commanded, 1);
    await eventually(() => a.version === '1.0.0', 30_000, 'a downgraded');
    await b.announce();
    await eventually(() => b.commands.at(-1)?.command.reason === 'secure-version', 30_000, 'b refused');
    assert.equal(b.updates().length, 0);
    await server.api.call('POST', `/api/rollouts/${down.id}/cancel`);
  });

  test('a device that gets the rollout\'s tag while it runs joins and updates', async () => {
    await firmware('lj', '1.0.0');
    const fw = await firmware('lj', '1.5.0');
    const devices = await fleet('lj', 3, 'lj', '1.0.0');
    devices[0].behaviour = 'silent'; // keeps the rollout running
    await server.api.call('PUT', '/api/devices/lj-0', { tags: ['site-a'] });
    const r = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id, tags: ['site-a'] });
    assert.equal(r.targets, 1);
    assert.equal(r.commanded, 1);
    assert.equal(devices[1].updates().length, 0);
    const tagged = await server.api.call<Json>('PUT', '/api/devices/lj-1', { tags: ['site-a', 'floor-2'] });
    assert.deepEqual(tagged.tags, ['site-a', 'floor-2']);
    await eventually(() => devices[1].version === '1.5.0', 30_000, 'late joiner updated');
    assert.equal(devices[2].updates().length, 0);
    assert.equal((await rollout(r.id)).targets, 2);
    await server.api.call('POST', `/api/rollouts/${r.id}/cancel`);
  });

  test('soak: the next wave waits until successes stayed healthy; one that falls back counts as a failure', async () => {
    await firmware('sk', '1.0.0');
    const fw = await firmware('sk', '1.1.0');
    const devices = await fleet('sk', 4, 'sk', '1.0.0');
    const r = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id, waves: [50, 100], soakSeconds: 1 });
    const first = await until(r.id, (x) => x.counts.succeeded === 2, 'wave 1 succeeded');
    const succeededAt = Date.now();
    const waveOf = new Map(first.devices.map((d: Json) => [d.deviceId, d.wave]));
    const second = devices.filter((d) => waveOf.get(d.id) === 1);
    await eventually(() => second.every((d) => d.updates().length === 1), 30_000, 'wave 2 commanded');
    assert.ok(Math.min(...second.map((d) => d.updates()[0].at)) >= succeededAt + 800, 'wave 2 started before the soak ended');

    const fw2 = await firmware('sk', '1.2.0');
    await until(r.id, (x) => x.state === 'completed', 'first rollout completed');
    const r2 = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw2.id, waves: [50, 100], soakSeconds: 2 });
    const w = await until(r2.id, (x) => x.counts.succeeded === 2, 'wave 1 of second rollout succeeded');
    const wave0 = devices.filter((d) => w.devices.find((x: Json) => x.deviceId === d.id).wave === 0);
    // One of them comes back on the old version during the soak (the bootloader fell back).
    wave0[0].version = '1.1.0';
    await wave0[0].announce();
    const paused = await until(r2.id, (x) => x.state === 'paused', 'paused: unhealthy during soak');
    assert.match(paused.reason, /50 % success/);
  });

  test('a restart in the middle of a wave resumes it: no device commanded twice, none skipped', async () => {
    await firmware('rs', '1.0.0');
    const fw = await firmware('rs', '3.0.0');
    const devices = await fleet('rs', 8, 'rs', '1.0.0', { behaviour: 'silent' });
    const r = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id, waves: [50, 100] });
    assert.equal(r.commanded, 4);
    await stopFleet(devices);
    await server.restart();
    for (const d of devices) d.behaviour = 'succeed';
    await Promise.all(devices.map((d) => d.start()));
    const done = await until(r.id, (x) => x.state === 'completed', 'completed after restart');
    assert.equal(done.counts.succeeded, 8);
    assert.equal(done.attempts, 8, 'one attempt per device');
    for (const d of devices) assert.equal(new Set(d.updates().map((c) => c.command.updateId)).size, 1, `${d.id} got more than one update`);
  });
});
