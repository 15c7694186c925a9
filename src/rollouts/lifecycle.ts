// Each rollout's lifecycle: creation, the schedule, waves and their promotion, the failure
// threshold, attempt timeouts, and the operator's pause, resume and cancel.
//
// Decisions are taken on committed state (a rollout's counters move only when attempt changes are
// committed) and recorded with the group commit, in the same transaction as the attempt changes
// they carry (the cancellations of a cancel). The transition itself is guarded in SQL: it applies
// only from the state and wave it was decided in, and `completed` only while the database holds no
// open attempt of the rollout. Memory follows only what applied; after a kill -9 the state rebuilt
// at start is the database's.
import { randomUUID } from 'node:crypto';
import type { FleetRepository, RolloutChanges, RolloutRecord, RolloutTransition } from '../db/fleet-repository.js';
import type { FleetEvents } from '../events.js';
import type { FirmwareCatalog } from '../firmware/catalog.js';
import type { DeviceRegistry } from '../fleet/device-registry.js';
import type { Logger } from '../logger.js';
import { ActiveRollout, emptyWaveStats, type WaveStats } from './active-rollout.js';
import { isFinalRolloutState, isTerminal, notStarted, OPEN_STATES, type ActiveState, type AttemptState, type FinalState, type RolloutState } from './states.js';
import type { AttemptTracker } from './attempts.js';
import type { LiveRollouts } from './live-rollouts.js';
import { DEFAULT_POLICY, policyFrom, type RolloutPolicy } from './policy.js';
import { RolloutError, validateRequest, type RolloutRequest } from './rollout-request.js';
import { applyChanges, planEdit, planRetry, type RolloutEdit } from './rollout-edits.js';
import { describeWave, type WaveWait } from './wave-deadline.js';
import { matchesTargeting, type Targeting } from './targeting.js';
import { TurnPacer } from './turn-pacer.js';
import type { UpdateEngine } from './update-engine.js';
import { assignWaves, SINGLE_WAVE, waveHash, type WavePlan } from './waves.js';

export interface RolloutProgress {
  rolloutId: string;
  state: string;
  reason: string | null;
  /** Current wave (0-based) and how many there are. */
  wave: number;
  waves: number;
  /** Devices in the target set. */
  targets: number | null;
  /** Attempts per state, as committed. */
  counts: Record<AttemptState, number>;
  at: Date;
}

export class RolloutLifecycle {
  private readonly log: Logger;
  private timer: NodeJS.Timeout | null = null;
  private ticking = false;
  /** One operation at a time per rollout: a tick's decision and an operator's command never race. */
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(private readonly deps: {
    repository: FleetRepository;
    registry: DeviceRegistry;
    catalog: FirmwareCatalog;
    attempts: AttemptTracker;
    rollouts: LiveRollouts;
    engine: UpdateEngine;
    events: FleetEvents;
    logger: Logger;
    /** How often rollouts are re-evaluated (waves, timeouts, schedule, rate-limited sends). */
    tickMs?: number;
    now?: () => number;
    /** Shared with the update engine (turn-pacer.ts): a tick over 20,000 members runs in slices. */
    pacer?: TurnPacer;
  }) {
    this.log = deps.logger.child({ component: 'rollouts' });
    this.pacer = deps.pacer ?? new TurnPacer();
  }

  private readonly pacer: TurnPacer;

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /** Rebuilds the in-memory state from the database: active rollouts, their members and attempts, attempts in flight. */
  async load(): Promise<void> {
    const { repository, rollouts, attempts } = this.deps;
    for (const r of await repository.loadActiveRollouts()) rollouts.add(this.fromRecord(r));
    await this.loadAttempts(rollouts.all().map((r) => r.id), true);
    this.log.info({ active: rollouts.size, inFlight: attempts.size }, 'rollouts loaded');
  }

  /**
   * Reloads everything from the database (another instance changed it while this one may have
   * missed the news: the change feed reconnected, or this instance just took over the ticks).
   */
  async reload(): Promise<void> {
    await this.deps.repository.durable(); // this instance's own changes first
    const records = await this.deps.repository.loadActiveRollouts();
    const fresh = new Set(records.map((r) => r.id));
    for (const r of this.deps.rollouts.all()) if (!fresh.has(r.id)) this.deps.rollouts.remove(r.id);
    for (const r of records) this.deps.rollouts.add(this.fromRecord(r));
    await this.loadAttempts(records.map((r) => r.id), false);
  }

  /** A rollout another instance created. */
  async loadCreated(id: string): Promise<void> {
    if (this.deps.rollouts.get(id)) return;
    const record = await this.deps.repository.loadRollout(id);
    if (!record || this.deps.rollouts.get(id)) return;
    const rollout = this.fromRecord(record);
    this.deps.rollouts.add(rollout);
    await this.loadAttempts([id], false);
    this.deps.events.asRemote(() => this.deps.events.emit('rollout', { rolloutId: id, state: rollout.state, previousState: null, wave: rollout.currentWave, reason: rollout.reason, actor: null, at: rollout.createdAt }));
  }

  /** Reads a rollout back from the tables: another instance changed more of it than one feed message holds. */
  async refresh(id: string): Promise<void> {
    const { repository, rollouts, events } = this.deps;
    const before = rollouts.get(id);
    if (!before) return;
    const record = await repository.loadRollout(id);
    const header = record ? null : await repository.rolloutHeader(id);
    let event = { rolloutId: id, state: header?.state ?? before.state, previousState: before.state as string | null, wave: before.currentWave, reason: before.reason, actor: null, at: new Date(this.now()) };
    if (record) {
      const rollout = this.fromRecord(record);
      rollouts.add(rollout);
      await this.loadAttempts([id], false);
      event = { ...event, state: rollout.state, wave: rollout.currentWave, reason: rollout.reason };
    } else rollouts.remove(id);
    events.asRemote(() => events.emit('rollout', event));
  }

  /** A rollout transition another instance committed. */
  applyCommitted(t: RolloutTransition): void {
    const r = this.deps.rollouts.get(t.rolloutId);
    // A steering command (an edit, a retry) may keep the state and wave and change only settings.
    if (!r || (r.state === t.to.state && r.currentWave === t.to.wave && !t.changes)) return;
    const previousState = r.state;
    if (!t.changes?.keepReason) r.reason = t.reason;
    r.currentWave = t.to.wave;
    applyChanges(r, t.changes);
    if (isFinalRolloutState(t.to.state)) this.deps.rollouts.remove(r.id);
    else r.state = t.to.state as ActiveState;
    this.deps.events.emit('rollout', { rolloutId: r.id, state: t.to.state, previousState, wave: t.to.wave, reason: t.reason, actor: t.actor, at: t.at });
  }

  private fromRecord(r: RolloutRecord): ActiveRollout {
    const firmware = this.deps.catalog.getAny(r.firmwareId)!;
    const targeting: Targeting = { type: firmware.type, deviceIds: r.deviceIds.length ? new Set(r.deviceIds) : null, tags: r.targetTags, versionRange: r.versionRange, channel: r.channel };
    const rollout = new ActiveRollout(r.id, firmware, targeting, (r.waves as WavePlan | null) ?? SINGLE_WAVE, policyFrom(r.policy),
      r.state as ActiveState, r.currentWave, r.reason, r.startAt, r.targets.length, r.createdAt);
    for (const t of r.targets) rollout.members.set(t.deviceId, { wave: t.wave, latest: null, unhealthy: false, retryUpTo: t.retryUpTo });
    rollout.acknowledged = { failures: r.acknowledgedFailures, finished: r.acknowledgedFinished };
    rollout.waveStartedAt = (r.waveStartedAt ?? r.createdAt).getTime();
    return rollout;
  }

  /** Counters and members' latest attempts of these rollouts, the attempts in flight, and the rate limits' recent sends. */
  private async loadAttempts(rolloutIds: string[], atStart: boolean): Promise<void> {
    const { repository, rollouts, attempts } = this.deps;
    const minuteAgo = this.now() - 60_000;
    const lastDispatch = new Map<string, number>(); // per rollout, within the last minute
    for (const a of await repository.loadAttempts(rolloutIds, atStart ? OPEN_STATES : [])) {
      const state = a.state as AttemptState;
      rollouts.get(a.rolloutId)?.recordAttempt(a.deviceId, { id: a.id, state, retry: a.retry, finishedAt: a.finishedAt?.getTime() ?? null });
      const at = a.createdAt.getTime();
      if (at > minuteAgo && at > (lastDispatch.get(a.rolloutId) ?? 0)) lastDispatch.set(a.rolloutId, at);
      if (atStart) { if (!isTerminal(state)) attempts.adopt(a); } else if (!isTerminal(state) || attempts.get(a.id)) attempts.applyCommitted(a);
    }
    for (const [id, at] of lastDispatch) rollouts.get(id)?.seedDispatches(at);
  }

  /**
   * Starts the periodic evaluation of rollouts. With several instances only the leader runs it
   * (src/cluster/leadership.ts); `stop()` when it no longer leads.
   */
  start(): void {
    this.timer ??= setInterval(() => void this.tick(), this.deps.tickMs ?? 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Re-evaluates every active rollout: schedule, timeouts, failure threshold, waves, pending sends. */
  async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      for (const r of this.deps.rollouts.all()) {
        try {
          await this.serially(r.id, () => this.evaluate(r));
        } catch (err) {
          this.log.error({ err, rolloutId: r.id }, 'rollout evaluation failed');
        }
      }
    } finally {
      this.ticking = false;
    }
  }

  // ── operator commands ───────────────────────────────────────────────────────

  async createRollout(req: RolloutRequest): Promise<{ id: string; commanded: number }> {
    const { repository, catalog, registry } = this.deps;
    const firmware = await catalog.find(req.firmwareId);
    if (!firmware) throw new RolloutError(404, `firmware ${req.firmwareId} not found`);
    const policy: RolloutPolicy = { ...DEFAULT_POLICY, ...req.policy };
    const plan = validateRequest(req, policy);
    const deviceIds = req.deviceIds ? [...new Set(req.deviceIds)] : null;
    if (deviceIds) {
      const unknown = deviceIds.filter((id) => !registry.get(id));
      if (unknown.length) throw new RolloutError(400, `unknown devices: ${unknown.slice(0, 20).join(', ')}`, { unknown });
      const otherType = deviceIds.filter((id) => registry.get(id)!.type !== firmware.type);
      if (otherType.length) throw new RolloutError(400, `devices of another type than ${firmware.type}: ${otherType.slice(0, 20).join(', ')}`, { otherType });
    }
    const targeting: Targeting = { type: firmware.type, deviceIds: deviceIds ? new Set(deviceIds) : null, tags: req.tags ?? [], versionRange: req.versionRange ?? null, channel: req.channel ?? null };
    const initial = registry.ofType(firmware.type).filter((d) => matchesTargeting(targeting, d)).map((d) => d.id);
    const id = `ro_${randomUUID()}`;
    const hashes: number[] = [];
    for (const deviceId of initial) { // 20,000 hashes, a few ms of them per turn of the event loop
      const later = this.pacer.turn();
      if (later) await later;
      hashes.push(waveHash(id, deviceId));
    }
    const waves = assignWaves(id, initial, plan, hashes);
    const now = new Date(this.now());
    const state: ActiveState = req.startAt && req.startAt > now ? 'scheduled' : 'running';
    const reason = state === 'scheduled' ? `starts at ${req.startAt!.toISOString()}` : 'started';
    await repository.createRollout({
      id, name: req.name ?? null, firmwareId: firmware.id, state, deviceIds: deviceIds ?? [], targetTags: [...targeting.tags],
      versionRange: targeting.versionRange, channel: targeting.channel, waves: plan, policy, startAt: req.startAt ?? null, reason,
      createdBy: req.createdBy ?? null, createdAt: now,
    }, waves);
    const rollout = new ActiveRollout(id, firmware, targeting, plan, policy, state, 0, reason, req.startAt ?? null, initial.length, now);
    for (const [deviceId, wave] of waves) rollout.members.set(deviceId, { wave, latest: null, unhealthy: false });
    rollout.waveStartedAt = now.getTime();
    this.deps.rollouts.add(rollout);
    this.deps.events.emit('rollout', { rolloutId: id, state, previousState: null, wave: 0, reason, actor: req.createdBy ?? null, at: now });
    this.log.info({ rolloutId: id, firmwareId: firmware.id, type: firmware.type, version: firmware.version, targets: initial.length, waves: plan.sizes, state }, 'rollout created');
    const commanded = state === 'running' && !repository.saturated ? await this.deps.engine.dispatchReady(rollout) : 0;
    return { id, commanded };
  }

  pauseRollout(id: string, actor: string): Promise<void> {
    return this.command(id, async (r) => {
      if (r.state === 'paused') throw new RolloutError(409, `rollout ${id} is already paused`);
      await this.move(r, 'paused', r.currentWave, `paused by ${actor}`, actor);
    });
  }

  resumeRollout(id: string, actor: string): Promise<void> {
    return this.command(id, async (r) => {
      if (r.state !== 'paused') throw new RolloutError(409, `rollout ${id} is ${r.state}, not paused`);
      const next: ActiveState = r.startAt && r.startAt.getTime() > this.now() ? 'scheduled' : 'running';
      // Resuming acknowledges the failures so far: the threshold counts from here (rollout-edits.ts).
      const tally = r.failureTally();
      const acknowledged = tally.failures > r.acknowledged.failures ? ` (acknowledging ${tally.failures - r.acknowledged.failures} failure(s))` : '';
      // A wave settled below its success ratio would pause again at the next tick: resuming accepts
      // its result and goes on (a retry granted before the resume reopens the wave instead).
      if (next === 'running' && r.evaluateWave((d) => this.deps.registry.get(d), this.now()).action === 'pause') {
        const accepted = `resumed by ${actor}${acknowledged}, accepting wave ${r.currentWave + 1} as it finished`;
        if (r.currentWave >= r.lastWave) { await this.finish(r, 'completed', `${accepted}: every wave finished`, actor); return; }
        if (await this.move(r, 'running', r.currentWave + 1, `${accepted}: wave ${r.currentWave + 2} of ${r.plan.sizes.length} started`, actor, { acknowledged: tally })) await this.deps.engine.dispatchReady(r);
        return;
      }
      if (await this.move(r, next, r.currentWave, `resumed by ${actor}${acknowledged}`, actor, { acknowledged: tally }) && next === 'running') await this.deps.engine.dispatchReady(r);
    });
  }

  /** Changes settings of a scheduled, running or paused rollout; returns what changed. */
  editRollout(id: string, edit: RolloutEdit, actor: string): Promise<string[]> {
    return this.command(id, async (r) => {
      const planned = planEdit(r, edit);
      if (!planned.summary.length) return [];
      await this.steer(r, r.state, r.currentWave, `settings edited by ${actor}: ${planned.summary.join('; ')}`, actor, planned.changes);
      if (r.state === 'running' && !this.deps.repository.saturated) await this.deps.engine.dispatchReady(r);
      return planned.summary;
    });
  }

  /** New attempts for the devices whose latest attempt failed, timed out or rolled back; returns how many. */
  retryFailed(id: string, actor: string): Promise<number> {
    return this.command(id, async (r) => {
      const members = planRetry(r, (deviceId) => !!this.deps.attempts.ofDevice(deviceId));
      if (!members.length) throw new RolloutError(409, `rollout ${id} has no failed, timed out or rolled back device to retry`);
      const names = members.slice(0, 5).map((m) => m.deviceId).join(', ') + (members.length > 5 ? ', …' : '');
      await this.steer(r, r.state, r.currentWave, `retry of ${members.length} failed device(s) by ${actor}: ${names}`, actor, { members, keepReason: true });
      if (r.state === 'running' && !this.deps.repository.saturated) await this.deps.engine.dispatchReady(r);
      return members.length;
    });
  }

  /** Starts the next wave now, whatever the current one's standing; a paused rollout stays paused. */
  promoteRollout(id: string, actor: string): Promise<void> {
    return this.command(id, async (r) => {
      if (r.currentWave >= r.lastWave) throw new RolloutError(409, `rollout ${id} is in its last wave (${r.currentWave + 1} of ${r.plan.sizes.length})`);
      if (r.state === 'scheduled') throw new RolloutError(409, `rollout ${id} has not started`);
      // A paused rollout keeps the reason it is paused for; the history records the promotion.
      await this.steer(r, r.state, r.currentWave + 1, `wave ${r.currentWave + 2} of ${r.plan.sizes.length} started by ${actor} (promoted by hand)`, actor,
        r.state === 'paused' ? { keepReason: true } : undefined);
      if (r.state === 'running' && !this.deps.repository.saturated) await this.deps.engine.dispatchReady(r);
    });
  }

  /** A steering command's transition; 409 when the rollout moved meanwhile (memory then has the database's state). */
  private async steer(r: ActiveRollout, state: ActiveState, wave: number, reason: string, actor: string, changes?: RolloutChanges): Promise<void> {
    if (!await this.move(r, state, wave, reason, actor, changes)) throw new RolloutError(409, `rollout ${r.id} changed meanwhile (now ${r.state}, wave ${r.currentWave + 1}); try again`);
  }

  cancelRollout(id: string, actor: string): Promise<void> {
    return this.command(id, (r) => this.finish(r, 'cancelled', `cancelled by ${actor}`, actor));
  }

  // ── read model ──────────────────────────────────────────────────────────────

  /** A rollout's progress summary (what the retained MQTT topic, metrics and the dashboard show). */
  async progress(rolloutId: string): Promise<RolloutProgress | null> {
    const r = this.deps.rollouts.get(rolloutId);
    if (r) {
      return { rolloutId, state: r.state, reason: r.reason, wave: r.currentWave, waves: r.plan.sizes.length, targets: r.members.size, counts: { ...r.counts }, at: new Date(this.now()) };
    }
    const summary = await this.deps.repository.rolloutSummary(rolloutId);
    return summary && { rolloutId, ...summary, at: new Date(this.now()) };
  }

  /** Live per-wave standing of an active rollout (null when it is finished). */
  waveStandings(rolloutId: string): WaveStats[] | null {
    const r = this.deps.rollouts.get(rolloutId);
    if (!r) return null;
    const now = this.now();
    return r.plan.sizes.map((_, i) => r.waveStats(i, (id) => this.deps.registry.get(id), now));
  }

  /** What the current wave of an active rollout is waiting for (null when it is finished). */
  waveWait(rolloutId: string): WaveWait | null {
    const r = this.deps.rollouts.get(rolloutId);
    if (!r) return null;
    return describeWave(r, (id) => this.deps.registry.get(id), (id) => {
      const a = this.deps.attempts.ofDevice(id);
      return a?.rolloutId === rolloutId ? a.state : undefined;
    }, this.now());
  }

  /** Where each member of an active rollout stands (null when it is finished). */
  memberStandings(rolloutId: string): Map<string, 'healthy' | 'failed' | 'skipped' | 'open'> | null {
    const r = this.deps.rollouts.get(rolloutId);
    if (!r) return null;
    const now = this.now();
    return new Map([...r.members].map(([id, m]) => [id, r.outcome(m, this.deps.registry.get(id), now)]));
  }

  isFirmwareInUse(firmwareId: string): boolean {
    return this.deps.rollouts.all().some((r) => r.firmware.id === firmwareId);
  }

  runningCount(): number {
    return this.deps.rollouts.all().filter((r) => r.state === 'running').length;
  }

  // ── internals ───────────────────────────────────────────────────────────────

  private async command<T>(id: string, run: (r: ActiveRollout) => Promise<T>): Promise<T> {
    return this.serially(id, async () => {
      const r = this.deps.rollouts.get(id);
      if (r) return run(r);
      const header = await this.deps.repository.rolloutHeader(id);
      if (!header) throw new RolloutError(404, `rollout ${id} not found`);
      throw new RolloutError(409, `rollout ${id} is ${header.state}`);
    });
  }

  private serially<T>(id: string, run: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(id) ?? Promise.resolve();
    const next = previous.then(run, run);
    const settled = next.catch(() => undefined);
    this.queues.set(id, settled);
    void settled.then(() => { if (this.queues.get(id) === settled) this.queues.delete(id); });
    return next;
  }

  private async evaluate(r: ActiveRollout): Promise<void> {
    if (this.deps.rollouts.get(r.id) !== r) return;
    const now = this.now();
    if (r.state === 'scheduled' && r.startAt && r.startAt.getTime() <= now) await this.move(r, 'running', r.currentWave, 'start time reached', null);
    if (r.state !== 'running') return;
    const timeout = r.policy.attemptTimeoutSeconds;
    if (timeout !== null) {
      for (const a of this.deps.attempts.ofRollout(r.id)) {
        if (now - this.deps.engine.deferrals.lastActivity(a) > timeout * 1000) {
          void this.deps.attempts.move(a, 'timed_out', { error: 'timed-out', reason: `no progress for ${timeout} s in state ${a.state}` });
        }
      }
    }
    const failure = r.failureThresholdReason();
    if (failure) {
      if (r.policy.onFailureThreshold === 'abort') await this.finish(r, 'aborted', failure, null);
      else await this.move(r, 'paused', r.currentWave, failure, null);
      return;
    }
    for (;;) {
      const verdict = r.verdict(await this.currentWaveStats(r, now));
      if (verdict.action === 'wait') break;
      if (verdict.action === 'pause') { await this.move(r, 'paused', r.currentWave, verdict.reason, null); return; }
      if (verdict.action === 'complete') { await this.finish(r, 'completed', 'every wave finished', null); return; }
      if (!await this.move(r, 'running', r.currentWave + 1, `wave ${r.currentWave + 2} of ${r.plan.sizes.length} started`, null)) return;
    }
    // While the database is down or the backlog full, no new commands: they could not be recorded.
    if (!this.deps.repository.saturated) await this.deps.engine.dispatchReady(r);
  }

  /** The current wave's standing, counted a few ms per turn of the event loop (at 10,000 members one count held it ~50 ms). */
  private async currentWaveStats(r: ActiveRollout, now: number): Promise<WaveStats> {
    const stats = emptyWaveStats(r.currentWave);
    for (const [id, m] of r.members) {
      const later = this.pacer.turn();
      if (later) await later;
      if (m.wave === stats.index) r.countMember(stats, m, this.deps.registry.get(id), now);
    }
    return stats;
  }

  /** Ends a rollout; devices that have not started are told, attempts in flight finish and are recorded. */
  private async finish(r: ActiveRollout, state: FinalState, reason: string, actor: string | null): Promise<void> {
    // Queued before the transition, so they commit with it (or before it): the final rollout event already counts them.
    const notYet = state === 'completed' ? [] : this.deps.attempts.ofRollout(r.id).filter((a) => notStarted(a.state));
    for (const a of notYet) void this.deps.attempts.move(a, 'cancelled', { reason: `rollout ${state}` });
    if (await this.move(r, state, r.currentWave, reason, actor)) await Promise.all(notYet.map((a) => this.deps.engine.cancel(a)));
  }

  /**
   * Records a state or wave change with its reason through the group commit, then applies it.
   * When it does not apply (the database holds another state, or an open attempt for `completed`),
   * memory takes the database's state instead; says whether it applied.
   */
  private async move(r: ActiveRollout, state: RolloutState, wave: number, reason: string, actor: string | null, steering?: RolloutChanges): Promise<boolean> {
    const previousState = r.state;
    const at = new Date(this.now());
    const final = isFinalRolloutState(state);
    // A new wave, or running again: the wave's deadline for unreachable devices counts from now.
    const changes = !final && (wave !== r.currentWave || (state === 'running' && r.state !== 'running')) ? { ...steering, waveStartedAt: at } : steering;
    const applied = await this.deps.repository.transition({
      rolloutId: r.id, from: { state: r.state, wave: r.currentWave }, to: { state, wave }, reason, actor, at, final, changes,
    });
    if (!applied) {
      await this.resync(r);
      return false;
    }
    if (!changes?.keepReason) r.reason = reason;
    r.currentWave = wave;
    applyChanges(r, changes);
    if (final) this.deps.rollouts.remove(r.id);
    else r.state = state as ActiveState;
    this.log.info({ rolloutId: r.id, state, wave, reason }, 'rollout state');
    this.deps.events.emit('rollout', { rolloutId: r.id, state, previousState, wave, reason, actor, at });
    return true;
  }

  private async resync(r: ActiveRollout): Promise<void> {
    const header = await this.deps.repository.rolloutHeader(r.id);
    if (!header || isFinalRolloutState(header.state)) {
      this.deps.rollouts.remove(r.id);
      return;
    }
    if (header.state !== r.state || header.currentWave !== r.currentWave) {
      this.log.warn({ rolloutId: r.id, memory: { state: r.state, wave: r.currentWave }, database: header }, 'rollout state taken from the database');
    }
    r.state = header.state as ActiveState;
    r.currentWave = header.currentWave;
    r.reason = header.reason;
  }
}
