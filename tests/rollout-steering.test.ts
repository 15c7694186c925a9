// Steering rollouts over the real stack (TLS broker, HTTPS API, PGlite, simulated devices): resume
// acknowledging the failures so far, retry of the failed devices, edits while running or paused,
// promotion by hand, the wave deadline for unreachable devices, and deferral by the device.
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

describe('steering rollouts', () => {
  let server: TestServer;
  let tmp: string;
  const fleets: SimulatedDevice[][] = [];

  before(async () => {
    server = await startTestServer({ env: { MQOTA_ROLLOUT_TICK_MS: '50' } });
    tmp = await mkdtemp(path.join(os.tmpdir(), 'mqota-steer-'));
  });
  after(async () => {
    for (const f of fleets) await stopFleet(f);
    await server?.close();
  });

  async function firmware(type: string, version: string): Promise<Json> {
    const file = path.join(tmp, `${type}-${version}.bin`);
    await writeFile(file, buildEspAppImage({ projectName: type, version, payloadBytes: 2048 }));
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
  const post = (id: string, action: string) => server.api.call<Json>('POST', `/api/rollouts/${id}/${action}`);
  const rejection = (p: Promise<unknown>) => p.then(() => assert.fail('expected an error'), (err: any) => err);

  test('resume acknowledges the failures so far; the threshold counts from there; the failed devices are retried', async () => {
    await firmware('ack', '1.0.0');
    const fw = await firmware('ack', '1.1.0');
    const [a, b, c] = await fleet('ack', 3, 'ack', '1.0.0');
    // a fails at once; b and c ignore the first command (as if lost) and act on its resend, which
    // their next announce brings: c then fails. Every later command succeeds.
    a.plan = ['fail'];
    b.plan = ['silent'];
    c.plan = ['silent', 'fail'];
    const r = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id, failureThreshold: { count: 1 } });
    const paused = await until(r.id, (x) => x.state === 'paused', 'paused at the threshold');
    assert.match(paused.reason, /^failure threshold reached: 1 of 1 finished attempts failed$/);

    // The reported bug: resume said `running` and the rollout paused itself again at once, on the
    // same failure. Now it counts from the resume: b's success and c's failure are what the next
    // pause is about, and nothing comes between.
    const resumed = await post(r.id, 'resume');
    assert.equal(resumed.state, 'running');
    await b.announce();
    await until(r.id, (x) => x.counts.succeeded === 1, 'b updated after the resume');
    await c.announce();
    const second = await until(r.id, (x) => x.state === 'paused' && x.counts.failed === 2, 'paused on the failure after the resume');
    assert.equal(second.reason, 'failure threshold reached: 1 of 2 finished attempts failed since the last resume');
    const afterResume = second.history.slice(second.history.findIndex((h: Json) => /^resumed by admin/.test(h.reason)));
    assert.deepEqual(afterResume.map((h: Json) => [h.state, h.reason]), [
      ['running', 'resumed by admin (acknowledging 1 failure(s))'],
      ['paused', 'failure threshold reached: 1 of 2 finished attempts failed since the last resume'],
    ]);

    // Retrying the failed devices is an operator's decision: recorded, and answered with how many.
    const retry = await post(r.id, 'retry');
    assert.equal(retry.retried, 2);
    const granted = await rollout(r.id);
    assert.equal(granted.retried, 2);
    assert.deepEqual(granted.devices.map((d: Json) => [d.deviceId, d.retryGranted]), [[a.id, 1], [b.id, 0], [c.id, 1]]);
    assert.equal(granted.history.at(-1).reason, `retry of 2 failed device(s) by admin: ${a.id}, ${c.id}`);
    assert.equal(granted.state, 'paused', 'a retry does not resume');
    await post(r.id, 'resume');
    const done = await until(r.id, (x) => x.state === 'completed', 'completed after the retries');
    assert.equal(done.counts.succeeded, 3);
    assert.equal(done.counts.failed, 2);
    assert.deepEqual([a, b, c].map((d) => new Set(d.updates().map((u) => u.command.updateId)).size), [2, 1, 2]);
    assert.equal((await rejection(post(r.id, 'retry'))).statusCode, 409);
  });

  test('edit while running: validated like creation, audited, recorded, and in force at once', async () => {
    await firmware('ed', '1.0.0');
    const fw = await firmware('ed', '1.1.0');
    const devices = await fleet('ed', 4, 'ed', '1.0.0');
    // A day of soak holds wave 1 however fast its devices succeed.
    const r = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id, waves: [50, 100], soakSeconds: 86_400 });
    const soaking = await until(r.id, (x) => x.counts.succeeded === 2, 'wave 1 succeeded');
    assert.equal(soaking.currentWave, 0);
    assert.match(soaking.waiting.text, /^wave 1 of 2: soak (23 h 59 min|1440 min|24 h) left$/);

    // Validated as at creation, and started waves keep their sizes.
    const bad = await rejection(server.api.call('PATCH', `/api/rollouts/${r.id}`, { maintenanceWindow: { start: '01:00', end: '01:00' } }));
    assert.equal(bad.statusCode, 400);
    assert.match(bad.message, /maintenanceWindow/);
    const started = await rejection(server.api.call('PATCH', `/api/rollouts/${r.id}`, { waves: [25, 100] }));
    assert.equal(started.statusCode, 409);
    assert.match(started.message, /wave 1 has started: 50 \(percent\) must stay/);
    assert.equal((await rejection(server.api.call('PATCH', `/api/rollouts/${r.id}`, { allowDowngrade: true }))).statusCode, 400);
    assert.equal((await rejection(server.api.call('PATCH', `/api/rollouts/${r.id}`, { waves: [50, 90] }))).statusCode, 400);

    const edited = await server.api.call<Json>('PATCH', `/api/rollouts/${r.id}`, { soakSeconds: 0, maxPerMinute: 600 });
    assert.deepEqual(edited.changed, ['soakSeconds 86400 → 0', 'maxPerMinute none → 600']);
    assert.equal(edited.policy.soakSeconds, 0);
    const done = await until(r.id, (x) => x.state === 'completed', 'completed once the soak was shortened');
    assert.equal(done.counts.succeeded, 4);
    assert.ok(devices.every((d) => d.updates().length === 1));
    const edit = done.history.find((h: Json) => /settings edited/.test(h.reason));
    assert.match(edit.reason, /settings edited by admin: soakSeconds 86400 → 0; maxPerMinute none → 600/);
    assert.equal(edit.actor, 'admin');
    await eventually(async () => (await server.api.call<Json[]>(`GET`, `/api/audit?target=${r.id}`))
      .some((e) => e.action === 'PATCH /api/rollouts/:id' && e.statusCode === 200 && e.details?.soakSeconds === 0), 5_000, 'the edit in the audit log');
    // A finished rollout is not edited.
    assert.equal((await rejection(server.api.call('PATCH', `/api/rollouts/${r.id}`, { soakSeconds: 5 }))).statusCode, 409);
  });

  test('resume after a wave missed its success ratio accepts the wave: the next one starts, the last one completes', async () => {
    await firmware('sr', '1.0.0');
    const fw = await firmware('sr', '1.1.0');
    // One device per wave; each fails its update, and no retry is automatic.
    await fleet('sr', 2, 'sr', '1.0.0', { plan: ['fail'] });
    const r = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id, waves: [50, 100], minSuccessRatio: 1, maxRetries: 0, failureThreshold: { count: 10 } });
    const paused = await until(r.id, (x) => x.state === 'paused', 'paused: wave 1 below its ratio');
    assert.equal(paused.reason, 'wave 1 finished with 0 % success, below the required 100 %');
    // The reported bug: resume said running, and the next tick paused it again for the same wave.
    const resumed = await post(r.id, 'resume');
    assert.equal(resumed.state, 'running');
    assert.equal(resumed.currentWave, 1);
    // Not necessarily the last entry: wave 2's one device may already have failed and paused it again.
    const resumes = (await rollout(r.id)).history.filter((h: Json) => String(h.reason).startsWith('resumed by admin'));
    assert.equal(resumes.at(-1).reason, 'resumed by admin (acknowledging 1 failure(s)), accepting wave 1 as it finished: wave 2 of 2 started');
    const second = await until(r.id, (x) => x.state === 'paused' && x.counts.failed === 2, 'paused: wave 2 below its ratio');
    assert.equal(second.reason, 'wave 2 finished with 0 % success, below the required 100 %');
    assert.equal(second.currentWave, 1, 'wave 2 was started and missed its ratio too');
    const done = await post(r.id, 'resume');
    assert.equal(done.state, 'completed');
    assert.equal((await rollout(r.id)).history.at(-1).reason, 'resumed by admin (acknowledging 1 failure(s)), accepting wave 2 as it finished: every wave finished');
  });

  test('edit while paused: new waves re-cut the members of waves not started; promote by hand', async () => {
    await firmware('pw', '1.0.0');
    const fw = await firmware('pw', '1.1.0');
    const devices = await fleet('pw', 10, 'pw', '1.0.0');
    const r = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id, waves: [10, 100], soakSeconds: 86_400 });
    await until(r.id, (x) => x.counts.succeeded === 1, 'wave 1 succeeded');
    await post(r.id, 'pause');
    const edited = await server.api.call<Json>('PATCH', `/api/rollouts/${r.id}`, { waves: [10, 40, 100] });
    assert.deepEqual(edited.changed, ['waves 10,100 → 10,40,100 %']);
    const view = await rollout(r.id);
    assert.deepEqual(view.waves.map((w: Json) => w.devices), [1, 3, 6]);
    assert.equal(view.state, 'paused');

    // Promotion by hand: the next wave starts whatever the soak says; a paused rollout stays paused.
    const promoted = await post(r.id, 'promote');
    assert.equal(promoted.currentWave, 1);
    assert.equal(promoted.state, 'paused');
    await post(r.id, 'resume');
    await until(r.id, (x) => x.counts.succeeded === 4, 'wave 2 succeeded');
    const wave2 = new Set<string>(view.devices.filter((d: Json) => d.wave === 1).map((d: Json) => d.deviceId));
    const updated = new Set(devices.filter((d) => d.updates().length).map((d) => d.id));
    assert.ok([...wave2].every((id) => updated.has(id)), 'wave 2 members were commanded');
    assert.equal(updated.size, 4, 'wave 3 was not');
    await post(r.id, 'promote');
    const last = await rejection(post(r.id, 'promote'));
    assert.equal(last.statusCode, 409);
    assert.match(last.message, /last wave \(3 of 3\)/);
    await until(r.id, (x) => x.counts.succeeded === 10, 'wave 3 succeeded');
    await post(r.id, 'cancel');
  });

  test('a wave stops waiting for unreachable devices at its deadline: skipped: offline, not failed; one that returns is updated', async () => {
    await firmware('dl', '1.0.0');
    const fw = await firmware('dl', '1.1.0');
    const [back, gone, silent, ok] = await fleet('dl', 4, 'dl', '1.0.0');
    silent.plan = ['silent'];
    await back.stop();
    await gone.stop();
    await eventually(async () => (await server.api.call<Json[]>('GET', '/api/devices?type=dl&online=true')).length === 2, 10_000, 'two offline');
    const r = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id, waveDeadlineSeconds: 1 });
    const skipped = await until(r.id, (x) => x.skipped === 2 && x.counts.succeeded === 1, 'the offline devices skipped');
    assert.equal(skipped.state, 'running', 'the silent device holds the wave');
    assert.equal(skipped.waiting.text, 'wave 1 of 1: waiting for 1 device (1 commanded)');
    const standing = Object.fromEntries(skipped.devices.map((d: Json) => [d.deviceId, [d.standing, d.skipReason]]));
    assert.deepEqual(standing[back.id], ['skipped', 'offline']);
    assert.deepEqual(standing[ok.id], ['healthy', null]);
    assert.deepEqual(standing[silent.id], ['waiting', null]);
    assert.equal(skipped.waves[0].skipped, 2);
    assert.equal(skipped.waves[0].failed, 0);

    // Back while the rollout runs: it gets the update.
    await back.start();
    await until(r.id, (x) => x.counts.succeeded === 2 && x.skipped === 1, 'the returning device updated');
    // The silent device acts on the resend its next announce brings; the wave then completes without the one still gone.
    await silent.announce();
    const done = await until(r.id, (x) => x.state === 'completed', 'completed');
    assert.equal(done.counts.succeeded, 3);
    assert.equal(done.counts.failed, 0);
    assert.equal(gone.updates().length, 0);
  });

  test('a device defers an offer: no failure, counted on its own, offered again after retryAfter, and not before', async () => {
    await firmware('df', '1.0.0');
    const fw = await firmware('df', '1.1.0');
    const [soon, later] = await fleet('df', 2, 'df', '1.0.0', { plan: ['defer'] });
    later.retryAfter = 86_400;
    const r = await server.api.call<Json>('POST', '/api/rollouts', { firmwareId: fw.id, failureThreshold: { count: 1 } });
    await eventually(() => soon.updates().length >= 2 && soon.version === '1.1.0', 30_000, 'the deferring device updated on the second offer');
    assert.equal(soon.updates()[0].command.updateId, soon.updates()[1].command.updateId, 'the same update offered again');
    const view = await until(r.id, (x) => x.counts.deferred === 1 && x.counts.succeeded === 1, 'one deferred, one succeeded');
    assert.equal(view.state, 'running');
    assert.ok(view.deferrals >= 2);
    assert.equal(view.devices.find((d: Json) => d.deviceId === later.id).state, 'deferred');
    assert.match(view.waiting.text, /waiting for 1 device \(1 deferred\)/);
    // Asked for a day: its announce is answered `none`, reason `deferred`, not the update again.
    const before = later.commands.length;
    await later.announce();
    await eventually(() => later.commands.length > before, 10_000, 'an answer to the announce');
    assert.deepEqual(later.commands.at(-1)!.command, { action: 'none', reason: 'deferred' });
    const history = await server.api.call<Json>('GET', `/api/devices/${soon.id}`);
    // `sent` is recorded only if the command's publication completes before the device answers it.
    assert.deepEqual(history.attempts[0].history.map((h: Json) => h.state).filter((x: string) => x !== 'sent').slice(0, 3), ['pending', 'deferred', 'accepted']);
    await post(r.id, 'cancel');
  });
});
