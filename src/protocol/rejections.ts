// Device messages mqota turns away: counted per reason (for metrics), published as fleet events,
// and logged at most once per device per minute, so a device stuck in a loop of bad messages
// (or an attacker with a valid certificate) cannot flood the log.
import type { FleetEvents } from '../events.js';
import type { Logger } from '../logger.js';

/** Each reason, and the kind of device message it refuses. */
export const REJECTION_KINDS = {
  'malformed-announce': 'announce', 'type-mismatch': 'announce', 'malformed-health': 'announce',
  'malformed-status': 'status', 'unknown-update': 'status', 'foreign-update': 'status',
} as const;
export type RejectionReason = keyof typeof REJECTION_KINDS;
export const REJECTION_REASONS = Object.keys(REJECTION_KINDS) as RejectionReason[];

const LOG_INTERVAL_MS = 60_000;

export class DeviceMessageRejections {
  private readonly counts = new Map<RejectionReason, number>(REJECTION_REASONS.map((r) => [r, 0]));
  /** When each device's last rejection was logged, and how many were not logged since; old entries are swept. */
  private readonly logged = new Map<string, { at: number; suppressed: number }>();

  constructor(private readonly deps: { events: FleetEvents; logger: Logger; now?: () => number }) {}

  reject(deviceId: string, reason: RejectionReason, detail: string): void {
    const kind = REJECTION_KINDS[reason];
    this.counts.set(reason, (this.counts.get(reason) ?? 0) + 1);
    const now = (this.deps.now ?? Date.now)();
    this.deps.events.emit('rejection', { deviceId, kind, reason, error: detail, at: new Date(now) });
    const last = this.logged.get(deviceId);
    if (last && now - last.at < LOG_INTERVAL_MS) {
      last.suppressed++;
      return;
    }
    if (this.logged.size > 10_000) this.sweep(now);
    const suppressed = last?.suppressed ?? 0;
    this.logged.set(deviceId, { at: now, suppressed: 0 });
    this.deps.logger.warn({ deviceId, kind, reason, error: detail, ...(suppressed ? { suppressedSinceLastLine: suppressed } : {}) },
      'device message rejected (further ones from this device are counted, not logged, for a minute)');
  }

  /** Rejections so far, per reason. */
  snapshot(): ReadonlyMap<RejectionReason, number> {
    return this.counts;
  }

  private sweep(now: number): void {
    for (const [id, entry] of this.logged) if (now - entry.at >= LOG_INTERVAL_MS) this.logged.delete(id);
  }
}
