// Rollout controls with simulated devices over the real stack: waves, failure threshold, rate
// limit, timeouts and retries, schedule and maintenance window, cancel, downgrade, late joiners,
// soak, and a restart in the middle of a wave.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { buildEspAppImage } from '../src/firmware/test-image.js';
import { SimulatedDevice, startFleet, stopFleet } from './support/fleet.js';
import { eventually } from './support/eventually.js';
import { startTestServer, type TestServer } from './support/server.js';

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
    // A device of wave n gets its command only after every device of wave n-1 succeeded. Both
    // times are the devices' own, in causal order whatever the speed: a device notes its success
    // before reporting it, and a command arrives after the server sent it.
    const firstUpdate = (d: SimulatedDevice) => d.updates()[0].at;
    for (let w = 1; w < 3; w++) {
      const earlier = devices.filter((d) => waveOf.get(d.id) === w - 1);
      const later = devices.filter((d) => waveOf.get(d.id) === w);
      const lastEarlierDone = Math.max(...earlier.map((d) => d.succeededAt));
      assert.ok(later.every((d) => firstUpdate(d) >= lastEarlierDone), `wave ${w} started before wave ${w - 1} finished`);
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
    // The server's record, not only what reached the devices (a command in flight would not have yet).
    assert.ok(paused.devices.filter((d: Json) => d.wave === 1).every((d: Json) => d.updateId === null), JSON.stringify(paused.devices));
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
    assert.ok(sentBefore < 12, 'devices left to command');
    // The positive control: another rollout, rate-limited to 2 a second with a bucket of 2, sends
    // its fifth command no sooner than 1.5 s after it started, on the scheduler's ticks. By then a
    // running rollout of 240 a minute would have had tokens for 4 more; this one must have sent none.
    await firmware('fbm', '1.0.0');
    const markerFw = await firmware('fbm', '1.0.1');
    const markers = await fleet('fbm', 5, 'fbm', '1.0.0');
    const marker = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: markerFw.id, maxPerMinute: 120 });
    await eventually(() => markers.every((d) => d.updates().length === 1), 30_000, 'the marker rollout commanded every device');
    const now = await rollout(r.id);
    assert.equal(now.state, 'paused');
    assert.equal(now.attempts, sentBefore, 'a paused rollout sends nothing');
    await until(marker.id, (x) => x.state === 'completed', 'the marker rollout completed');
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
    await eventually(() => devices.flatMap((d) => d.updates()).length >= 6, 30_000, 'six commands on the devices');
    await server.api.call('POST', `/api/rollouts/${r.id}/cancel`);
    // 2 at once, then 2 a second: command k (from 0) is sent no sooner than (k - 1) * 500 ms after
    // the rollout began, and arrives later still. A slow machine only delays the arrivals.
    const times = devices.flatMap((d) => d.updates().map((c) => c.at)).sort((a, b) => a - b);
    for (let k = 2; k < times.length; k++) assert.ok(times[k] - t0 >= (k - 1) * 500 - 1, `command ${k} arrived ${times[k] - t0} ms after the start`);
    // No burst over a second's share: the server's dispatch times (an attempt is created when its
    // command is sent), not arrival times, which a loaded machine can bunch together.
    const sent = (await Promise.all(devices.map((d) => server.api.call<Json>('GET', `/api/devices/${d.id}`))))
      .flatMap((d) => d.attempts.filter((a: Json) => a.rolloutId === r.id).map((a: Json) => Date.parse(a.createdAt))).sort((a, b) => a - b);
    assert.ok(sent.length >= 6, `${sent.length} attempts`);
    for (let i = 3; i < sent.length; i++) assert.ok(sent[i] - sent[i - 3] >= 990, `4 commands sent within ${sent[i] - sent[i - 3]} ms`);
  });

  test('an attempt without progress times out and is retried after the back-off', async () => {
    await firmware('to', '1.0.0');
    const fw = await firmware('to', '1.2.0');
    // Ignores the first command, acts on the retry. The retry's reports each come within the
    // timeout even on a loaded machine: 3 s between reports of a device that answers at once.
    const [dev] = await fleet('to', 1, 'to', '1.0.0', { plan: ['silent'], behaviour: 'succeed' });
    const r = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id, attemptTimeoutSeconds: 3, maxRetries: 1, retryBackoffSeconds: 0 });
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
    // Scheduled an hour ahead: scheduled, and a device that asks is told so, however slow the machine.
    const later = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id, startAt: new Date(Date.now() + 3_600_000).toISOString() });
    assert.equal(later.state, 'scheduled');
    assert.equal(later.commanded, 0);
    await dev.announce();
    await eventually(() => dev.commands.at(-1)?.command.reason === 'rollout-scheduled', 30_000, 'scheduled answer');
    await server.api.call('POST', `/api/rollouts/${later.id}/cancel`);
    assert.equal(dev.updates().length, 0);
    // Scheduled shortly ahead: it starts by itself, and no command comes before its start (a
    // loaded machine may create it after that time; then it starts at once, which is right too).
    const startAt = new Date(Date.now() + 1_500).toISOString();
    const r = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id, startAt });
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
    assert.deepEqual((await server.api.call<Json>('GET', '/api/devices/lj-2')).attempts, [], 'no attempt for the untagged device');
    assert.equal((await rollout(r.id)).targets, 2);
    await server.api.call('POST', `/api/rollouts/${r.id}/cancel`);
  });

  test('soak: the next wave waits until successes stayed healthy; a success that falls back counts as a failure', async () => {
    await firmware('sk', '1.0.0');
    const fw = await firmware('sk', '1.1.0');
    const devices = await fleet('sk', 4, 'sk', '1.0.0');
    const r = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id, waves: [50, 100], soakSeconds: 1 });
    const first = await until(r.id, (x) => x.counts.succeeded >= 2, 'wave 1 succeeded');
    const waveOf = new Map(first.devices.map((d: Json) => [d.deviceId, d.wave]));
    const firstWave = devices.filter((d) => waveOf.get(d.id) === 0);
    const second = devices.filter((d) => waveOf.get(d.id) === 1);
    await eventually(() => second.every((d) => d.updates().length === 1), 30_000, 'wave 2 commanded');
    // Each success soaks for 1 s from when the server took it, which is after the device noted it.
    const soakedFrom = Math.max(...firstWave.map((d) => d.succeededAt));
    const wave2At = Math.min(...second.map((d) => d.updates()[0].at));
    assert.ok(wave2At >= soakedFrom + 1_000, `wave 2 commanded ${wave2At - soakedFrom} ms after wave 1's last success, within the 1 s soak`);

    const fw2 = await firmware('sk', '1.2.0');
    await until(r.id, (x) => x.state === 'completed', 'first rollout completed');
    // The wave-1 devices come back on the old version right after succeeding, well within a soak
    // of a minute; so the wave ends, with failures only, without waiting for the soak.
    for (const d of devices) d.plan = ['fall-back'];
    const r2 = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw2.id, waves: [50, 100], soakSeconds: 60 });
    const paused = await until(r2.id, (x) => x.state === 'paused', 'paused: unhealthy during soak');
    assert.match(paused.reason, /wave 1 finished with 0 % success/);
    const wave0 = paused.devices.filter((x: Json) => x.wave === 0).map((x: Json) => x.deviceId);
    assert.equal(wave0.length, 2);
    assert.ok(devices.every((d) => d.updates().length === (wave0.includes(d.id) ? 2 : 1)), 'the second wave got nothing');
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
