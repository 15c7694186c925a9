// The rollout rules as pure functions, with the time passed in: eligibility and its reasons,
// waves, forward-only report application, maintenance windows, failure thresholds, the rate
// limit and the soak. No network, no database, no clock: every assertion holds on any machine.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Firmware } from '../src/firmware/catalog.js';
import type { Device } from '../src/fleet/device-registry.js';
import { ActiveRollout } from '../src/rollouts/active-rollout.js';
import { applyReport } from '../src/rollouts/attempt-state.js';
import { chooseUpdate, offer, versionDecision, type AnnouncedDevice } from '../src/rollouts/eligibility.js';
import { DEFAULT_POLICY, failureThresholdReached, withinWindow, type RolloutPolicy } from '../src/rollouts/policy.js';
import { assignWaves, waveForLateJoiner, type WavePlan } from '../src/rollouts/waves.js';

const T0 = Date.UTC(2026, 11, 3, 12, 0, 0);

function firmware(version: string, extra: Partial<Firmware> = {}): Firmware {
  return { id: `fw-${version}`, type: 'lamp', version, channel: 'stable', notes: null, sha256: 'a'.repeat(64), size: 1, chip: 'esp32', projectName: null,
    imageVersion: null, buildId: null, idfVersion: null, secureVersion: null, createdAt: new Date(T0), deletedAt: null, ...extra };
}

function device(id: string, version: string, extra: Partial<Device> = {}): AnnouncedDevice {
  return { id, type: 'lamp', version, chip: 'esp32', idfVersion: null, secureVersion: null, slot: null, online: true, lastSeenAt: new Date(T0),
    tags: [], channel: 'stable', ...extra } as AnnouncedDevice;
}

function rollout(opts: { version?: string; policy?: Partial<RolloutPolicy>; plan?: WavePlan; members?: Record<string, number>; state?: 'running' | 'paused' | 'scheduled'; id?: string } = {}): ActiveRollout {
  const fw = firmware(opts.version ?? '2.0.0');
  const r = new ActiveRollout(opts.id ?? 'ro-1', fw, { type: 'lamp', deviceIds: null, tags: [], versionRange: null, channel: null }, opts.plan ?? { unit: 'percent', sizes: [100] },
    { ...DEFAULT_POLICY, ...opts.policy }, opts.state ?? 'running', 0, null, null, Object.keys(opts.members ?? {}).length, new Date(T0));
  for (const [id, wave] of Object.entries(opts.members ?? { d1: 0 })) r.members.set(id, { wave, latest: null, unhealthy: false });
  return r;
}

describe('eligibility', () => {
  test('versions, chips and anti-rollback', () => {
    assert.deepEqual(versionDecision(firmware('2.0.0'), device('d', '1.0.0'), false), { ok: true, downgrade: false });
    assert.deepEqual(versionDecision(firmware('2.0.0'), device('d', '2.0.0'), false), { ok: false, reason: 'up-to-date' });
    assert.deepEqual(versionDecision(firmware('1.0.0'), device('d', '2.0.0'), false), { ok: false, reason: 'up-to-date' });
    assert.deepEqual(versionDecision(firmware('1.0.0'), device('d', '2.0.0'), true), { ok: true, downgrade: true });
    assert.deepEqual(versionDecision(firmware('1.0.0', { secureVersion: 1 }), device('d', '2.0.0', { secureVersion: 2 }), true), { ok: false, reason: 'secure-version' });
    assert.deepEqual(versionDecision(firmware('2.0.0', { chip: 'esp32c3' }), device('d', '1.0.0'), false), { ok: false, reason: 'chip-mismatch' });
    assert.deepEqual(versionDecision(firmware('2.0.0'), device('d', '1.0.0', { type: 'fan' }), false), { ok: false, reason: 'not-targeted' });
  });

  test('each reason a rollout gives, and the one it answers first', () => {
    assert.deepEqual(offer(rollout({ state: 'paused' }), device('d1', '1.0.0'), T0), { ok: false, reason: 'rollout-paused' });
    assert.deepEqual(offer(rollout({ state: 'scheduled' }), device('d1', '1.0.0'), T0), { ok: false, reason: 'rollout-scheduled' });
    assert.deepEqual(offer(rollout(), device('other', '1.0.0'), T0), { ok: false, reason: 'not-targeted' });
    assert.deepEqual(offer(rollout({ members: { d1: 1 }, plan: { unit: 'percent', sizes: [50, 100] } }), device('d1', '1.0.0'), T0), { ok: false, reason: 'waiting-for-wave' });
    assert.deepEqual(offer(rollout({ policy: { maintenanceWindow: { start: '01:00', end: '03:00' } } }), device('d1', '1.0.0'), T0), { ok: false, reason: 'outside-maintenance-window' });
    assert.deepEqual(offer(rollout(), device('d1', '1.0.0'), T0), { ok: true, retry: 0 });
  });

  test('a failed attempt is retried after its back-off, up to maxRetries; a rejected one never', () => {
    const r = rollout({ policy: { maxRetries: 1, retryBackoffSeconds: 60 } });
    r.recordAttempt('d1', { id: 'u1', state: 'failed', retry: 0, finishedAt: T0 });
    assert.deepEqual(offer(r, device('d1', '1.0.0'), T0 + 59_999), { ok: false, reason: 'retry-backoff' });
    assert.deepEqual(offer(r, device('d1', '1.0.0'), T0 + 60_000), { ok: true, retry: 1 });
    r.recordAttempt('d1', { id: 'u2', state: 'failed', retry: 1, finishedAt: T0 + 60_000 });
    assert.deepEqual(offer(r, device('d1', '1.0.0'), T0 + 3_600_000), { ok: false, reason: 'previously-failed' });
    const rej = rollout({ policy: { maxRetries: 3 } });
    rej.recordAttempt('d1', { id: 'u3', state: 'rejected', retry: 0, finishedAt: T0 });
    assert.deepEqual(offer(rej, device('d1', '1.0.0'), T0 + 3_600_000), { ok: false, reason: 'previously-failed' });
  });

  test('chooseUpdate prefers the newest firmware, and otherwise names the most telling reason', () => {
    const older = rollout({ id: 'ro-old', version: '1.5.0' });
    const newer = rollout({ id: 'ro-new', version: '2.0.0' });
    const choice = chooseUpdate(device('d1', '1.0.0'), [older, newer], T0, true);
    assert.equal(choice.kind === 'update' && choice.rollout.id, 'ro-new');
    const paused = rollout({ state: 'paused' });
    assert.deepEqual(chooseUpdate(device('d1', '1.0.0'), [paused], T0, true), { kind: 'none', reason: 'rollout-paused' });
    assert.deepEqual(chooseUpdate(device('d1', '2.0.0'), [rollout()], T0, true), { kind: 'none', reason: 'up-to-date' });
    assert.deepEqual(chooseUpdate(device('d1', '2.0.0'), [], T0, false), { kind: 'none', reason: 'unknown-type' });
  });
});

describe('rate limit', () => {
  test('at most maxPerMinute commands a minute, in bursts of one second\'s share', () => {
    const r = rollout({ policy: { maxPerMinute: 120 } }); // 2 a second
    let sent = 0;
    for (let i = 0; i < 10; i++) if (r.rateAllows(T0)) { r.noteDispatch(T0); sent++; }
    assert.equal(sent, 2, 'one second\'s share at once');
    assert.equal(r.rateAllows(T0 + 499), false);
    assert.equal(r.rateAllows(T0 + 500), true, 'one more token after half a second');
    r.seedDispatches(T0 + 500);
    assert.equal(r.rateAllows(T0 + 500), false, 'after a restart the bucket starts empty');
  });
});

describe('waves, soak and thresholds', () => {
  test('wave membership is deterministic and cut at the sizes; late joiners land by their hash', () => {
    const ids = Array.from({ length: 200 }, (_, i) => `dev-${i}`);
    const plan: WavePlan = { unit: 'percent', sizes: [1, 10, 50, 100] };
    const a = assignWaves('ro-x', ids, plan);
    assert.deepEqual(a, assignWaves('ro-x', [...ids].reverse(), plan));
    const per = [0, 1, 2, 3].map((w) => [...a.values()].filter((x) => x === w).length);
    assert.deepEqual(per, [2, 18, 80, 100]);
    assert.equal(waveForLateJoiner('ro-x', 'late', plan, 200), waveForLateJoiner('ro-x', 'late', plan, 200));
  });

  test('a wave is promoted once enough devices have soaked, and pauses when it ends below the ratio', () => {
    const members = { a: 0, b: 0, c: 1 };
    const r = rollout({ members, plan: { unit: 'count', sizes: [2, 3] }, policy: { soakSeconds: 60, minSuccessRatio: 1 } });
    const online = (id: string) => device(id, '1.0.0');
    assert.deepEqual(r.evaluateWave(online, T0), { action: 'wait' });
    r.recordAttempt('a', { id: 'ua', state: 'succeeded', retry: 0, finishedAt: T0 });
    r.recordAttempt('b', { id: 'ub', state: 'succeeded', retry: 0, finishedAt: T0 });
    assert.deepEqual(r.evaluateWave(online, T0 + 59_999), { action: 'wait' }, 'still soaking');
    assert.deepEqual(r.evaluateWave(online, T0 + 60_000), { action: 'promote' });
    r.currentWave = 1;
    r.recordAttempt('c', { id: 'uc', state: 'failed', retry: 0, finishedAt: T0 });
    const verdict = r.evaluateWave(online, T0 + 120_000);
    assert.equal(verdict.action, 'pause');
  });

  test('failure thresholds count failures over finished attempts', () => {
    assert.equal(failureThresholdReached({ count: 2 }, 1, 10), false);
    assert.equal(failureThresholdReached({ count: 2 }, 2, 10), true);
    assert.equal(failureThresholdReached({ percent: 50, minSample: 4 }, 2, 3), false, 'below the sample');
    assert.equal(failureThresholdReached({ percent: 50, minSample: 4 }, 2, 4), true);
    const r = rollout({ members: { a: 0, b: 0 }, policy: { failureThreshold: { count: 1 } } });
    assert.equal(r.failureThresholdReason(), null);
    r.recordAttempt('a', { id: 'ua', state: 'rejected', retry: 0, finishedAt: T0 });
    assert.match(r.failureThresholdReason() ?? '', /1 of 1/, 'a rejected image counts as a failure');
  });

  test('maintenance windows, including one across midnight', () => {
    const at = (hhmm: string) => new Date(`2026-12-03T${hhmm}:00Z`);
    assert.equal(withinWindow(at('02:00'), { start: '01:00', end: '03:00' }), true);
    assert.equal(withinWindow(at('03:00'), { start: '01:00', end: '03:00' }), false);
    assert.equal(withinWindow(at('23:30'), { start: '23:00', end: '02:00' }), true);
    assert.equal(withinWindow(at('01:59'), { start: '23:00', end: '02:00' }), true);
    assert.equal(withinWindow(at('12:00'), { start: '23:00', end: '02:00' }), false);
    assert.equal(withinWindow(at('12:00'), null), true);
  });
});

describe('reports move an attempt forward only', () => {
  test('advance, progress, duplicates, out-of-order and final', () => {
    assert.deepEqual(applyReport({ state: 'sent', progress: null }, { state: 'accepted' }), { kind: 'advance', state: 'accepted', progress: null });
    assert.deepEqual(applyReport({ state: 'accepted', progress: null }, { state: 'downloading', progress: 10.4 }), { kind: 'advance', state: 'downloading', progress: 10 });
    assert.deepEqual(applyReport({ state: 'downloading', progress: 10 }, { state: 'downloading', progress: 50 }), { kind: 'progress', progress: 50 });
    assert.deepEqual(applyReport({ state: 'downloading', progress: 50 }, { state: 'downloading', progress: 50 }), { kind: 'ignore', why: 'duplicate' });
    assert.deepEqual(applyReport({ state: 'rebooting', progress: 100 }, { state: 'accepted' }), { kind: 'ignore', why: 'out-of-order' });
    assert.deepEqual(applyReport({ state: 'succeeded', progress: 100 }, { state: 'failed' }), { kind: 'ignore', why: 'final' });
  });
});
