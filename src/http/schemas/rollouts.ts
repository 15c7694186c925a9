// Request shapes of /api/rollouts: the targeting, waves and controls an operator can set.
import { Type, type Static } from 'typebox';
import { ATTEMPT_STATES, FAILURE_STATES } from '../../rollouts/states.js';
import { AttemptState, DateTime, DeviceId, Id, Nullable, RolloutState } from './common.js';

const HHMM = Type.String({ pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]$', description: 'UTC time of day' });

export const RolloutCreateBody = Type.Object({
  firmwareId: Id,
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 120 })),
  deviceIds: Type.Optional(Type.Array(DeviceId, { minItems: 1, maxItems: 100_000, description: 'explicit targets (default: every device of the firmware type)' })),
  tags: Type.Optional(Type.Array(Type.String({ pattern: '^[A-Za-z0-9_.:-]{1,64}$' }), { maxItems: 32, description: 'devices carrying all these tags' })),
  versionRange: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'semver range of the running version, e.g. ">=1.2.0 <2"' })),
  channel: Type.Optional(Type.String({ pattern: '^[a-z0-9-]{1,32}$', description: 'devices following this channel' })),
  waves: Type.Optional(Type.Array(Type.Number({ exclusiveMinimum: 0 }), { minItems: 1, maxItems: 20, description: 'cumulative wave sizes, e.g. [1, 10, 50, 100] %' })),
  waveUnit: Type.Optional(Type.Union([Type.Literal('percent'), Type.Literal('count')])),
  minSuccessRatio: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: 'share of a wave that must succeed (and stay healthy) before the next starts; default 1' })),
  soakSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 7 * 86400, description: 'how long a device must stay healthy after succeeded to count' })),
  maxPerMinute: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'at most this many new update commands per minute' })),
  failureThreshold: Type.Optional(Type.Object({
    count: Type.Optional(Type.Integer({ minimum: 1 })),
    percent: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 100 })),
    minSample: Type.Optional(Type.Integer({ minimum: 1 })),
  }, { additionalProperties: false, description: `pause (or abort) when attempts in ${[...FAILURE_STATES].join(', ')} reach this` })),
  onFailureThreshold: Type.Optional(Type.Union([Type.Literal('pause'), Type.Literal('abort')])),
  attemptTimeoutSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 30 * 86400, description: 'an attempt with no progress for this long is timed_out' })),
  maxRetries: Type.Optional(Type.Integer({ minimum: 0, maximum: 10 })),
  retryBackoffSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 86400 })),
  startAt: Type.Optional(Type.String({ format: 'date-time' })),
  maintenanceWindow: Type.Optional(Type.Object({ start: HHMM, end: HHMM }, { additionalProperties: false })),
  allowDowngrade: Type.Optional(Type.Boolean()),
  downgradeReason: Type.Optional(Type.String({ minLength: 1, maxLength: 500 })),
}, { additionalProperties: false });

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
});

export const RolloutDetail = Type.Object({
  ...RolloutView.properties,
  waves: Type.Array(Type.Object({
    index: Int, planned: Type.Number({ description: 'requested cumulative size, in waveUnit' }), size: Type.Integer({ description: 'cumulative devices through this wave' }),
    devices: Int, state: Type.String({ description: 'pending | active | done | skipped' }),
    succeeded: Type.Integer({ description: 'succeeded and healthy through the soak, or already on the version' }), failed: Int,
  })),
  devices: Type.Array(Type.Object({
    deviceId: Str, wave: Int, updateId: Nullable(Str), state: Nullable(AttemptState), retry: Nullable(Int), progress: Nullable(Int),
    error: Nullable(Str), reason: Nullable(Str), fromVersion: Nullable(Str), updatedAt: Nullable(DateTime),
  })),
  history: Type.Array(Type.Object({ state: RolloutState, wave: Nullable(Int), reason: Nullable(Str), actor: Nullable(Str), at: DateTime })),
});
