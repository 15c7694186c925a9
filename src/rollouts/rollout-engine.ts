// The heart of mqota: answers announces, dispatches update commands, tracks attempts from device
// status reports, and runs the rollout lifecycle. Everything on the per-message path reads the
// in-memory index; the database is written behind (group commit) and is the truth at start-up.
import { randomUUID } from 'node:crypto';
import semver from 'semver';
import type { AttemptEventRow, AttemptRow, WriteBehind } from '../db/write-behind.js';
import type { FirmwareCatalog, Firmware } from '../firmware/catalog.js';
import type { Device, DeviceRegistry } from '../fleet/device-registry.js';
import type { PrismaClient } from '../generated/prisma/client.js';
import type { FleetEvents } from '../events.js';
import type { Logger } from '../logger.js';
import { parseAnnounce, parseStatus, type Command, type StatusReport } from '../protocol/messages.js';
import { applyReport, ATTEMPT_STATES, isTerminal, notStarted, TERMINAL_STATES, type AttemptState } from './attempt-state.js';
import { decideEligibility, targets, type TargetRollout } from './eligibility.js';

/** Where commands go: the broker in production. */
export interface CommandChannel {
  send(deviceId: string, command: Command): Promise<void>;
}

export type RolloutState = 'running' | 'completed' | 'cancelled';

interface RunningRollout extends TargetRollout {
  firmware: Firmware;
  /** Latest attempt state of each device that has one in this rollout. */
  attempts: Map<string, AttemptState>;
}

interface Attempt extends AttemptRow {
  state: AttemptState;
  /** Resolves once the attempt row is committed: no command goes out for an attempt the database does not know. */
  persisted: Promise<void>;
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

const COMPLETION_CHECK_DELAY_MS = 100;

export class RolloutEngine {
  private readonly running = new Map<string, RunningRollout>();
  private readonly activeByDevice = new Map<string, Attempt>();
  private readonly activeById = new Map<string, Attempt>();
  private readonly completionChecks = new Map<string, NodeJS.Timeout>();
  private readonly log: Logger;

  constructor(private readonly deps: {
    prisma: PrismaClient;
    writes: WriteBehind;
    registry: DeviceRegistry;
    catalog: FirmwareCatalog;
    commands: CommandChannel;
    imageUrl: (sha256: string) => string;
    events: FleetEvents;
    logger: Logger;
  }) {
    this.log = deps.logger.child({ component: 'rollouts' });
  }

  /** Rebuilds the index from the database: running rollouts, their attempts, attempts still in flight. */
  async load(): Promise<void> {
    const { prisma, catalog } = this.deps;
    for (const r of await prisma.rollout.findMany({ where: { state: 'running' } })) {
      const firmware = catalog.getAny(r.firmwareId)!;
      this.running.set(r.id, { id: r.id, createdAt: r.createdAt, firmware, targets: r.deviceIds.length ? new Set(r.deviceIds) : null, attempts: new Map() });
    }
    const attempts = await prisma.updateAttempt.findMany({
      where: { OR: [{ rolloutId: { in: [...this.running.keys()] } }, { state: { notIn: [...TERMINAL_STATES] } }] },
      orderBy: { createdAt: 'asc' },
    });
    for (const a of attempts) {
      this.running.get(a.rolloutId)?.attempts.set(a.deviceId, a.state as AttemptState);
      if (!isTerminal(a.state as AttemptState)) this.track({ ...a, state: a.state as AttemptState, persisted: Promise.resolve() });
    }
    this.log.info({ running: this.running.size, inFlight: this.activeById.size }, 'rollout index loaded');
    for (const id of this.running.keys()) this.scheduleCompletionCheck(id);
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
    const device = this.deps.registry.recordAnnounce(deviceId, parsed.value, new Date());
    this.log.debug({ deviceId, type: device.type, version: device.version }, 'announce');
    this.deps.events.emit('announce', { deviceId, type: device.type, version: device.version!, chip: device.chip, at: device.lastSeenAt! });

    const active = this.activeByDevice.get(deviceId);
    if (active && !this.settleByAnnounce(active, device)) {
      await this.resend(active); // still to do: the device gets the same command again (after a restart, a reconnect)
      return;
    }
    const decision = this.decide(device as Device & { version: string });
    if (decision.eligible) await this.dispatch(device, this.running.get(decision.rollout.id)!);
    else await this.send(deviceId, { action: 'none', reason: decision.reason });
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

  // ── operator actions ────────────────────────────────────────────────────────

  async createRollout(input: { firmwareId: string; deviceIds?: string[]; createdBy?: string }): Promise<{ id: string; commanded: number }> {
    const { prisma, catalog, registry } = this.deps;
    const firmware = catalog.get(input.firmwareId);
    if (!firmware) throw new RolloutError(404, `firmware ${input.firmwareId} not found`);
    const deviceIds = input.deviceIds ? [...new Set(input.deviceIds)] : null;
    if (deviceIds) {
      const unknown = deviceIds.filter((id) => !registry.get(id));
      if (unknown.length) throw new RolloutError(400, `unknown devices: ${unknown.slice(0, 20).join(', ')}`, { unknown });
      const otherType = deviceIds.filter((id) => registry.get(id)!.type !== firmware.type);
      if (otherType.length) throw new RolloutError(400, `devices of another type than ${firmware.type}: ${otherType.slice(0, 20).join(', ')}`, { otherType });
    }
    const row = await prisma.rollout.create({
      data: { id: `ro_${randomUUID()}`, firmwareId: firmware.id, state: 'running', deviceIds: deviceIds ?? [], createdBy: input.createdBy ?? null },
    });
    const rollout: RunningRollout = { id: row.id, createdAt: row.createdAt, firmware, targets: deviceIds ? new Set(deviceIds) : null, attempts: new Map() };
    this.running.set(rollout.id, rollout);
    this.deps.events.emit('rollout', { rolloutId: rollout.id, state: 'running', previousState: null, wave: 0, reason: null, actor: input.createdBy ?? null, at: row.createdAt });
    this.log.info({ rolloutId: rollout.id, firmwareId: firmware.id, type: firmware.type, version: firmware.version, targets: deviceIds?.length ?? 'all' }, 'rollout started');

    // Online targets get their command now; offline ones on their next announce.
    const online = (deviceIds ? deviceIds.map((id) => registry.get(id)!) : registry.ofType(firmware.type))
      .filter((d): d is Device & { version: string } => d.online && d.version !== null && !this.activeByDevice.has(d.id));
    let commanded = 0;
    await Promise.all(online.map(async (device) => {
      const decision = this.decide(device);
      if (decision.eligible && decision.rollout.id === rollout.id && !this.activeByDevice.has(device.id)) {
        commanded++;
        await this.dispatch(device, rollout);
      }
    }));
    this.scheduleCompletionCheck(rollout.id);
    return { id: rollout.id, commanded };
  }

  async cancelRollout(id: string, by?: string): Promise<void> {
    const rollout = this.running.get(id);
    if (!rollout) {
      const exists = await this.deps.prisma.rollout.findUnique({ where: { id }, select: { state: true } });
      if (!exists) throw new RolloutError(404, `rollout ${id} not found`);
      throw new RolloutError(409, `rollout ${id} is ${exists.state}`);
    }
    await this.finishRollout(rollout, 'cancelled', by ? `cancelled by ${by}` : 'cancelled');
    // Devices that have not started are told; attempts in flight finish and are recorded.
    await Promise.all([...this.activeById.values()].filter((a) => a.rolloutId === id && notStarted(a.state)).map(async (a) => {
      this.transition(a, 'cancelled', { reason: 'rollout cancelled' });
      await this.send(a.deviceId, { action: 'cancel', updateId: a.id });
    }));
  }

  /** A rollout's progress summary (what the retained MQTT topic and the dashboard show). */
  async progress(rolloutId: string): Promise<RolloutProgress | null> {
    const { prisma, writes } = this.deps;
    await writes.flush();
    const rollout = await prisma.rollout.findUnique({ where: { id: rolloutId }, select: { state: true, reason: true, currentWave: true, waves: true, firmwareId: true } });
    if (!rollout) return null;
    const groups = await prisma.updateAttempt.groupBy({ by: ['state'], where: { rolloutId }, _count: { _all: true } });
    const counts = Object.fromEntries(ATTEMPT_STATES.map((s) => [s, 0])) as Record<AttemptState, number>;
    for (const g of groups) counts[g.state as AttemptState] = g._count._all;
    const running = this.running.get(rolloutId);
    const targets = running ? (running.targets ? running.targets.size : this.deps.registry.ofType(running.firmware.type).length) : null;
    const waves = (rollout.waves as { sizes?: number[] } | null)?.sizes?.length ?? 1;
    return { rolloutId, state: rollout.state, reason: rollout.reason, wave: rollout.currentWave, waves, targets, counts, at: new Date() };
  }

  isFirmwareInUse(firmwareId: string): boolean {
    for (const r of this.running.values()) if (r.firmware.id === firmwareId) return true;
    return false;
  }

  runningCount(): number {
    return this.running.size;
  }

  close(): void {
    for (const t of this.completionChecks.values()) clearTimeout(t);
    this.completionChecks.clear();
  }

  // ── internals ───────────────────────────────────────────────────────────────

  private decide(device: Device & { version: string }) {
    return decideEligibility({
      device,
      rollouts: [...this.running.values()].filter((r) => r.firmware.type === device.type),
      catalogHasType: this.deps.catalog.hasType(device.type),
      attemptState: (rolloutId) => this.running.get(rolloutId)?.attempts.get(device.id),
    });
  }

  /** An announce can finish an attempt: the target version running means success, the old one after a reboot means rollback. */
  private settleByAnnounce(attempt: Attempt, device: Device): boolean {
    const target = this.firmwareOf(attempt).version;
    const running = device.version!;
    if (semver.eq(running, target)) {
      this.transition(attempt, 'succeeded', { reason: 'device announced the target version' });
      return true;
    }
    if (semver.gt(running, target)) {
      this.transition(attempt, 'cancelled', { reason: `device already runs ${running}, newer than ${target}` });
      return true;
    }
    if (attempt.state === 'rebooting') {
      this.transition(attempt, 'rolled_back', { error: 'booted-previous-version', reason: `device announced ${running} after rebooting into ${target}` });
      return true;
    }
    return false;
  }

  private async dispatch(device: Device, rollout: RunningRollout): Promise<void> {
    const now = new Date();
    const attempt: Attempt = {
      id: `u_${randomUUID().replace(/-/g, '')}`, rolloutId: rollout.id, deviceId: device.id, firmwareId: rollout.firmware.id,
      fromVersion: device.version, state: 'pending', progress: null, error: null, reason: null,
      createdAt: now, updatedAt: now, finishedAt: null, persisted: Promise.resolve(),
    };
    this.track(attempt);
    rollout.attempts.set(device.id, 'pending');
    attempt.persisted = this.deps.writes.attempt(snapshot(attempt), event(attempt));
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
    const moved = previousState !== state;
    attempt.state = state;
    if (fields.progress !== undefined) attempt.progress = fields.progress;
    if (fields.error !== undefined) attempt.error = fields.error;
    if (fields.reason !== undefined) attempt.reason = fields.reason;
    attempt.updatedAt = now;
    if (isTerminal(state)) attempt.finishedAt = now;
    void this.deps.writes.attempt(snapshot(attempt), event(attempt));
    this.deps.events.emit('attempt', {
      updateId: attempt.id, rolloutId: attempt.rolloutId, deviceId: attempt.deviceId, firmwareId: attempt.firmwareId, retry: 0,
      state, previousState, progress: attempt.progress, error: attempt.error, reason: attempt.reason, at: now,
    });
    if (!moved) return;
    this.log.info({ deviceId: attempt.deviceId, updateId: attempt.id, state, error: attempt.error ?? undefined }, 'update attempt');
    const rollout = this.running.get(attempt.rolloutId);
    rollout?.attempts.set(attempt.deviceId, state);
    if (isTerminal(state)) {
      this.activeById.delete(attempt.id);
      if (this.activeByDevice.get(attempt.deviceId) === attempt) this.activeByDevice.delete(attempt.deviceId);
      if (rollout) this.scheduleCompletionCheck(rollout.id);
    }
  }

  private track(attempt: Attempt): void {
    this.activeById.set(attempt.id, attempt);
    this.activeByDevice.set(attempt.deviceId, attempt);
  }

  private firmwareOf(attempt: { firmwareId: string }): Firmware {
    return this.deps.catalog.getAny(attempt.firmwareId)!;
  }

  /** A report for an attempt that is not in flight: a late duplicate of a finished one, or a forgery. */
  private async reportForUntracked(deviceId: string, report: StatusReport): Promise<void> {
    const known = await this.deps.prisma.updateAttempt.findUnique({ where: { id: report.updateId }, select: { deviceId: true, state: true } });
    if (known && known.deviceId === deviceId) {
      this.log.debug({ deviceId, updateId: report.updateId, state: report.state, final: known.state }, 'status for a finished update ignored');
    } else {
      this.log.warn({ deviceId, updateId: report.updateId, state: report.state }, 'status for an unknown updateId rejected');
    }
  }

  private scheduleCompletionCheck(rolloutId: string): void {
    if (this.completionChecks.has(rolloutId)) return;
    const timer = setTimeout(() => {
      this.completionChecks.delete(rolloutId);
      const rollout = this.running.get(rolloutId);
      if (rollout && this.isSettled(rollout)) {
        void this.finishRollout(rollout, 'completed', 'every target finished').catch((err) => this.log.error({ err, rolloutId }, 'could not complete rollout'));
      }
    }, COMPLETION_CHECK_DELAY_MS);
    timer.unref();
    this.completionChecks.set(rolloutId, timer);
  }

  /** Every target has finished an attempt of this rollout or already runs its version (or newer). */
  private isSettled(rollout: RunningRollout): boolean {
    const devices = rollout.targets ? [...rollout.targets].map((id) => this.deps.registry.get(id)) : this.deps.registry.ofType(rollout.firmware.type);
    return devices.every((d) => {
      if (!d || !targets(rollout, d.id)) return true;
      const state = rollout.attempts.get(d.id);
      if (state && isTerminal(state)) return true;
      return !state && d.version !== null && d.type === rollout.firmware.type && semver.gte(d.version, rollout.firmware.version);
    });
  }

  private async finishRollout(rollout: RunningRollout, state: Exclude<RolloutState, 'running'>, reason: string): Promise<void> {
    this.running.delete(rollout.id);
    const at = new Date();
    await this.deps.prisma.rollout.update({ where: { id: rollout.id }, data: { state, reason, finishedAt: at, updatedAt: at } });
    this.deps.events.emit('rollout', { rolloutId: rollout.id, state, previousState: 'running', wave: 0, reason, actor: null, at });
    this.log.info({ rolloutId: rollout.id, state, reason }, 'rollout finished');
  }

  private async send(deviceId: string, command: Command): Promise<void> {
    try {
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

function snapshot(a: Attempt): AttemptRow {
  return {
    id: a.id, rolloutId: a.rolloutId, deviceId: a.deviceId, firmwareId: a.firmwareId, fromVersion: a.fromVersion, state: a.state,
    progress: a.progress, error: a.error, reason: a.reason, createdAt: a.createdAt, updatedAt: a.updatedAt, finishedAt: a.finishedAt,
  };
}

function event(a: Attempt): AttemptEventRow {
  return { attemptId: a.id, state: a.state, progress: a.progress, error: a.error, reason: a.reason, at: a.updatedAt };
}
