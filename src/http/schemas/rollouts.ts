// Request shapes of /api/rollouts: the targeting, waves and controls an operator can set.
import { Type, type Static } from 'typebox';
import { ATTEMPT_STATES, FAILURE_STATES, MEMBER_STANDINGS, SKIP_REASONS } from '../../rollouts/states.js';
import { AttemptState, DateTime, DeviceId, Id, Nullable, RolloutState } from './common.js';

const HHMM = Type.String({ pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]$', description: 'UTC time of day' });

/** The controls of a rollout, as creation sets them and an edit changes them. */
const Controls = {
  minSuccessRatio: Type.Number({ minimum: 0, maximum: 1, description: 'share of a wave that must succeed (and stay healthy) before the next starts; default 1' }),
  soakSeconds: Type.Integer({ minimum: 0, maximum: 7 * 86400, description: 'how long a device must stay healthy after succeeded to count' }),
  maxPerMinute: Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'at most this many new update commands per minute' }),
  failureThreshold: Type.Object({
    count: Type.Optional(Type.Integer({ minimum: 1 })),
    percent: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 100 })),
    minSample: Type.Optional(Type.Integer({ minimum: 1 })),
  }, { additionalProperties: false, description: `pause (or abort) when attempts in ${[...FAILURE_STATES].join(', ')} reach this (counted since the last resume)` }),
  onFailureThreshold: Type.Union([Type.Literal('pause'), Type.Literal('abort')]),
  attemptTimeoutSeconds: Type.Integer({ minimum: 1, maximum: 30 * 86400, description: 'an attempt with no progress for this long is timed_out' }),
  maxRetries: Type.Integer({ minimum: 0, maximum: 10 }),
  retryBackoffSeconds: Type.Integer({ minimum: 0, maximum: 86400 }),
  maintenanceWindow: Type.Object({ start: HHMM, end: HHMM }, { additionalProperties: false }),
  waveDeadlineSeconds: Type.Integer({ minimum: 1, maximum: 30 * 86400, description: 'how long a wave waits for devices it cannot reach (offline, nothing in flight) before they count as skipped: offline; default 600' }),
  waves: Type.Array(Type.Number({ exclusiveMinimum: 0 }), { minItems: 1, maxItems: 20, description: 'cumulative wave sizes, e.g. [1, 10, 50, 100] %' }),
  waveUnit: Type.Union([Type.Literal('percent'), Type.Literal('count')]),
};

export const RolloutCreateBody = Type.Object({
  firmwareId: Id,
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 120 })),
  deviceIds: Type.Optional(Type.Array(DeviceId, { minItems: 1, maxItems: 100_000, description: 'explicit targets (default: every device of the firmware type)' })),
  tags: Type.Optional(Type.Array(Type.String({ pattern: '^[A-Za-z0-9_.:-]{1,64}$' }), { maxItems: 32, description: 'devices carrying all these tags' })),
  versionRange: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'semver range of the running version, e.g. ">=1.2.0 <2"' })),
  channel: Type.Optional(Type.String({ pattern: '^[a-z0-9-]{1,32}$', description: 'devices following this channel' })),
  waves: Type.Optional(Controls.waves),
  waveUnit: Type.Optional(Controls.waveUnit),
  minSuccessRatio: Type.Optional(Controls.minSuccessRatio),
  soakSeconds: Type.Optional(Controls.soakSeconds),
  maxPerMinute: Type.Optional(Controls.maxPerMinute),
  failureThreshold: Type.Optional(Controls.failureThreshold),
  onFailureThreshold: Type.Optional(Controls.onFailureThreshold),
  attemptTimeoutSeconds: Type.Optional(Controls.attemptTimeoutSeconds),
  maxRetries: Type.Optional(Controls.maxRetries),
  retryBackoffSeconds: Type.Optional(Controls.retryBackoffSeconds),
  startAt: Type.Optional(Type.String({ format: 'date-time' })),
  maintenanceWindow: Type.Optional(Controls.maintenanceWindow),
  waveDeadlineSeconds: Type.Optional(Controls.waveDeadlineSeconds),
  allowDowngrade: Type.Optional(Type.Boolean()),
  downgradeReason: Type.Optional(Type.String({ minLength: 1, maxLength: 500 })),
}, { additionalProperties: false });

/**
 * PATCH /api/rollouts/{id}: the settings to change, validated as at creation. `null` removes a
 * limit (rate, failure threshold, timeout, window, wave deadline). Waves that have started keep their sizes.
 */
export const RolloutEditBody = Type.Object({
  waves: Type.Optional(Controls.waves),
  waveUnit: Type.Optional(Controls.waveUnit),
  minSuccessRatio: Type.Optional(Controls.minSuccessRatio),
  soakSeconds: Type.Optional(Controls.soakSeconds),
  maxPerMinute: Type.Optional(Nullable(Controls.maxPerMinute)),
  failureThreshold: Type.Optional(Nullable(Controls.failureThreshold)),
  onFailureThreshold: Type.Optional(Controls.onFailureThreshold),
  attemptTimeoutSeconds: Type.Optional(Nullable(Controls.attemptTimeoutSeconds)),
  maxRetries: Type.Optional(Controls.maxRetries),
  retryBackoffSeconds: Type.Optional(Controls.retryBackoffSeconds),
  maintenanceWindow: Type.Optional(Nullable(Controls.maintenanceWindow)),
  waveDeadlineSeconds: Type.Optional(Nullable(Controls.waveDeadlineSeconds)),
}, { additionalProperties: false, minProperties: 1 });

export type RolloutEditRequest = Static<typeof RolloutEditBody>;

export type RolloutCreate = Static<typeof RolloutCreateBody>;

export const RolloutListQuery = Type.Object({
  state: Type.Optional(RolloutState),
});

// ── Answers ──────────────────────────────────────────────────────────────────────────────────
const Str = Type.String();
const Int = Type.Integer();

export const RolloutView = Type.Object({
  id: Str, name: Nullable(Str), state: RolloutState, reason: Nullable(Str), firmwareId: Str,
  firmware: Type.Object({ type: Str, version: Str, sha256: Str }),
  targeting: Type.Object({ deviceIds: Nullable(Type.Array(Str)), tags: Type.Array(Str), versionRange: Nullable(Str), channel: Nullable(Str) }),
  policy: Type.Record(Type.String(), Type.Unknown(), { description: 'the controls in force (see the create body)' }),
  waveUnit: Type.String({ description: 'percent | count' }), waveSizes: Type.Array(Type.Number()), currentWave: Type.Integer({ description: '0-based' }),
  createdBy: Nullable(Str), createdAt: DateTime, startAt: Nullable(DateTime), updatedAt: DateTime, finishedAt: Nullable(DateTime),
  targets: Type.Integer({ description: 'devices in the target set' }),
  counts: Type.Object(Object.fromEntries(ATTEMPT_STATES.map((s) => [s, Int])), { description: 'attempts per state' }), attempts: Int,
  commanded: Type.Optional(Type.Integer({ description: 'on creation: online devices sent the command at once' })),
  changed: Type.Optional(Type.Array(Str, { description: 'on an edit: what changed, "field old → new"' })),
  retried: Type.Optional(Type.Integer({ description: 'on a retry: devices given a new attempt' })),
});

export const RolloutDetail = Type.Object({
  ...RolloutView.properties,
  waves: Type.Array(Type.Object({
    index: Int, planned: Type.Number({ description: 'requested cumulative size, in waveUnit' }), size: Type.Integer({ description: 'cumulative devices through this wave' }),
    devices: Int, state: Type.String({ description: 'pending | active | done | skipped' }),
    succeeded: Type.Integer({ description: 'succeeded and healthy through the soak, or already on the version' }), failed: Int,
    skipped: Type.Integer({ description: 'unreachable past the wave deadline (skipped: offline); not failures' }),
  })),
  waiting: Nullable(Type.Object({
    text: Type.String({ description: 'e.g. "wave 2 of 4: waiting for 3 devices (2 offline, deadline in 40 s), soak 5 min left"' }),
    wave: Type.Integer({ description: '1-based' }), waves: Int, waiting: Int, offline: Int, commanded: Int, deferred: Int, updating: Int,
    notYetCommanded: Int, soaking: Int, deadlineInSeconds: Nullable(Int), soakLeftSeconds: Nullable(Int),
  }, { description: 'what the current wave waits for (null once the rollout is finished)' })),
  skipped: Type.Integer({ description: 'devices skipped: offline past their wave\'s deadline' }),
  deferrals: Type.Integer({ description: 'times devices deferred an offer (retryAfter); not failures' }),
  retried: Type.Integer({ description: 'devices given a new attempt by an operator (POST /retry)' }),
  devices: Type.Array(Type.Object({
    deviceId: Str, wave: Int, updateId: Nullable(Str), state: Nullable(AttemptState), retry: Nullable(Int), progress: Nullable(Int),
    error: Nullable(Str), reason: Nullable(Str), fromVersion: Nullable(Str), updatedAt: Nullable(DateTime),
    standing: Nullable(Type.String({ enum: [...MEMBER_STANDINGS], description: 'where the device stands in its wave (null once the rollout is finished)' })),
    skipReason: Nullable(Type.String({ enum: [...SKIP_REASONS] })),
    retryGranted: Type.Integer({ description: 'operator retries: attempts allowed up to this retry number (0: none)' }),
  })),
  history: Type.Array(Type.Object({ state: RolloutState, wave: Nullable(Int), reason: Nullable(Str), actor: Nullable(Str), at: DateTime })),
});
