// The steering rules as pure functions, with the time passed in: the wave deadline and what a
// wave waits for, deferral timing, edits (validation, re-cut waves), operator retries, and the
// failure threshold counted from the last resume. No network, no database, no clock.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Firmware } from '../src/firmware/catalog.js';
import type { Device } from '../src/fleet/device-registry.js';
import { ActiveRollout } from '../src/rollouts/active-rollout.js';
import { applyReport } from '../src/rollouts/attempt-state.js';
import { Deferrals, retryAfterMs } from '../src/rollouts/deferral.js';
import { offer, type AnnouncedDevice } from '../src/rollouts/eligibility.js';
import { DEFAULT_POLICY, type RolloutPolicy } from '../src/rollouts/policy.js';
import { applyChanges, planEdit, planRetry, reassignLaterWaves } from '../src/rollouts/rollout-edits.js';
import { RolloutError } from '../src/rollouts/rollout-request.js';
import { describeWave, duration, unreachablePastDeadline, waveDeadlinePassed } from '../src/rollouts/wave-deadline.js';
import { assignWaves, type WavePlan } from '../src/rollouts/waves.js';

const T0 = Date.UTC(2026, 11, 4, 4, 0, 0);

function firmware(): Firmware {
  return { id: 'fw-2', type: 'lamp', version: '2.0.0', channel: 'stable', notes: null, sha256: 'a'.repeat(64), size: 1, chip: null, projectName: null,
    imageVersion: null, buildId: null, idfVersion: null, secureVersion: null, createdAt: new Date(T0), deletedAt: null };
}

function device(id: string, online = true): AnnouncedDevice {
  return { id, type: 'lamp', version: '1.0.0', chip: null, idfVersion: null, secureVersion: null, slot: null, online, lastSeenAt: new Date(T0), tags: [], channel: 'stable', health: null } as AnnouncedDevice;
}

function rollout(members: Record<string, number>, opts: { policy?: Partial<RolloutPolicy>; plan?: WavePlan; wave?: number } = {}): ActiveRollout {
  const r = new ActiveRollout('ro-s', firmware(), { type: 'lamp', deviceIds: null, tags: [], versionRange: null, channel: null }, opts.plan ?? { unit: 'percent', sizes: [100] },
    { ...DEFAULT_POLICY, ...opts.policy }, 'running', opts.wave ?? 0, null, null, Object.keys(members).length, new Date(T0));
  for (const [id, wave] of Object.entries(members)) r.members.set(id, { wave, latest: null, unhealthy: false });
  r.waveStartedAt = T0;
  return r;
}

const fleet = (devices: AnnouncedDevice[]) => (id: string): Device | undefined => devices.find((d) => d.id === id);

describe('wave deadline', () => {
  test('an offline member with nothing in flight is skipped once the deadline has passed, not before', () => {
    const r = rollout({ on: 0, off: 0 }, { policy: { waveDeadlineSeconds: 40 } });
    const devices = fleet([device('on'), device('off', false)]);
    assert.equal(r.waveStats(0, devices, T0 + 39_999).skipped, 0);
    assert.equal(r.waveStats(0, devices, T0 + 40_000).skipped, 1);
    assert.deepEqual(r.evaluateWave(devices, T0 + 40_000), { action: 'wait' }, 'the online one still waits');
    r.recordAttempt('on', { id: 'u1', state: 'succeeded', retry: 0, finishedAt: T0 + 1 });
    // Skipped counts neither way: one success of one counted device completes the wave.
    assert.deepEqual(r.evaluateWave(devices, T0 + 40_000), { action: 'complete' });
  });

  test('an attempt in flight, a device online, a later wave or no deadline: never skipped', () => {
    const r = rollout({ sent: 0, later: 1 }, { plan: { unit: 'percent', sizes: [50, 100] } });
    const off = device('x', false);
    r.recordAttempt('sent', { id: 'u1', state: 'sent', retry: 0, finishedAt: null });
    assert.equal(unreachablePastDeadline(r, r.members.get('sent')!, off, T0 + 86_400_000), false);
    assert.equal(unreachablePastDeadline(r, r.members.get('later')!, off, T0 + 86_400_000), false);
    assert.equal(waveDeadlinePassed({ ...r, policy: { ...r.policy, waveDeadlineSeconds: null } } as ActiveRollout, 0, T0 + 86_400_000), false);
    assert.equal(unreachablePastDeadline(r, { wave: 0, latest: null, unhealthy: false }, device('y'), T0 + 86_400_000), false);
    // Earlier waves are over: their unreachable members count as skipped whatever the time.
    assert.equal(waveDeadlinePassed({ ...r, currentWave: 1 } as ActiveRollout, 0, T0), true);
  });

  test('a skipped device that comes back is offered the update while the rollout runs', () => {
    const r = rollout({ off: 0 }, { policy: { waveDeadlineSeconds: 1 } });
    assert.equal(r.waveStats(0, fleet([device('off', false)]), T0 + 1000).skipped, 1);
    assert.deepEqual(offer(r, device('off'), T0 + 1000), { ok: true, retry: 0 });
  });

  test('what a wave waits for, in one sentence', () => {
    const r = rollout({ a: 1, b: 1, c: 1, d: 1, e: 1, f: 0 }, { plan: { unit: 'percent', sizes: [10, 50, 75, 100] }, wave: 1, policy: { waveDeadlineSeconds: 60, soakSeconds: 300 } });
    const devices = fleet([device('a', false), device('b', false), device('c'), device('d'), device('e')]);
    r.recordAttempt('c', { id: 'u1', state: 'downloading', retry: 0, finishedAt: null });
    r.recordAttempt('d', { id: 'u2', state: 'succeeded', retry: 0, finishedAt: T0 });
    const state = (id: string) => (id === 'c' ? 'downloading' as const : undefined);
    const w = describeWave(r, devices, state, T0 + 20_000);
    assert.equal(w.text, 'wave 2 of 4: waiting for 4 devices (2 offline, deadline in 40 s, 1 updating, 1 not yet commanded), soak 5 min left');
    assert.deepEqual([w.offline, w.updating, w.notYetCommanded, w.soaking, w.deadlineInSeconds, w.soakLeftSeconds], [2, 1, 1, 1, 40, 280]);
    // Past the deadline the offline ones are skipped and the sentence says so by leaving them out.
    assert.equal(describeWave(r, devices, state, T0 + 60_000).text, 'wave 2 of 4: waiting for 2 devices (1 updating, 1 not yet commanded), soak 4 min left');
    assert.deepEqual([duration(59), duration(60), duration(61), duration(3600), duration(7500)], ['59 s', '1 min', '2 min', '1 h', '2 h 5 min']);
  });
});

describe('deferral', () => {
  test('offered again after retryAfter, not before; the timeout counts from then', () => {
    const deferrals = new Deferrals();
    const attempt = { state: 'sent', updatedAt: new Date(T0) };
    assert.equal(deferrals.due(attempt, T0), true, 'never deferred: nothing holds it');
    const until = deferrals.note(attempt, 30, T0);
    assert.equal(until, T0 + 30_000);
    assert.equal(deferrals.due(attempt, T0 + 29_999), false);
    assert.equal(deferrals.waiting(attempt, T0 + 29_999), true);
    assert.equal(deferrals.secondsLeft(attempt, T0 + 10_000), 20);
    assert.equal(deferrals.due(attempt, T0 + 30_000), true);
    assert.equal(deferrals.lastActivity(attempt), T0 + 30_000);
    deferrals.resent(attempt, T0 + 31_000);
    assert.equal(deferrals.due(attempt, T0 + 99_000), false, 'once offered again, the device answers');
    assert.equal(deferrals.waiting(attempt, T0 + 31_000), false);
    assert.equal(deferrals.lastActivity(attempt), T0 + 31_000);
    assert.deepEqual([retryAfterMs(undefined), retryAfterMs(0), retryAfterMs(10 ** 9)], [60_000, 1000, 86_400_000]);
  });

  test('a deferral heard elsewhere (another instance, before a restart) waits the default from its commit', () => {
    const deferrals = new Deferrals();
    const attempt = { state: 'deferred', updatedAt: new Date(T0) };
    assert.equal(deferrals.waiting(attempt, T0 + 59_999), true);
    assert.equal(deferrals.due(attempt, T0 + 59_999), false);
    assert.equal(deferrals.due(attempt, T0 + 60_000), true);
    deferrals.resent(attempt, T0 + 60_000);
    assert.equal(deferrals.due(attempt, T0 + 120_000), false, 'offered once; the device answers');
  });

  test('a deferral answers an offer not started; once started it is out of order; each one is recorded', () => {
    assert.deepEqual(applyReport({ state: 'sent', progress: null }, { state: 'deferred' }), { kind: 'advance', state: 'deferred', progress: null });
    assert.deepEqual(applyReport({ state: 'deferred', progress: null }, { state: 'deferred' }), { kind: 'advance', state: 'deferred', progress: null });
    assert.deepEqual(applyReport({ state: 'deferred', progress: null }, { state: 'accepted' }), { kind: 'advance', state: 'accepted', progress: null });
    assert.deepEqual(applyReport({ state: 'downloading', progress: 20 }, { state: 'deferred' }), { kind: 'ignore', why: 'out-of-order' });
  });
});

describe('edits, retries and acknowledged failures', () => {
  test('an edit is validated as creation is, and waves that started keep their sizes', () => {
    const r = rollout({ a: 0, b: 1 }, { plan: { unit: 'percent', sizes: [50, 100] } });
    assert.throws(() => planEdit(r, { maintenanceWindow: { start: '25:00', end: '01:00' } }), (e: RolloutError) => e.statusCode === 400);
    assert.throws(() => planEdit(r, { waves: [10, 60] }), (e: RolloutError) => e.statusCode === 400 && /end at 100/.test(e.message));
    assert.throws(() => planEdit(r, { waves: [40, 100] }), (e: RolloutError) => e.statusCode === 409);
    assert.throws(() => planEdit(r, { waves: [2, 4], waveUnit: 'count' }), (e: RolloutError) => e.statusCode === 409);
    assert.deepEqual(planEdit(r, { soakSeconds: 0 }).summary, [], 'the same value changes nothing');
    const e = planEdit(r, { maxPerMinute: 10, waves: [50, 75, 100], waveDeadlineSeconds: null });
    assert.deepEqual(e.summary, ['maxPerMinute none → 10', 'waveDeadlineSeconds 600 → none', 'waves 50,100 → 50,75,100 %']);
    applyChanges(r, e.changes);
    assert.equal(r.policy.maxPerMinute, 10);
    assert.deepEqual(r.plan.sizes, [50, 75, 100]);
  });

  test('new waves re-cut only the members of waves not started, in hash order', () => {
    const ids = Array.from({ length: 100 }, (_, i) => `d${i}`);
    const initial = assignWaves('ro-cut', ids, { unit: 'percent', sizes: [10, 100] });
    const members = new Map([...initial].map(([id, wave]) => [id, { wave }]));
    const moved = reassignLaterWaves('ro-cut', members, 0, { unit: 'percent', sizes: [10, 30, 100] });
    for (const m of moved) members.get(m.deviceId)!.wave = m.wave;
    const sizes = [0, 1, 2].map((w) => [...members.values()].filter((m) => m.wave === w).length);
    assert.deepEqual(sizes, [10, 20, 70]);
    assert.ok(moved.every((m) => initial.get(m.deviceId) === 1), 'wave 1 kept its members');
    // The same cut as a rollout created with these waves.
    const fresh = assignWaves('ro-cut', ids, { unit: 'percent', sizes: [10, 30, 100] });
    assert.ok(ids.every((id) => fresh.get(id) === members.get(id)!.wave));
  });

  test('an operator retry: failed, timed out and rolled back get one more attempt, without back-off; rejected does not', () => {
    const r = rollout({ f: 0, t: 0, rb: 0, rj: 0, ok: 0, busy: 0 });
    r.recordAttempt('f', { id: 'u1', state: 'failed', retry: 0, finishedAt: T0 });
    r.recordAttempt('t', { id: 'u2', state: 'timed_out', retry: 2, finishedAt: T0 });
    r.recordAttempt('rb', { id: 'u3', state: 'rolled_back', retry: 0, finishedAt: T0 });
    r.recordAttempt('rj', { id: 'u4', state: 'rejected', retry: 0, finishedAt: T0 });
    r.recordAttempt('ok', { id: 'u5', state: 'succeeded', retry: 0, finishedAt: T0 });
    r.recordAttempt('busy', { id: 'u6', state: 'failed', retry: 0, finishedAt: T0 });
    assert.deepEqual(offer(r, device('rb'), T0 + 1), { ok: false, reason: 'previously-failed' });
    const planned = planRetry(r, (id) => id === 'busy');
    assert.deepEqual(planned, [{ deviceId: 'f', retryUpTo: 1 }, { deviceId: 'rb', retryUpTo: 1 }, { deviceId: 't', retryUpTo: 3 }]);
    applyChanges(r, { members: planned });
    assert.deepEqual(offer(r, device('rb'), T0 + 1), { ok: true, retry: 1 });
    assert.deepEqual(offer(r, device('t'), T0 + 1), { ok: true, retry: 3 });
    assert.deepEqual(offer(r, device('rj'), T0 + 1), { ok: false, reason: 'previously-failed' });
    assert.equal(r.waveStats(0, fleet([]), T0).failed, 2, 'rj and busy: the retried ones are open again');
  });

  test('the failure threshold counts from the acknowledged failures', () => {
    const r = rollout({ a: 0, b: 0, c: 0 }, { policy: { failureThreshold: { count: 1 } } });
    r.recordAttempt('a', { id: 'u1', state: 'failed', retry: 0, finishedAt: T0 });
    assert.equal(r.failureThresholdReason(), 'failure threshold reached: 1 of 1 finished attempts failed');
    applyChanges(r, { acknowledged: r.failureTally() });
    assert.equal(r.failureThresholdReason(), null);
    r.recordAttempt('b', { id: 'u2', state: 'succeeded', retry: 0, finishedAt: T0 });
    assert.equal(r.failureThresholdReason(), null);
    r.recordAttempt('c', { id: 'u3', state: 'rolled_back', retry: 0, finishedAt: T0 });
    assert.equal(r.failureThresholdReason(), 'failure threshold reached: 1 of 2 finished attempts failed since the last resume');
  });
});
