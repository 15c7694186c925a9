// Device messages in, decisions, commands out. An announce is answered with an update command or
// the reason there is none; a status report moves its attempt forward. Every handler resolves
// only once what the message changed is committed: the broker acknowledges the message (PUBACK)
// then, so an acknowledged message is never lost, and a device that got no acknowledgement sends
// it again (the forward-only attempt states absorb the duplicate).
import type { FleetRepository } from '../db/fleet-repository.js';
import type { FleetEvents } from '../events.js';
import type { Firmware, FirmwareCatalog } from '../firmware/catalog.js';
import { compareVersions } from '../firmware/version.js';
import type { Device, DeviceRegistry } from '../fleet/device-registry.js';
import type { Logger } from '../logger.js';
import { parseAnnounce, parseStatus, type Command, type StatusReport } from '../protocol/messages.js';
import type { DeviceMessageRejections } from '../protocol/rejections.js';
import type { ActiveRollout, Member } from './active-rollout.js';
import { applyReport } from './attempt-state.js';
import { isTerminal, type AttemptState } from './states.js';
import type { Attempt, AttemptTracker } from './attempts.js';
import { TurnPacer } from './turn-pacer.js';
import { Deferrals } from './deferral.js';
import { alreadyThere, chooseUpdate, offer, type AnnouncedDevice } from './eligibility.js';
import type { LiveRollouts } from './live-rollouts.js';
import { withinWindow } from './policy.js';
import { matchesTargeting } from './targeting.js';
import { unhealthyReason } from '../fleet/health.js';
import { waveForLateJoiner } from './waves.js';

/**
 * How long a committed attempt may stay pending before a tick publishes its command: the instance
 * that opened it publishes within moments, unless it stopped first. Shorter would send commands
 * twice (harmless: same updateId) when another instance opened them and its 'sent' is on its way.
 */
const ORPHANED_PENDING_MS = 10_000;

/**
 * How much longer than the time since `rebooting` was recorded a device's uptime may be and still
 * count as a boot after it: the report's own way to the database, and the clocks of instances.
 */
const BOOT_SLACK_MS = 2_000;

/** Where commands go: the broker in production. */
export interface CommandChannel {
  send(deviceId: string, command: Command): Promise<void>;
}

export class UpdateEngine {
  private readonly pacer: TurnPacer;
  private readonly log: Logger;
  /** Offers the devices deferred, and when each is due again (deferral.ts). */
  readonly deferrals = new Deferrals();
  /** Attempts whose command this process is committing or publishing now. */
  private readonly sending = new Set<string>();

  constructor(private readonly deps: {
    repository: FleetRepository;
    registry: DeviceRegistry;
    catalog: FirmwareCatalog;
    attempts: AttemptTracker;
    rollouts: LiveRollouts;
    commands: CommandChannel;
    rejections: DeviceMessageRejections;
    imageUrl: (sha256: string) => string;
    events: FleetEvents;
    logger: Logger;
    /** Shared with the attempt tracker: one budget per turn of the event loop for both. */
    pacer?: TurnPacer;
  }) {
    this.log = deps.logger.child({ component: 'rollouts' });
    this.pacer = deps.pacer ?? new TurnPacer();
  }

  // ── device messages ─────────────────────────────────────────────────────────

  async handleAnnounce(deviceId: string, payload: Buffer): Promise<void> {
    const { registry, repository, events } = this.deps;
    const parsed = parseAnnounce(payload, (type, imageVersion) => this.deps.catalog.versionOfImage(type, imageVersion));
    if (!parsed.ok) {
      this.deps.rejections.reject(deviceId, 'malformed-announce', parsed.error);
      await this.send(deviceId, { action: 'none', reason: 'invalid-announce', error: parsed.error });
      return;
    }
    if (parsed.healthError) this.deps.rejections.reject(deviceId, 'malformed-health', parsed.healthError);
    const { device: recorded, typeMismatch } = registry.recordAnnounce(deviceId, parsed.value, new Date());
    if (typeMismatch) {
      this.deps.rejections.reject(deviceId, 'type-mismatch', `announced type ${parsed.value.type}, registered as ${recorded.type}`);
      await repository.durable();
      await this.send(deviceId, { action: 'none', reason: 'type-mismatch', error: `this device is registered as type ${recorded.type}` });
      return;
    }
    const device = recorded as AnnouncedDevice;
    this.log.debug({ deviceId, type: device.type, version: device.version }, 'announce');
    events.emit('announce', { deviceId, type: device.type, version: device.version, chip: device.chip, at: device.lastSeenAt! });

    const inFlight = this.deps.attempts.ofDevice(deviceId);
    if (inFlight && !this.settleByAnnounce(inFlight, device, parsed.value.health?.uptimeS)) {
      await repository.durable();
      // The device asked for time: it gets the offer again when that has passed, not before.
      if (inFlight.state === 'deferred' && this.deferrals.waiting(inFlight, Date.now())) {
        await this.send(deviceId, { action: 'none', reason: 'deferred' });
        return;
      }
      // Still to do: the device gets the same command again (after a restart, a reconnect).
      await this.resend(inFlight);
      return;
    }
    const rollouts = this.deps.rollouts.ofType(device.type);
    this.checkHealth(device, rollouts);
    this.join(device, rollouts);
    const choice = chooseUpdate(device, rollouts, Date.now(), this.deps.catalog.hasType(device.type));
    if (choice.kind === 'update') {
      await this.dispatch(device, choice.rollout, choice.retry);
      return;
    }
    await repository.durable();
    await this.send(deviceId, { action: 'none', reason: choice.reason });
  }

  async handleStatus(deviceId: string, payload: Buffer): Promise<void> {
    const parsed = parseStatus(payload);
    if (!parsed.ok) {
      this.deps.rejections.reject(deviceId, 'malformed-status', parsed.error);
      return;
    }
    await this.handleStatusOf(deviceId, parsed.value);
  }

  private async handleStatusOf(deviceId: string, report: StatusReport): Promise<void> {
    const attempt = this.deps.attempts.get(report.updateId);
    if (!attempt) {
      await this.reportForUntracked(deviceId, report);
      return;
    }
    if (attempt.deviceId !== deviceId) {
      this.deps.rejections.reject(deviceId, 'foreign-update', `updateId ${report.updateId} belongs to another device`);
      return;
    }
    const t = applyReport(attempt, report);
    if (t.kind === 'ignore') {
      this.log.debug({ deviceId, updateId: attempt.id, state: report.state, current: attempt.state, why: t.why }, 'status ignored');
      // With several instances a device's reports are shared among them: one may commit the final
      // report while another still holds an earlier one. Acknowledged, so kept in the history.
      if (t.why === 'out-of-order' || (t.why === 'final' && !isTerminal(report.state as AttemptState))) this.recordLate(attempt.id, report);
    } else if (t.kind === 'progress') {
      void this.deps.attempts.move(attempt, attempt.state, { progress: t.progress });
    } else if (t.state === 'deferred') {
      const until = this.deferrals.note(attempt, report.retryAfter, Date.now());
      const seconds = Math.round((until - Date.now()) / 1000);
      this.log.info({ deviceId, updateId: attempt.id, retryAfter: seconds }, 'update deferred by the device');
      void this.deps.attempts.move(attempt, 'deferred', { error: report.error ?? null, reason: report.reason ?? `deferred by the device for ${seconds} s` });
    } else {
      void this.deps.attempts.move(attempt, t.state, { progress: t.progress, error: report.error ?? null, reason: report.reason ?? null });
      if (t.state === 'succeeded') this.deps.registry.recordVersion(deviceId, report.version ?? this.firmwareOf(attempt).version);
    }
    // A duplicate too waits for what it duplicates: it may be the resend of a report not yet committed.
    await this.deps.repository.durable();
  }

  handlePresence(deviceId: string, online: boolean): void {
    const at = new Date();
    this.deps.registry.recordPresence(deviceId, online, at);
    this.deps.events.emit('presence', { deviceId, online, at });
  }

  /** An operator changed the device's tags, channel or type: it may now belong to running rollouts. */
  async deviceChanged(deviceId: string): Promise<void> {
    const device = this.deps.registry.get(deviceId);
    if (!device?.version || !device.type) return;
    this.join(device, this.deps.rollouts.ofType(device.type));
    await this.deps.repository.durable();
  }

  // ── commands ────────────────────────────────────────────────────────────────

  /** Sends the update to every online member of a running rollout that may have it now; returns how many. */
  async dispatchReady(r: ActiveRollout): Promise<number> {
    if (r.state !== 'running') return 0;
    const now = Date.now();
    const sends: Promise<void>[] = [];
    const windowOpen = withinWindow(new Date(now), r.policy.maintenanceWindow);
    for (const [deviceId, member] of r.members) {
      // Opening 1,000 attempts in one go held the event loop for tens of ms during a fan-out
      // (bench/README.md, "Loop delay during a fan-out"): the loop gets a turn every few ms, and
      // the sends of the attempts opened so far go out in between.
      const later = this.pacer.turn();
      if (later) {
        await later;
        if (r.state !== 'running') break;
      }
      // Cheap checks first: this runs for every member on every tick.
      if (member.wave > r.currentWave || member.latest?.state === 'succeeded') continue;
      const inFlight = this.deps.attempts.ofDevice(deviceId);
      if (inFlight) {
        // A deferred offer is made again once due; it is the same attempt, so no rate-limit token.
        if (inFlight.rolloutId === r.id && inFlight.state === 'deferred' && windowOpen && this.deferrals.due(inFlight, now) && this.deps.registry.get(deviceId)?.online) {
          this.deferrals.resent(inFlight, now);
          sends.push(this.resend(inFlight));
        } else if (inFlight.rolloutId === r.id && inFlight.state === 'pending' && inFlight.committedState !== null && !this.sending.has(inFlight.id)
          && now - inFlight.updatedAt.getTime() > ORPHANED_PENDING_MS && this.deps.registry.get(deviceId)?.online) {
          // Committed but never published: the instance that opened it stopped first (a leader
          // killed while its paced sends were under way, or a restart on an external broker,
          // where devices do not announce again). Same attempt, same updateId: no rate-limit token.
          sends.push(this.sendOnce(inFlight, () => this.resend(inFlight)));
        }
        continue;
      }
      const device = this.deps.registry.get(deviceId);
      if (!device?.online || !device.version) continue;
      const o = offer(r, device as AnnouncedDevice, now);
      if (o.ok) sends.push(this.dispatch(device, r, o.retry));
      else if (o.reason === 'rate-limited' || o.reason === 'outside-maintenance-window') break;
    }
    await Promise.all(sends);
    return sends.length;
  }

  /** Tells a device its update is cancelled. */
  cancel(attempt: Attempt): Promise<void> {
    return this.send(attempt.deviceId, { action: 'cancel', updateId: attempt.id });
  }

  private async dispatch(device: Device, rollout: ActiveRollout, retry: number): Promise<void> {
    const attempt = this.deps.attempts.open(device, rollout, retry, new Date());
    await this.sendOnce(attempt, async () => {
      await this.deps.repository.durable();
      await this.resend(attempt);
    });
  }

  /** Marks the attempt as being sent by this process while `work` runs: a tick does not send it again meanwhile. */
  private async sendOnce(attempt: Attempt, work: () => Promise<void>): Promise<void> {
    this.sending.add(attempt.id);
    try {
      await work();
    } finally {
      this.sending.delete(attempt.id);
    }
  }

  /**
   * Publishes the attempt's command; a pending attempt becomes sent. Callers wait for
   * `repository.durable()` first, which covers the attempt's row: no command goes out for an
   * attempt the database does not know.
   */
  private async resend(attempt: Attempt): Promise<void> {
    const fw = this.firmwareOf(attempt);
    if (attempt.state === 'deferred') this.deferrals.resent(attempt, Date.now());
    await this.send(attempt.deviceId, {
      action: 'update', updateId: attempt.id, type: fw.type, version: fw.version, url: this.deps.imageUrl(fw.sha256), sha256: fw.sha256, size: fw.size,
      // The device checks the image against its own version string, which need not be semver.
      ...(fw.imageVersion && fw.imageVersion !== fw.version ? { imageVersion: fw.imageVersion } : {}),
    });
    if (attempt.state === 'pending') void this.deps.attempts.move(attempt, 'sent');
  }

  private async send(deviceId: string, command: Command): Promise<void> {
    try {
      await this.pacer.run(() => this.deps.commands.send(deviceId, command));
      this.deps.events.emit('command', {
        deviceId, action: command.action, updateId: command.action === 'none' ? null : command.updateId,
        reason: command.action === 'none' ? command.reason : null, at: new Date(),
      });
    } catch (err) {
      this.log.warn({ err, deviceId, action: command.action }, 'command not published');
    }
  }

  // ── internals ───────────────────────────────────────────────────────────────

  /** Adds the device to active rollouts whose target set it now matches (late joiners). */
  private join(device: Device, rollouts: ActiveRollout[]): void {
    for (const r of rollouts) {
      if (r.members.has(device.id) || !matchesTargeting(r.targeting, device)) continue;
      const wave = waveForLateJoiner(r.id, device.id, r.plan, r.initialTargets);
      const member: Member = { wave, latest: null, unhealthy: false };
      r.members.set(device.id, member);
      void this.deps.repository.addTarget(r.id, device.id, wave);
      this.log.info({ deviceId: device.id, rolloutId: r.id, wave }, 'device joined rollout');
    }
  }

  /**
   * A device that succeeded and then announces another version, or a boot caused by a crash
   * during the soak, has not stayed healthy (src/fleet/health.ts).
   */
  private checkHealth(device: AnnouncedDevice, rollouts: ActiveRollout[]): void {
    const now = Date.now();
    for (const r of rollouts) {
      const m = r.members.get(device.id);
      if (!m) continue;
      const why = unhealthyReason({
        latest: m.latest, unhealthy: m.unhealthy, onTargetVersion: alreadyThere(r.firmware.version, device.version, r.policy.allowDowngrade),
        resetReason: device.health?.resetReason, soakSeconds: r.policy.soakSeconds, now,
      });
      if (!why) continue;
      m.unhealthy = true;
      this.log.warn({ deviceId: device.id, rolloutId: r.id, version: device.version, resetReason: device.health?.resetReason }, `device unhealthy: ${why}`);
    }
  }

  /**
   * An announce can finish an attempt: the target version running means success, the old one
   * after a reboot means rollback. `uptimeS` is the announce's own (health), when it has one.
   */
  private settleByAnnounce(attempt: Attempt, device: AnnouncedDevice, uptimeS: number | undefined): boolean {
    const target = this.firmwareOf(attempt).version;
    if (compareVersions(device.version, target) === 0) {
      void this.deps.attempts.move(attempt, 'succeeded', { reason: 'device announced the target version' });
      return true;
    }
    if (attempt.state === 'rebooting') {
      // Up since before `rebooting` was recorded: this announce left the device before it
      // rebooted (with several instances another one may have committed `rebooting` first,
      // docs/scaling.md). Not a rollback: the same command goes out, and the device carries on
      // or re-reports how the update ended.
      if (uptimeS !== undefined && uptimeS * 1000 > Date.now() - attempt.updatedAt.getTime() + BOOT_SLACK_MS) {
        this.log.info({ deviceId: device.id, updateId: attempt.id, version: device.version, uptimeS }, 'announce of the previous version from before the reboot: not a rollback');
        return false;
      }
      void this.deps.attempts.move(attempt, 'rolled_back', { error: 'booted-previous-version', reason: `device announced ${device.version} after rebooting into ${target}` });
      return true;
    }
    return false;
  }

  /**
   * A report for an attempt not in flight here: one another instance opened (read back, then
   * handled), a late duplicate of a finished one, or a forgery.
   */
  private async reportForUntracked(deviceId: string, report: StatusReport): Promise<void> {
    const row = await this.deps.repository.attemptRow(report.updateId);
    if (row && row.deviceId === deviceId && !isTerminal(row.state as AttemptState)) {
      this.deps.attempts.applyCommitted(row);
      if (this.deps.attempts.get(report.updateId)) { await this.handleStatusOf(deviceId, report); return; }
    }
    if (row && row.deviceId === deviceId) {
      this.log.debug({ deviceId, updateId: report.updateId, state: report.state, final: row.state }, 'status for a finished update ignored');
      if (!isTerminal(report.state as AttemptState)) {
        this.recordLate(report.updateId, report);
        await this.deps.repository.durable();
      }
    } else {
      this.deps.rejections.reject(deviceId, 'unknown-update', `unknown updateId ${report.updateId}`);
    }
  }

  /**
   * A report that came after a later one (with several instances, the device's reports are shared
   * among them) changes nothing, but it was sent and is acknowledged: it is kept in the history.
   */
  private recordLate(attemptId: string, report: StatusReport): void {
    void this.deps.repository.saveLateEvent({
      attemptId, state: report.state, progress: report.progress === undefined ? null : Math.round(report.progress),
      error: report.error ?? null, reason: report.reason ?? null, at: new Date(),
    });
  }

  private firmwareOf(attempt: { firmwareId: string }): Firmware {
    return this.deps.catalog.getAny(attempt.firmwareId)!;
  }
}
