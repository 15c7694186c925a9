// The heart of mqota: answers announces, dispatches update commands, tracks attempts from device
// status reports, and runs each rollout's lifecycle (schedule, waves, soak, rate limit, failure
// threshold, timeouts, retries, maintenance window). Everything on the per-message path reads the
// in-memory index; attempts are written behind (group commit), rollout state changes at once.
// The database is the truth at start-up.
import { randomUUID } from 'node:crypto';
import semver from 'semver';
import type { AttemptEventRow, AttemptRow, WriteBehind } from '../db/write-behind.js';
import type { FleetEvents } from '../events.js';
import type { Firmware, FirmwareCatalog } from '../firmware/catalog.js';
import type { Device, DeviceRegistry } from '../fleet/device-registry.js';
import type { PrismaClient } from '../generated/prisma/client.js';
import type { Logger } from '../logger.js';
import { parseAnnounce, parseStatus, type Command, type NoneReason, type StatusReport } from '../protocol/messages.js';
import { ActiveRollout, type ActiveState, type FinalState, type Member, type RolloutState, type WaveStats } from './active-rollout.js';
import { applyReport, isTerminal, notStarted, TERMINAL_STATES, type AttemptState } from './attempt-state.js';
import { countAttempts } from './attempt-counts.js';
import { CommandPacer } from './command-pacer.js';
import { alreadyThere } from './eligibility.js';
import { DEFAULT_POLICY, policyFrom, validWindow, type RolloutPolicy } from './policy.js';
import { matchesTargeting, type Targeting } from './targeting.js';
import { assignWaves, SINGLE_WAVE, waveForLateJoiner, type WavePlan } from './waves.js';

/** Where commands go: the broker in production. */
export interface CommandChannel {
  send(deviceId: string, command: Command): Promise<void>;
}

export interface RolloutRequest {
  firmwareId: string;
  name?: string;
  deviceIds?: string[];
  tags?: string[];
  versionRange?: string;
  channel?: string;
  /** Cumulative wave sizes (percentages, or counts with waveUnit 'count'). */
  waves?: number[];
  waveUnit?: 'percent' | 'count';
  startAt?: Date;
  policy?: Partial<RolloutPolicy>;
  createdBy?: string;
}

export interface RolloutProgress {
  rolloutId: string;
  state: string;
  reason: string | null;
  /** Current wave (0-based) and how many there are. */
  wave: number;
  waves: number;
  /** Devices in the target set now, when the rollout is active. */
  targets: number | null;
  /** Attempts per state. */
  counts: Record<AttemptState, number>;
  at: Date;
}

export class RolloutError extends Error {
  constructor(readonly statusCode: 400 | 404 | 409, message: string, readonly details?: unknown) { super(message); }
}

interface Attempt extends AttemptRow {
  state: AttemptState;
  /** Resolves once the attempt row is committed: no command goes out for an attempt the database does not know. */
  persisted: Promise<void>;
}

const TARGET_INSERT_CHUNK = 20_000;

const INSERT_TARGETS = `INSERT INTO "RolloutTarget" ("rolloutId", "deviceId", wave)
SELECT $1, x.d, x.w FROM json_to_recordset($2::json) AS x(d text, w integer)`;

export class RolloutEngine {
  private readonly active = new Map<string, ActiveRollout>();
  private readonly activeByDevice = new Map<string, Attempt>();
  private readonly pacer = new CommandPacer();
  private readonly activeById = new Map<string, Attempt>();
  private readonly log: Logger;
  private timer: NodeJS.Timeout | null = null;
  private ticking = false;

  constructor(private readonly deps: {
    prisma: PrismaClient;
    writes: WriteBehind;
    registry: DeviceRegistry;
    catalog: FirmwareCatalog;
    commands: CommandChannel;
    imageUrl: (sha256: string) => string;
    events: FleetEvents;
    logger: Logger;
    /** How often rollouts are re-evaluated (waves, timeouts, schedule, rate-limited sends). */
    tickMs?: number;
  }) {
    this.log = deps.logger.child({ component: 'rollouts' });
  }

  /** Rebuilds the index from the database: active rollouts, their members and attempts, attempts in flight. */
  async load(): Promise<void> {
    const { prisma, catalog } = this.deps;
    const rows = await prisma.rollout.findMany({ where: { state: { in: ['scheduled', 'running', 'paused'] } }, include: { targets: { select: { deviceId: true, wave: true } } } });
    for (const r of rows) {
      const rollout = new ActiveRollout(r.id, catalog.getAny(r.firmwareId)!, targetingOf(r, catalog.getAny(r.firmwareId)!), (r.waves as WavePlan | null) ?? SINGLE_WAVE,
        policyFrom(r.policy), r.state as ActiveState, r.currentWave, r.reason, r.startAt, r.targets.length, r.createdAt);
      for (const t of r.targets) rollout.members.set(t.deviceId, { wave: t.wave, latest: null, unhealthy: false });
      this.active.set(r.id, rollout);
    }
    const attempts = await prisma.updateAttempt.findMany({
      where: { OR: [{ rolloutId: { in: [...this.active.keys()] } }, { state: { notIn: [...TERMINAL_STATES] } }] },
      orderBy: { createdAt: 'asc' },
    });
    const minuteAgo = Date.now() - 60_000;
    const recent = new Map<string, number[]>();
    for (const a of attempts) {
      const state = a.state as AttemptState;
      this.active.get(a.rolloutId)?.recordAttempt(a.deviceId, { id: a.id, state, retry: a.retry, finishedAt: a.finishedAt?.getTime() ?? null }, null);
      if (a.createdAt.getTime() > minuteAgo) recent.set(a.rolloutId, [...(recent.get(a.rolloutId) ?? []), a.createdAt.getTime()]);
      if (!isTerminal(state)) this.track({ ...a, state, persisted: Promise.resolve() });
    }
    for (const [id, times] of recent) this.active.get(id)?.seedDispatches(times);
    this.log.info({ active: this.active.size, inFlight: this.activeById.size }, 'rollout index loaded');
  }

  /** Starts the periodic evaluation of rollouts. */
  start(): void {
    this.timer ??= setInterval(() => void this.tick(), this.deps.tickMs ?? 1000);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  // ── device messages ─────────────────────────────────────────────────────────

  async handleAnnounce(deviceId: string, payload: Buffer): Promise<void> {
    const parsed = parseAnnounce(payload);
    if (!parsed.ok) {
      this.log.warn({ deviceId, error: parsed.error }, 'announce rejected');
      this.deps.events.emit('rejection', { deviceId, kind: 'announce', error: parsed.error, at: new Date() });
      await this.send(deviceId, { action: 'none', reason: 'invalid-announce', error: parsed.error });
      return;
    }
    const device = this.deps.registry.recordAnnounce(deviceId, parsed.value, new Date()) as Device & { version: string };
    this.log.debug({ deviceId, type: device.type, version: device.version }, 'announce');
    this.deps.events.emit('announce', { deviceId, type: device.type, version: device.version, chip: device.chip, at: device.lastSeenAt! });

    const active = this.activeByDevice.get(deviceId);
    if (active && !this.settleByAnnounce(active, device)) {
      await this.resend(active); // still to do: the device gets the same command again (after a restart, a reconnect)
      return;
    }
    // Once per announce: the active rollouts of this type (usually one or none).
    const rollouts = this.rolloutsOfType(device.type);
    this.checkHealth(device, rollouts);
    await this.join(device, rollouts);
    const now = Date.now();
    const offers = rollouts.map((r) => ({ r, offer: r.offer(device, now) }));
    const best = offers.filter((o) => o.offer.ok).sort((a, b) => newestFirst(a.r, b.r))[0];
    if (best && best.offer.ok) {
      await this.dispatch(device, best.r, best.offer.retry);
      return;
    }
    let reason: NoneReason = this.deps.catalog.hasType(device.type) ? 'up-to-date' : 'unknown-type';
    const blocked = offers.filter((o) => !o.offer.ok && o.offer.reason !== 'not-targeted' && o.offer.reason !== 'up-to-date').sort((a, b) => newestFirst(a.r, b.r))[0];
    if (blocked && !blocked.offer.ok) reason = blocked.offer.reason;
    await this.send(deviceId, { action: 'none', reason });
  }

  async handleStatus(deviceId: string, payload: Buffer): Promise<void> {
    const parsed = parseStatus(payload);
    if (!parsed.ok) {
      this.log.warn({ deviceId, error: parsed.error }, 'status rejected');
      this.deps.events.emit('rejection', { deviceId, kind: 'status', error: parsed.error, at: new Date() });
      return;
    }
    const report = parsed.value;
    const attempt = this.activeById.get(report.updateId);
    if (!attempt) {
      await this.reportForUntracked(deviceId, report);
      return;
    }
    if (attempt.deviceId !== deviceId) {
      this.log.warn({ deviceId, updateId: report.updateId, owner: attempt.deviceId }, 'status for another device\'s update rejected');
      this.deps.events.emit('rejection', { deviceId, kind: 'status', error: 'updateId of another device', at: new Date() });
      return;
    }
    const t = applyReport(attempt, report);
    if (t.kind === 'ignore') {
      this.log.debug({ deviceId, updateId: attempt.id, state: report.state, current: attempt.state, why: t.why }, 'status ignored');
      return;
    }
    if (t.kind === 'progress') {
      this.transition(attempt, attempt.state, { progress: t.progress });
      return;
    }
    this.transition(attempt, t.state, { progress: t.progress, error: report.error ?? null, reason: report.reason ?? null });
    if (t.state === 'succeeded') this.deps.registry.recordVersion(deviceId, report.version ?? this.firmwareOf(attempt).version);
  }

  handlePresence(deviceId: string, online: boolean): void {
    const at = new Date();
    this.deps.registry.recordPresence(deviceId, online, at);
    this.deps.events.emit('presence', { deviceId, online, at });
  }

  /** Tags or channel changed: the device may now belong to running rollouts. */
  async deviceLabelsChanged(deviceId: string): Promise<void> {
    const device = this.deps.registry.get(deviceId);
    if (device?.version) await this.join(device, this.rolloutsOfType(device.type));
  }

  // ── operator actions ────────────────────────────────────────────────────────

  async createRollout(req: RolloutRequest): Promise<{ id: string; commanded: number }> {
    const { prisma, catalog, registry } = this.deps;
    const firmware = catalog.get(req.firmwareId);
    if (!firmware) throw new RolloutError(404, `firmware ${req.firmwareId} not found`);
    const policy: RolloutPolicy = { ...DEFAULT_POLICY, ...req.policy };
    const plan = this.validate(req, policy);
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
    const waves = assignWaves(id, initial, plan);
    const now = new Date();
    const state: ActiveState = req.startAt && req.startAt > now ? 'scheduled' : 'running';
    const reason = state === 'scheduled' ? `starts at ${req.startAt!.toISOString()}` : 'started';
    await this.deps.writes.flush(); // targets reference device rows, which may still be queued
    await prisma.$transaction(async (tx) => {
      await tx.rollout.create({
        data: {
          id, name: req.name ?? null, firmwareId: firmware.id, state, deviceIds: deviceIds ?? [], targetTags: targeting.tags as string[],
          versionRange: targeting.versionRange, channel: targeting.channel, waves: plan as object, policy: policy as object,
          startAt: req.startAt ?? null, reason, createdBy: req.createdBy ?? null, createdAt: now, updatedAt: now,
        },
      });
      // One set-based statement per chunk: createMany costs ~0.1 ms per row, this a fraction of it.
      const rows = [...waves].map(([deviceId, wave]) => ({ d: deviceId, w: wave }));
      for (let i = 0; i < rows.length; i += TARGET_INSERT_CHUNK) {
        await tx.$executeRawUnsafe(INSERT_TARGETS, id, JSON.stringify(rows.slice(i, i + TARGET_INSERT_CHUNK)));
      }
      await tx.rolloutEvent.create({ data: { rolloutId: id, state, wave: 0, reason, actor: req.createdBy ?? null, at: now } });
    }, { timeout: 60_000 });
    const rollout = new ActiveRollout(id, firmware, targeting, plan, policy, state, 0, reason, req.startAt ?? null, initial.length, now);
    for (const [deviceId, wave] of waves) rollout.members.set(deviceId, { wave, latest: null, unhealthy: false });
    this.active.set(id, rollout);
    this.deps.events.emit('rollout', { rolloutId: id, state, previousState: null, wave: 0, reason, actor: req.createdBy ?? null, at: now });
    this.log.info({ rolloutId: id, firmwareId: firmware.id, type: firmware.type, version: firmware.version, targets: initial.length, waves: plan.sizes, state }, 'rollout created');
    const commanded = state === 'running' ? await this.dispatchReady(rollout) : 0;
    return { id, commanded };
  }

  async pauseRollout(id: string, actor: string): Promise<void> {
    const r = await this.activeOr404(id);
    if (r.state === 'paused') throw new RolloutError(409, `rollout ${id} is already paused`);
    await this.setState(r, 'paused', `paused by ${actor}`, actor);
  }

  async resumeRollout(id: string, actor: string): Promise<void> {
    const r = await this.activeOr404(id);
    if (r.state !== 'paused') throw new RolloutError(409, `rollout ${id} is ${r.state}, not paused`);
    const next: ActiveState = r.startAt && r.startAt.getTime() > Date.now() ? 'scheduled' : 'running';
    await this.setState(r, next, `resumed by ${actor}`, actor);
    if (next === 'running') await this.dispatchReady(r);
  }

  async cancelRollout(id: string, actor: string): Promise<void> {
    const r = await this.activeOr404(id);
    await this.finish(r, 'cancelled', `cancelled by ${actor}`, actor);
  }

  /** A rollout's progress summary (what the retained MQTT topic and the dashboard show). */
  async progress(rolloutId: string): Promise<RolloutProgress | null> {
    const r = this.active.get(rolloutId);
    if (r) {
      return { rolloutId, state: r.state, reason: r.reason, wave: r.currentWave, waves: r.plan.sizes.length, targets: r.members.size, counts: { ...r.counts }, at: new Date() };
    }
    const { prisma, writes } = this.deps;
    await writes.flush();
    const row = await prisma.rollout.findUnique({ where: { id: rolloutId }, select: { state: true, reason: true, currentWave: true, waves: true, _count: { select: { targets: true } } } });
    if (!row) return null;
    const counts = await countAttempts(prisma, rolloutId);
    return { rolloutId, state: row.state, reason: row.reason, wave: row.currentWave, waves: (row.waves as WavePlan | null)?.sizes.length ?? 1, targets: row._count.targets, counts, at: new Date() };
  }

  /** Live per-wave standing of an active rollout (null when it is finished). */
  waveStandings(rolloutId: string): WaveStats[] | null {
    const r = this.active.get(rolloutId);
    if (!r) return null;
    const now = Date.now();
    return r.plan.sizes.map((_, i) => r.waveStats(i, (id) => this.deps.registry.get(id), now));
  }

  isFirmwareInUse(firmwareId: string): boolean {
    for (const r of this.active.values()) if (r.firmware.id === firmwareId) return true;
    return false;
  }

  runningCount(): number {
    let n = 0;
    for (const r of this.active.values()) if (r.state === 'running') n++;
    return n;
  }

  /** Re-evaluates every active rollout: schedule, timeouts, failure threshold, waves, pending sends. */
  async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      for (const r of [...this.active.values()]) {
        try {
          await this.evaluate(r);
        } catch (err) {
          this.log.error({ err, rolloutId: r.id }, 'rollout evaluation failed');
        }
      }
    } finally {
      this.ticking = false;
    }
  }

  // ── internals ───────────────────────────────────────────────────────────────

  private validate(req: RolloutRequest, policy: RolloutPolicy): WavePlan {
    if (req.versionRange && !semver.validRange(req.versionRange)) throw new RolloutError(400, `versionRange '${req.versionRange}' is not a semver range`);
    if (policy.allowDowngrade && !policy.downgradeReason?.trim()) throw new RolloutError(400, 'allowDowngrade needs a downgradeReason');
    if (policy.maintenanceWindow && !validWindow(policy.maintenanceWindow)) throw new RolloutError(400, 'maintenanceWindow needs start and end as distinct HH:MM (UTC)');
    if (!req.waves) return SINGLE_WAVE;
    const unit = req.waveUnit ?? 'percent';
    const sizes = req.waves;
    if (!sizes.every((s, i) => s > 0 && (i === 0 || s > sizes[i - 1]))) throw new RolloutError(400, 'waves must be positive and strictly ascending (cumulative sizes)');
    if (unit === 'percent' && sizes[sizes.length - 1] !== 100) throw new RolloutError(400, 'percentage waves must end at 100');
    return { unit, sizes };
  }

  private async evaluate(r: ActiveRollout): Promise<void> {
    const now = Date.now();
    if (r.state === 'scheduled' && r.startAt && r.startAt.getTime() <= now) await this.setState(r, 'running', 'start time reached', null);
    if (r.state !== 'running') return;
    const timeout = r.policy.attemptTimeoutSeconds;
    if (timeout !== null) {
      for (const a of [...this.activeById.values()]) {
        if (a.rolloutId === r.id && now - a.updatedAt.getTime() > timeout * 1000) {
          this.transition(a, 'timed_out', { error: 'timed-out', reason: `no progress for ${timeout} s in state ${a.state}` });
        }
      }
    }
    const failure = r.failureThresholdReason();
    if (failure) {
      if (r.policy.onFailureThreshold === 'abort') await this.finish(r, 'aborted', failure, null);
      else await this.setState(r, 'paused', failure, null);
      return;
    }
    for (;;) {
      const verdict = r.evaluateWave((id) => this.deps.registry.get(id), now);
      if (verdict.action === 'wait') break;
      if (verdict.action === 'pause') { await this.setState(r, 'paused', verdict.reason, null); return; }
      if (verdict.action === 'complete') { await this.finish(r, 'completed', 'every wave finished', null); return; }
      r.currentWave++;
      await this.setState(r, 'running', `wave ${r.currentWave + 1} of ${r.plan.sizes.length} started`, null);
    }
    await this.dispatchReady(r);
  }

  /** Sends the update to every online member that may have it now; returns how many were sent. */
  private async dispatchReady(r: ActiveRollout): Promise<number> {
    if (r.state !== 'running') return 0;
    const now = Date.now();
    const sends: Promise<void>[] = [];
    for (const [deviceId, member] of r.members) {
      // Cheap checks first: this runs for every member on every tick.
      if (member.wave > r.currentWave || member.latest?.state === 'succeeded' || this.activeByDevice.has(deviceId)) continue;
      const device = this.deps.registry.get(deviceId);
      if (!device?.online || !device.version) continue;
      const offer = r.offer(device as Device & { version: string }, now);
      if (offer.ok) sends.push(this.dispatch(device, r, offer.retry));
      else if (offer.reason === 'rate-limited' || offer.reason === 'outside-maintenance-window') break;
    }
    await Promise.all(sends);
    return sends.length;
  }

  /** Adds the device to active rollouts whose target set it now matches (late joiners). */
  private async join(device: Device, rollouts: ActiveRollout[]): Promise<void> {
    for (const r of rollouts) {
      if (r.members.has(device.id) || !matchesTargeting(r.targeting, device)) continue;
      const wave = waveForLateJoiner(r.id, device.id, r.plan, r.initialTargets);
      const member: Member = { wave, latest: null, unhealthy: false };
      r.members.set(device.id, member);
      try {
        await this.deps.writes.flush(); // the device row may still be queued (its first announce)
        await this.deps.prisma.rolloutTarget.createMany({ data: [{ rolloutId: r.id, deviceId: device.id, wave }], skipDuplicates: true });
        this.log.info({ deviceId: device.id, rolloutId: r.id, wave }, 'device joined rollout');
      } catch (err) {
        r.members.delete(device.id);
        this.log.error({ err, deviceId: device.id, rolloutId: r.id }, 'could not add device to rollout');
      }
    }
  }

  /** A device that announces another version while its success soaks has not stayed healthy. */
  private checkHealth(device: Device & { version: string }, rollouts: ActiveRollout[]): void {
    for (const r of rollouts) {
      const m = r.members.get(device.id);
      if (m?.latest?.state === 'succeeded' && !m.unhealthy && !alreadyThere(r.firmware.version, device.version, r.policy.allowDowngrade)) {
        m.unhealthy = true;
        this.log.warn({ deviceId: device.id, rolloutId: r.id, version: device.version }, 'device left the new version after succeeding');
      }
    }
  }

  /** An announce can finish an attempt: the target version running means success, the old one after a reboot means rollback. */
  private settleByAnnounce(attempt: Attempt, device: Device & { version: string }): boolean {
    const target = this.firmwareOf(attempt).version;
    if (semver.eq(device.version, target)) {
      this.transition(attempt, 'succeeded', { reason: 'device announced the target version' });
      return true;
    }
    if (attempt.state === 'rebooting') {
      this.transition(attempt, 'rolled_back', { error: 'booted-previous-version', reason: `device announced ${device.version} after rebooting into ${target}` });
      return true;
    }
    return false;
  }

  private async dispatch(device: Device, rollout: ActiveRollout, retry: number): Promise<void> {
    const now = new Date();
    const attempt: Attempt = {
      id: `u_${randomUUID().replace(/-/g, '')}`, rolloutId: rollout.id, deviceId: device.id, firmwareId: rollout.firmware.id,
      fromVersion: device.version, retry, state: 'pending', progress: null, error: null, reason: null,
      createdAt: now, updatedAt: now, finishedAt: null, persisted: Promise.resolve(),
    };
    this.track(attempt);
    rollout.noteDispatch(now.getTime());
    rollout.recordAttempt(device.id, { id: attempt.id, state: 'pending', retry, finishedAt: null }, null);
    attempt.persisted = this.deps.writes.attempt(snapshot(attempt), event(attempt));
    this.emitAttempt(attempt, null);
    await this.resend(attempt);
  }

  private async resend(attempt: Attempt): Promise<void> {
    try {
      await attempt.persisted;
    } catch (err) {
      this.log.error({ err, deviceId: attempt.deviceId, updateId: attempt.id }, 'attempt not persisted; command withheld');
      return;
    }
    const fw = this.firmwareOf(attempt);
    await this.send(attempt.deviceId, {
      action: 'update', updateId: attempt.id, type: fw.type, version: fw.version, url: this.deps.imageUrl(fw.sha256), sha256: fw.sha256, size: fw.size,
    });
    if (attempt.state === 'pending') this.transition(attempt, 'sent', {});
  }

  private transition(attempt: Attempt, state: AttemptState, fields: { progress?: number | null; error?: string | null; reason?: string | null }): void {
    const now = new Date();
    const previousState = attempt.state;
    attempt.state = state;
    if (fields.progress !== undefined) attempt.progress = fields.progress;
    if (fields.error !== undefined) attempt.error = fields.error;
    if (fields.reason !== undefined) attempt.reason = fields.reason;
    attempt.updatedAt = now;
    if (isTerminal(state)) attempt.finishedAt = now;
    void this.deps.writes.attempt(snapshot(attempt), event(attempt));
    this.emitAttempt(attempt, previousState);
    if (previousState === state) return;
    this.log.info({ deviceId: attempt.deviceId, updateId: attempt.id, state, error: attempt.error ?? undefined }, 'update attempt');
    this.active.get(attempt.rolloutId)?.recordAttempt(attempt.deviceId,
      { id: attempt.id, state, retry: attempt.retry, finishedAt: attempt.finishedAt?.getTime() ?? null }, previousState);
    if (isTerminal(state)) {
      this.activeById.delete(attempt.id);
      if (this.activeByDevice.get(attempt.deviceId) === attempt) this.activeByDevice.delete(attempt.deviceId);
    }
  }

  private emitAttempt(a: Attempt, previousState: AttemptState | null): void {
    this.deps.events.emit('attempt', {
      updateId: a.id, rolloutId: a.rolloutId, deviceId: a.deviceId, firmwareId: a.firmwareId, retry: a.retry,
      state: a.state, previousState, progress: a.progress, error: a.error, reason: a.reason, at: a.updatedAt,
    });
  }

  private track(attempt: Attempt): void {
    this.activeById.set(attempt.id, attempt);
    this.activeByDevice.set(attempt.deviceId, attempt);
  }

  private firmwareOf(attempt: { firmwareId: string }): Firmware {
    return this.deps.catalog.getAny(attempt.firmwareId)!;
  }

  private rolloutsOfType(type: string): ActiveRollout[] {
    const out: ActiveRollout[] = [];
    for (const r of this.active.values()) if (r.firmware.type === type) out.push(r);
    return out;
  }

  private async activeOr404(id: string): Promise<ActiveRollout> {
    const r = this.active.get(id);
    if (r) return r;
    const row = await this.deps.prisma.rollout.findUnique({ where: { id }, select: { state: true } });
    if (!row) throw new RolloutError(404, `rollout ${id} not found`);
    throw new RolloutError(409, `rollout ${id} is ${row.state}`);
  }

  /** Persists a state (or wave) change with its reason, then applies it. */
  private async setState(r: ActiveRollout, state: RolloutState, reason: string, actor: string | null): Promise<void> {
    const previousState = r.state;
    const at = new Date();
    const final = state === 'completed' || state === 'cancelled' || state === 'aborted';
    await this.deps.prisma.$transaction([
      this.deps.prisma.rollout.update({ where: { id: r.id }, data: { state, reason, currentWave: r.currentWave, updatedAt: at, ...(final ? { finishedAt: at } : {}) } }),
      this.deps.prisma.rolloutEvent.create({ data: { rolloutId: r.id, state, wave: r.currentWave, reason, actor, at } }),
    ]);
    r.reason = reason;
    if (final) this.active.delete(r.id);
    else r.state = state as ActiveState;
    this.log.info({ rolloutId: r.id, state, wave: r.currentWave, reason }, 'rollout state');
    this.deps.events.emit('rollout', { rolloutId: r.id, state, previousState, wave: r.currentWave, reason, actor, at });
  }

  /** Ends a rollout; devices that have not started are told, attempts in flight finish and are recorded. */
  private async finish(r: ActiveRollout, state: FinalState, reason: string, actor: string | null): Promise<void> {
    // Attempts first, so the final rollout event already counts them as cancelled.
    const notYet = state === 'completed' ? [] : [...this.activeById.values()].filter((a) => a.rolloutId === r.id && notStarted(a.state));
    for (const a of notYet) this.transition(a, 'cancelled', { reason: `rollout ${state}` });
    await this.setState(r, state, reason, actor);
    await Promise.all(notYet.map((a) => this.send(a.deviceId, { action: 'cancel', updateId: a.id })));
  }

  /** A report for an attempt that is not in flight: a late duplicate of a finished one, or a forgery. */
  private async reportForUntracked(deviceId: string, report: StatusReport): Promise<void> {
    const known = await this.deps.prisma.updateAttempt.findUnique({ where: { id: report.updateId }, select: { deviceId: true, state: true } });
    if (known && known.deviceId === deviceId) {
      this.log.debug({ deviceId, updateId: report.updateId, state: report.state, final: known.state }, 'status for a finished update ignored');
    } else {
      this.log.warn({ deviceId, updateId: report.updateId, state: report.state }, 'status for an unknown updateId rejected');
      this.deps.events.emit('rejection', { deviceId, kind: 'status', error: 'unknown updateId', at: new Date() });
    }
  }

  private async send(deviceId: string, command: Command): Promise<void> {
    try {
      await this.pacer.slot();
      await this.deps.commands.send(deviceId, command);
      this.deps.events.emit('command', {
        deviceId, action: command.action, updateId: command.action === 'none' ? null : command.updateId,
        reason: command.action === 'none' ? command.reason : null, at: new Date(),
      });
    } catch (err) {
      this.log.warn({ err, deviceId, action: command.action }, 'command not published');
    }
  }
}

function targetingOf(r: { deviceIds: string[]; targetTags: string[]; versionRange: string | null; channel: string | null }, fw: Firmware): Targeting {
  return { type: fw.type, deviceIds: r.deviceIds.length ? new Set(r.deviceIds) : null, tags: r.targetTags, versionRange: r.versionRange, channel: r.channel };
}

/** Prefer the newest firmware; between equal versions, the older rollout. */
function newestFirst(a: ActiveRollout, b: ActiveRollout): number {
  return semver.compare(b.firmware.version, a.firmware.version) || a.createdAt.getTime() - b.createdAt.getTime();
}

function snapshot(a: Attempt): AttemptRow {
  return {
    id: a.id, rolloutId: a.rolloutId, deviceId: a.deviceId, firmwareId: a.firmwareId, fromVersion: a.fromVersion, retry: a.retry, state: a.state,
    progress: a.progress, error: a.error, reason: a.reason, createdAt: a.createdAt, updatedAt: a.updatedAt, finishedAt: a.finishedAt,
  };
}

function event(a: Attempt): AttemptEventRow {
  return { attemptId: a.id, state: a.state, progress: a.progress, error: a.error, reason: a.reason, at: a.updatedAt };
}
