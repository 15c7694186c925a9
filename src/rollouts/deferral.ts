// Deferral by the device (docs/protocol.md, "Deferral"): the application on the device may answer
// an update with `deferred` and `retryAfter` seconds (busy, low battery). The attempt stays open
// in state `deferred` (neither progress nor failure; counted on its own), and the server offers
// the same update again once `retryAfter` has passed and the device is online, within the
// rollout's window. Until then an announce from it is answered `none` with reason `deferred`.
//
// When the offer is due is kept in memory, per attempt. An instance that did not hear the deferral
// itself (it restarted, or another instance handled the report) does not know the `retryAfter`
// asked for: it waits the default from the moment the deferral was committed, and the device's
// application decides again when offered.

export const DEFAULT_RETRY_AFTER_SECONDS = 60;
export const MAX_RETRY_AFTER_SECONDS = 86_400;

/** How long to wait before offering again, from what the device asked for. */
export function retryAfterMs(retryAfterSeconds: number | undefined): number {
  const s = retryAfterSeconds ?? DEFAULT_RETRY_AFTER_SECONDS;
  return Math.min(MAX_RETRY_AFTER_SECONDS, Math.max(1, Math.round(s))) * 1000;
}

interface Deferred { until: number; resentAt: number | null }

/** The attempt shape this needs: its identity and when it last changed. */
interface AttemptLike { state: string; updatedAt: Date }

export class Deferrals {
  private readonly byAttempt = new WeakMap<AttemptLike, Deferred>();

  /** The device deferred the attempt now; returns when it is offered again (ms since epoch). */
  note(attempt: AttemptLike, retryAfterSeconds: number | undefined, now: number): number {
    const until = now + retryAfterMs(retryAfterSeconds);
    this.byAttempt.set(attempt, { until, resentAt: null });
    return until;
  }

  /** Whether a deferred attempt may be offered again. */
  due(attempt: AttemptLike, now: number): boolean {
    const d = this.known(attempt);
    return !d || (d.resentAt === null && d.until <= now);
  }

  /** Deferred and not yet due: the device is not offered it again before then. */
  waiting(attempt: AttemptLike, now: number): boolean {
    const d = this.known(attempt);
    return !!d && d.resentAt === null && d.until > now;
  }

  /** Seconds until the offer is due again (0: due now). */
  secondsLeft(attempt: AttemptLike, now: number): number {
    const d = this.known(attempt);
    return d ? Math.max(0, Math.ceil((d.until - now) / 1000)) : 0;
  }

  /** The offer went out again; the device answers it like any other. */
  resent(attempt: AttemptLike, now: number): void {
    const d = this.known(attempt);
    if (d) d.resentAt = now;
  }

  /**
   * The last moment something happened to the attempt: its last report, the end of a deferral,
   * or the offer sent again. An attempt's timeout counts from here, so a device that asked for an
   * hour is not timed out while the server honours it.
   */
  lastActivity(attempt: AttemptLike): number {
    const d = this.known(attempt);
    return Math.max(attempt.updatedAt.getTime(), d?.until ?? 0, d?.resentAt ?? 0);
  }

  /** The deferral of a deferred attempt; one heard elsewhere waits the default from its commit. */
  private known(attempt: AttemptLike): Deferred | undefined {
    let d = this.byAttempt.get(attempt);
    if (!d && attempt.state === 'deferred') {
      d = { until: attempt.updatedAt.getTime() + retryAfterMs(undefined), resentAt: null };
      this.byAttempt.set(attempt, d);
    }
    return d;
  }
}
