// Request and response shapes of the operator API: one source for validation and types.
import { Type } from 'typebox';

export const DeviceId = Type.String({ pattern: '^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$', description: 'device id (certificate CN)' });
export const FirmwareType = Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' });
export const Id = Type.String({ minLength: 1, maxLength: 80, pattern: '^[A-Za-z0-9_-]+$' });

export const IdParams = Type.Object({ id: Id });
export const DeviceParams = Type.Object({ id: DeviceId });

export const DeviceCreateBody = Type.Object({ id: DeviceId, type: FirmwareType }, { additionalProperties: false });

export const DeviceLabelsBody = Type.Object({
  tags: Type.Optional(Type.Array(Type.String({ pattern: '^[A-Za-z0-9_.:-]{1,64}$' }), { maxItems: 32, uniqueItems: true })),
  channel: Type.Optional(Type.String({ pattern: '^[a-z0-9-]{1,32}$' })),
}, { additionalProperties: false, minProperties: 1 });

export const DeviceListQuery = Type.Object({
  type: Type.Optional(FirmwareType),
  tag: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_.:-]{1,64}$' })),
  channel: Type.Optional(Type.String({ pattern: '^[a-z0-9-]{1,32}$' })),
  version: Type.Optional(Type.String({ maxLength: 64 })),
  online: Type.Optional(Type.Boolean()),
});

export const FirmwareListQuery = Type.Object({ type: Type.Optional(FirmwareType) });

// ── Shared pieces. A route declares `schema: { tags, summary, params/querystring/body, response }`
// with these; src/http/openapi.ts adds the bearer security and the 401/403 answers of /api routes.
import type { TSchema } from 'typebox';
import { ROLES } from '../auth/roles.js';

/** A timestamp: a Date in handlers, an ISO 8601 string on the wire. */
export const DateTime = Type.Unsafe<Date | string>(Type.String({ format: 'date-time' }));
export const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

export const ErrorResponse = Type.Object({
  statusCode: Type.Integer(), error: Type.String(), message: Type.String(),
}, { description: 'the request failed; `message` says why' });

/** Error answers of a route, for its `response`: `...errors(400, 404)`. */
export const errors = (...codes: Array<400 | 401 | 403 | 404 | 409 | 413 | 415 | 503 | 507>) =>
  Object.fromEntries(codes.map((code) => [code, Type.Object(ErrorResponse.properties, { description: ERROR_DESCRIPTIONS[code] })])) as Record<number, typeof ErrorResponse>;

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'invalid request', 401: 'no valid bearer token', 403: 'the token\'s role does not allow this', 404: 'not found',
  409: 'conflicts with the current state', 413: 'too large', 415: 'unsupported media type', 503: 'unavailable',
  507: 'the server has no storage left for it',
};

// ── Tokens and roles
export const Role = Type.Enum([...ROLES], { description: 'viewer: read-only; operator: also firmware, rollouts, device provisioning and tagging; admin: also tokens and operator certificates' });
export const TokenName = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$', description: 'who the token is for; the audit log\'s actor' });
export const TokenParams = Type.Object({ name: TokenName });
export const TokenCreateBody = Type.Object({ name: TokenName, role: Role }, { additionalProperties: false });
export const TokenView = Type.Object({
  name: Type.String(), role: Role,
  builtIn: Type.Boolean({ description: 'the bootstrap admin token (MQOTA_ADMIN_TOKEN or <data>/admin-token)' }),
  createdAt: Nullable(DateTime), lastUsedAt: Nullable(DateTime),
});
export const TokenCreated = Type.Object({
  ...TokenView.properties,
  token: Type.String({ description: 'the bearer token; shown this once, only its SHA-256 is stored' }),
}, { description: 'the token was created' });

// ── Audit log
export const AuditQuery = Type.Object({
  actor: Type.Optional(Type.String({ maxLength: 64, description: 'token name' })),
  action: Type.Optional(Type.String({ maxLength: 200, description: 'prefix of `<METHOD> <route>`, e.g. `DELETE` or `POST /api/rollouts`' })),
  target: Type.Optional(Type.String({ maxLength: 200 })),
  since: Type.Optional(Type.String({ format: 'date-time' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
});
export const AuditEntryView = Type.Object({
  id: Type.Integer(), at: DateTime,
  actor: Type.String({ description: 'token name' }),
  action: Type.String({ description: '`<METHOD> <route pattern>`, e.g. `POST /api/rollouts/:id/cancel`' }),
  target: Nullable(Type.String({ description: 'the id or name the change was about' })),
  statusCode: Type.Integer({ description: 'the answer: 2xx done, 4xx refused' }),
  details: Nullable(Type.Record(Type.String(), Type.Unknown(), { description: 'the request body without secrets (tokens, keys, certificates), or a multipart upload\'s form fields' })),
});

// ── Firmware
export const FirmwareUploadForm = Type.Object({
  file: Type.String({ format: 'binary', description: 'the image (an ESP-IDF app image is identified from its header)' }),
  type: Type.Optional(FirmwareType),
  version: Type.Optional(Type.String({ description: 'semver; defaults to the image\'s version' })),
  channel: Type.Optional(Type.String({ pattern: '^[a-z0-9-]{1,32}$', default: 'stable' })),
  notes: Type.Optional(Type.String({ maxLength: 4096 })),
}, { additionalProperties: false });
export const FirmwareView = Type.Object({
  id: Type.String(), type: Type.String(), version: Type.String(), channel: Type.String(), notes: Nullable(Type.String()),
  sha256: Type.String(), size: Type.Integer(), url: Type.String({ description: 'the HTTPS link devices download' }), createdAt: DateTime,
  image: Nullable(Type.Object({
    chip: Nullable(Type.String()), projectName: Nullable(Type.String()), version: Nullable(Type.String()),
    idfVersion: Nullable(Type.String()), secureVersion: Nullable(Type.Integer()), buildId: Nullable(Type.String()),
  }, { description: 'what the ESP-IDF image header says; null when the file is not an ESP-IDF app image' })),
});

// ── Devices
export const DeviceView = Type.Object({
  id: Type.String(), type: Type.String(), version: Nullable(Type.String()), chip: Nullable(Type.String()),
  idfVersion: Nullable(Type.String()), secureVersion: Nullable(Type.Integer()), slot: Nullable(Type.String()),
  online: Type.Boolean(), lastSeenAt: Nullable(DateTime),
  tags: Type.Array(Type.String(), { description: 'operator labels; rollouts can target by tag' }),
  channel: Type.String({ description: 'the release channel the device follows' }),
});
export const DeviceProvisioned = Type.Object({
  device: DeviceView,
  bundle: Type.Object({
    deviceId: Type.String(), type: Type.String(), brokerUrl: Type.String(),
    certPem: Type.String(), keyPem: Type.String({ description: 'the device\'s private key: returned once, not kept' }), caPem: Type.String(),
    fingerprint: Type.String(), notAfter: DateTime,
  }),
}, { description: 'the device and everything it needs to connect' });
/** A client certificate in the ledger (src/auth/certificate-ledger.ts). */
export const CertificateView = Type.Object({
  serial: Type.String({ description: 'lower-case hex, no leading zeros' }),
  fingerprint: Nullable(Type.String({ description: 'SHA-256; null for a certificate revoked by serial only' })),
  notAfter: Nullable(DateTime), createdAt: DateTime,
  revokedAt: Nullable(DateTime), revokedBy: Nullable(Type.String()), reason: Nullable(Type.String()),
});

export const RevokeBody = Type.Object({
  serial: Type.Optional(Type.String({ pattern: '^[0-9A-Fa-f:]{1,59}$', description: 'one certificate (also one mqota did not issue); without it, every certificate on record' })),
  reason: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
}, { additionalProperties: false });

export const Revoked = Type.Object({
  revoked: Type.Array(CertificateView, { description: 'the certificates this call revoked' }),
  disconnected: Type.Boolean({ description: 'whether a live connection with one of them was closed' }),
});

export const DeviceDetail = Type.Object({
  ...DeviceView.properties,
  certificates: Type.Array(CertificateView, { description: 'client certificates on record, newest first' }),
  attempts: Type.Array(Type.Object({
    updateId: Type.String(), rolloutId: Type.String(), firmwareId: Type.String(), targetVersion: Type.String(), fromVersion: Nullable(Type.String()),
    state: Type.String(), progress: Nullable(Type.Integer()), error: Nullable(Type.String()), reason: Nullable(Type.String()),
    createdAt: DateTime, updatedAt: DateTime, finishedAt: Nullable(DateTime),
    history: Type.Array(Type.Object({
      state: Type.String(), progress: Nullable(Type.Integer()), error: Nullable(Type.String()), reason: Nullable(Type.String()), at: DateTime,
    })),
  }), { description: 'the latest 50 update attempts, newest first' }),
});

// ── Health
const HealthCheck = { ok: Type.Boolean() };
export const Health = Type.Object({
  status: Type.Enum(['ok', 'degraded']),
  broker: Type.Object({ ...HealthCheck, port: Type.Integer(), connectedDevices: Type.Integer() }),
  database: Type.Object({ ...HealthCheck, kind: Type.String(), error: Type.Optional(Type.String()) }),
  disk: Type.Object({ ...HealthCheck, freeBytes: Type.Integer() }),
  fleet: Type.Object({ devices: Type.Integer(), online: Type.Integer(), runningRollouts: Type.Integer() }),
});

/** A 204 answer: no body (documented without content). */
export const NoContent = (description: string) => Type.Unsafe<undefined>({ type: 'null', description });
