// The vocabulary of update attempts and rollouts: every state, and which ones are final, count
// as a failure, are worth a retry or are still under way. The server, the CLI, the OpenAPI
// schemas and the dashboard (GET /states.js, generated from this module) all read it from here,
// so a state cannot mean one thing in one place and another elsewhere.

// ── Update attempts ──────────────────────────────────────────────────────────────────────────

/** In the order an update goes through them, then the outcomes: success, failures, cancellation. */
export const ATTEMPT_STATES = ['pending', 'sent', 'deferred', 'accepted', 'downloading', 'downloaded', 'rebooting',
  'succeeded', 'failed', 'rolled_back', 'rejected', 'timed_out', 'cancelled'] as const;
export type AttemptState = (typeof ATTEMPT_STATES)[number];

/** What a device may report (docs/protocol.md, "Status"); the server itself sets the others. */
export const REPORTED_STATES = ['deferred', 'accepted', 'downloading', 'downloaded', 'rebooting', 'succeeded', 'failed', 'rolled_back', 'rejected'] as const satisfies readonly AttemptState[];
export type ReportedState = (typeof REPORTED_STATES)[number];

/**
 * Commanded, the device has not started work yet: a resend or a cancel still makes sense.
 * `deferred`: the device's application asked for the offer again after `retryAfter` seconds
 * (busy, low battery); neither progress nor failure, and counted on its own.
 */
export const WAITING_STATES: ReadonlySet<AttemptState> = new Set(['pending', 'sent', 'deferred']);

/** The device is working on it. */
export const UPDATING_STATES: ReadonlySet<AttemptState> = new Set(['accepted', 'downloading', 'downloaded', 'rebooting']);

/** Final: nothing moves an attempt out of these (a new attempt is a new row). */
export const TERMINAL_STATES: ReadonlySet<AttemptState> = new Set(['succeeded', 'failed', 'rolled_back', 'rejected', 'timed_out', 'cancelled']);

/** Not final (waiting or updating): states an attempt can still leave. */
export const OPEN_STATES: readonly AttemptState[] = ATTEMPT_STATES.filter((s) => !TERMINAL_STATES.has(s));

/**
 * Outcomes that count against a rollout's failure threshold and a wave's success ratio. A device
 * refusing the image (`rejected`: wrong chip, secure version, signature) is a failure of the
 * rollout as much as a crash is; only `cancelled`, an operator's decision, is not.
 */
export const FAILURE_STATES: ReadonlySet<AttemptState> = new Set(['failed', 'rolled_back', 'rejected', 'timed_out']);

/**
 * Failures worth another attempt: the device may succeed next time with the same image. A device
 * that refused the image or booted back out of it would refuse or fail it again.
 */
export const RETRYABLE_STATES: ReadonlySet<AttemptState> = new Set(['failed', 'timed_out']);

/**
 * Failures an operator may retry (POST /api/rollouts/{id}/retry): after a decision, even a device
 * that booted back out of the image gets another attempt. A refusal (`rejected`) would repeat.
 */
export const OPERATOR_RETRYABLE_STATES: ReadonlySet<AttemptState> = new Set(['failed', 'timed_out', 'rolled_back']);

export function isTerminal(state: AttemptState): boolean {
  return TERMINAL_STATES.has(state);
}

/** States in which the device has not started work yet, so a resend or a cancel still makes sense. */
export function notStarted(state: AttemptState): boolean {
  return WAITING_STATES.has(state);
}

/** Attempts per state, all states present, in ATTEMPT_STATES order. */
export function zeroCounts(): Record<AttemptState, number> {
  return Object.fromEntries(ATTEMPT_STATES.map((s) => [s, 0])) as Record<AttemptState, number>;
}

// ── Members of a rollout ────────────────────────────────────────────────────────────────────

/**
 * Where a target device stands in its wave. `healthy`: succeeded (and soaked) or already on the
 * version; `failed`: finished without success and no retry left; `skipped`: the wave's deadline
 * passed while the device was unreachable (not a failure; it still gets the update if it comes
 * back while the rollout runs); `waiting`: anything else.
 */
export const MEMBER_STANDINGS = ['healthy', 'failed', 'skipped', 'waiting'] as const;
export type MemberStanding = (typeof MEMBER_STANDINGS)[number];

/** Why a member was skipped. */
export const SKIP_REASONS = ['offline'] as const;
export type SkipReason = (typeof SKIP_REASONS)[number];

// ── Rollouts ─────────────────────────────────────────────────────────────────────────────────

export const ACTIVE_ROLLOUT_STATES = ['scheduled', 'running', 'paused'] as const;
export const FINAL_ROLLOUT_STATES = ['completed', 'cancelled', 'aborted'] as const;
export const ROLLOUT_STATES = [...ACTIVE_ROLLOUT_STATES, ...FINAL_ROLLOUT_STATES] as const;

export type ActiveState = (typeof ACTIVE_ROLLOUT_STATES)[number];
export type FinalState = (typeof FINAL_ROLLOUT_STATES)[number];
export type RolloutState = ActiveState | FinalState;

/** After one of these nothing more is sent for the rollout. Takes any string: API and event payloads. */
export function isFinalRolloutState(state: string): state is FinalState {
  return (FINAL_ROLLOUT_STATES as readonly string[]).includes(state);
}

