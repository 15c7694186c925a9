// The device messages of docs/protocol.md: schemas, parsing of what devices send, encoding of
// what the server sends. Schemas are compiled once; parsing never throws.
import { Type, type Static } from 'typebox';
import { Compile } from 'typebox/compile';
import { normaliseVersion } from '../firmware/version.js';
import { REPORTED_STATES, type ReportedState } from '../rollouts/states.js';

export const MAX_PAYLOAD_BYTES = 4096;

const Name = Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' });

const AnnounceSchema = Type.Object({
  type: Name,
  version: Type.String({ minLength: 1, maxLength: 64 }),
  chip: Type.Optional(Type.String({ pattern: '^[a-z0-9_-]{1,32}$' })),
  idf: Type.Optional(Type.String({ maxLength: 64 })),
  secureVersion: Type.Optional(Type.Integer({ minimum: 0, maximum: 0xffffffff })),
  slot: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_]{1,16}$' })),
  // Checked on its own (HealthSchema): a bad health report is dropped, the announce still counts.
  health: Type.Optional(Type.Unknown()),
});

/** esp_reset_reason_t (esp_system.h) by name; the Linux port uses the same names. */
export const RESET_REASONS = ['unknown', 'poweron', 'external', 'software', 'panic', 'int_wdt', 'task_wdt', 'wdt', 'deepsleep',
  'brownout', 'sdio', 'usb', 'jtag', 'efuse', 'pwr_glitch', 'cpu_lockup'] as const;
export type ResetReason = typeof RESET_REASONS[number];

/** What a device says of its own condition in an announce (docs/protocol.md#health). */
export const HealthSchema = Type.Object({
  rssi: Type.Optional(Type.Integer({ minimum: -127, maximum: 0, description: 'dBm of the access point (esp_wifi_sta_get_ap_info)' })),
  freeHeap: Type.Optional(Type.Integer({ minimum: 0, maximum: 0xffffffff, description: 'bytes (esp_get_free_heap_size)' })),
  minFreeHeap: Type.Optional(Type.Integer({ minimum: 0, maximum: 0xffffffff, description: 'bytes, lowest since boot (esp_get_minimum_free_heap_size)' })),
  uptimeS: Type.Optional(Type.Integer({ minimum: 0, maximum: 0xffffffff, description: 'seconds since boot (esp_timer_get_time)' })),
  resetReason: Type.Optional(Type.Union(RESET_REASONS.map((r) => Type.Literal(r)), { description: 'why the last boot happened (esp_reset_reason)' })),
  partitionSize: Type.Optional(Type.Integer({ minimum: 0, maximum: 0xffffffff, description: 'bytes of the running partition (esp_ota_get_running_partition)' })),
  elfSha256: Type.Optional(Type.String({ pattern: '^[0-9a-f]{64}$', description: 'SHA-256 of the application ELF (esp_app_get_elf_sha256)' })),
}, { additionalProperties: false });

export { REPORTED_STATES, type ReportedState };

const StatusSchema = Type.Object({
  updateId: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }),
  state: Type.Union(REPORTED_STATES.map((s) => Type.Literal(s))),
  progress: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
  version: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  error: Type.Optional(Type.String({ maxLength: 128 })),
  reason: Type.Optional(Type.String({ maxLength: 512 })),
  /** With `deferred`: offer the update again after this many seconds (deferral.ts). */
  retryAfter: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400 })),
});

const checkAnnounce = Compile(AnnounceSchema);
const checkHealth = Compile(HealthSchema);
const checkStatus = Compile(StatusSchema);

export type DeviceHealth = Static<typeof HealthSchema>;
export type Announce = Omit<Static<typeof AnnounceSchema>, 'health'> & { health?: DeviceHealth };
export type StatusReport = Omit<Static<typeof StatusSchema>, 'state'> & { state: ReportedState };

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };
/** An announce is taken without a health report that fails its checks; `healthError` says why it was dropped. */
export type ParsedAnnounce = { ok: true; value: Announce; healthError?: string } | { ok: false; error: string };

function parseJsonObject(payload: Buffer): Parsed<Record<string, unknown>> {
  if (payload.length > MAX_PAYLOAD_BYTES) return { ok: false, error: `payload larger than ${MAX_PAYLOAD_BYTES} bytes` };
  let value: unknown;
  try {
    value = JSON.parse(payload.toString('utf8'));
  } catch {
    return { ok: false, error: 'payload is not JSON' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, error: 'payload is not a JSON object' };
  return { ok: true, value: value as Record<string, unknown> };
}

function firstError(errors: { instancePath: string; message: string }[]): string {
  const e = errors[0];
  return e ? `${e.instancePath.replace(/^\//, '') || 'payload'}: ${e.message}` : 'invalid payload';
}

/**
 * An announce with its version normalised to canonical semver. A version that is not semver is
 * the running image's own string (an Arduino build's 'heads/idf-release/v4.4-0-gd4572'):
 * `catalogVersionOf` maps it to the catalog version of the image that carries it.
 */
export function parseAnnounce(payload: Buffer, catalogVersionOf?: (type: string, imageVersion: string) => string | undefined): ParsedAnnounce {
  const json = parseJsonObject(payload);
  if (!json.ok) return json;
  if (!checkAnnounce.Check(json.value)) return { ok: false, error: firstError(checkAnnounce.Errors(json.value)) };
  const { health, ...value } = json.value as Static<typeof AnnounceSchema>;
  const version = normaliseVersion(value.version) ?? catalogVersionOf?.(value.type, value.version);
  if (!version) return { ok: false, error: `version: '${value.version}' is not a semantic version, nor the image version of ${value.type} firmware in the catalog` };
  if (health === undefined) return { ok: true, value: { ...value, version } };
  if (typeof health !== 'object' || health === null || Array.isArray(health)) return { ok: true, value: { ...value, version }, healthError: 'health: must be an object' };
  if (!checkHealth.Check(health)) return { ok: true, value: { ...value, version }, healthError: `health/${firstError(checkHealth.Errors(health))}` };
  return { ok: true, value: { ...value, version, health: health as DeviceHealth } };
}

export function parseStatus(payload: Buffer): Parsed<StatusReport> {
  const json = parseJsonObject(payload);
  if (!json.ok) return json;
  if (!checkStatus.Check(json.value)) return { ok: false, error: firstError(checkStatus.Errors(json.value)) };
  const value = json.value as StatusReport;
  if (value.version !== undefined) {
    // Not semver: the image's own version string (the attempt's firmware says which catalog version it is).
    const version = normaliseVersion(value.version);
    if (version) value.version = version;
    else delete value.version;
  }
  return { ok: true, value };
}

export type NoneReason = 'up-to-date' | 'unknown-type' | 'invalid-announce' | 'type-mismatch' | 'not-targeted' | 'chip-mismatch' | 'previously-failed'
  | 'waiting-for-wave' | 'deferred' | 'rollout-scheduled' | 'rollout-paused' | 'outside-maintenance-window' | 'rate-limited' | 'retry-backoff' | 'secure-version';

export type Command =
  | {
    action: 'update'; updateId: string; type: string; version: string; url: string; sha256: string; size: number;
    /** The image's own version (app descriptor) when it differs from the catalog version: what the device checks the image against. */
    imageVersion?: string;
    /** Signed commands (src/protocol/command-signature.ts): the device it is for, Unix seconds after which it is refused, the signature. */
    deviceId?: string; expires?: number; sig?: string;
  }
  | { action: 'none'; reason: NoneReason; error?: string }
  | { action: 'cancel'; updateId: string };

export function encodeCommand(command: Command): string {
  return JSON.stringify(command);
}
