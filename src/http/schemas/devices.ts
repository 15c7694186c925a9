// The fleet and device provisioning.
import { Type } from 'typebox';
import { CertificateView } from './certificates.js';
import { MAX_CSR_PEM_LENGTH } from '../../../certs/csr.js';
import { MAX_IMPORT_DEVICES } from '../../fleet/device-provisioning.js';
import { HealthSchema } from '../../protocol/messages.js';
import { AttemptState, DateTime, DeviceId, FirmwareType, Nullable } from './common.js';

const CsrPem = Type.String({
  minLength: 1, maxLength: MAX_CSR_PEM_LENGTH,
  description: 'PEM PKCS#10 request for the device\'s own key (ECDSA P-256 or RSA 2048-4096, signed with it; subject CN = the device id or none): the key never leaves the device and the bundle has none',
});
const DeviceTag = Type.String({ pattern: '^[A-Za-z0-9_.:-]{1,64}$' });

/** Without `type` the device takes the type of its first announce, then keeps it. */
export const DeviceCreateBody = Type.Object({ id: DeviceId, type: Type.Optional(FirmwareType), csrPem: Type.Optional(CsrPem) }, { additionalProperties: false });

export const DeviceCsrBody = Type.Object({ csrPem: CsrPem, type: Type.Optional(FirmwareType) }, { additionalProperties: false });

export const DeviceImportBody = Type.Object({
  devices: Type.Array(Type.Object({
    id: DeviceId, type: Type.Optional(FirmwareType),
    tags: Type.Optional(Type.Array(DeviceTag, { maxItems: 32, uniqueItems: true })),
    csrPem: Type.Optional(CsrPem),
  }, { additionalProperties: false }), { minItems: 1, maxItems: MAX_IMPORT_DEVICES }),
}, { additionalProperties: false });

export const DeviceLabelsBody = Type.Object({
  tags: Type.Optional(Type.Array(DeviceTag, { maxItems: 32, uniqueItems: true })),
  channel: Type.Optional(Type.String({ pattern: '^[a-z0-9-]{1,32}$' })),
}, { additionalProperties: false, minProperties: 1 });

export const DeviceTypeBody = Type.Object({
  type: FirmwareType,
}, { additionalProperties: false });

export const DeviceListQuery = Type.Object({
  type: Type.Optional(FirmwareType),
  tag: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_.:-]{1,64}$' })),
  channel: Type.Optional(Type.String({ pattern: '^[a-z0-9-]{1,32}$' })),
  version: Type.Optional(Type.String({ maxLength: 64 })),
  online: Type.Optional(Type.Boolean()),
});

export const DeviceView = Type.Object({
  id: Type.String(), type: Nullable(Type.String()), version: Nullable(Type.String()), chip: Nullable(Type.String()),
  idfVersion: Nullable(Type.String()), secureVersion: Nullable(Type.Integer()), slot: Nullable(Type.String()),
  online: Type.Boolean(), lastSeenAt: Nullable(DateTime),
  tags: Type.Array(Type.String(), { description: 'operator labels; rollouts can target by tag' }),
  channel: Type.String({ description: 'the release channel the device follows' }),
  health: Nullable(Type.Object({ ...HealthSchema.properties, at: DateTime }, { description: 'the latest health report of an announce (docs/protocol.md#health), and when it came' })),
});
export const DeviceBundle = Type.Object({
  deviceId: Type.String(), type: Nullable(Type.String()), brokerUrl: Type.String(),
  certPem: Type.String(), keyPem: Nullable(Type.String({ description: 'the device\'s private key: returned once, not kept; null when the device made its own (CSR)' })), caPem: Type.String(),
  fingerprint: Type.String(), notAfter: DateTime,
  commandKeyPem: Nullable(Type.String({ description: 'public half of the command key: a device that has it acts only on update commands signed with it (null: commands are not signed, MQOTA_SIGN_COMMANDS=false)' })),
  imageKeyDigests: Type.Array(Type.String({ pattern: '^[0-9a-f]{64}$' }), { description: 'Secure Boot v2 key digests of the active signing keys: the Linux device installs only images one of them signed (an ESP32 takes them from eFuse or its running image)' }),
});
export const DeviceProvisioned = Type.Object({
  device: DeviceView,
  bundle: DeviceBundle,
}, { description: 'the device and everything it needs to connect' });

export const DevicesImported = Type.Object({
  devices: Type.Array(DeviceProvisioned, { description: 'in the order of the request' }),
});

export const DeviceDetail = Type.Object({
  ...DeviceView.properties,
  certificates: Type.Array(CertificateView, { description: 'client certificates on record, newest first' }),
  attempts: Type.Array(Type.Object({
    updateId: Type.String(), rolloutId: Type.String(), firmwareId: Type.String(), targetVersion: Type.String(), fromVersion: Nullable(Type.String()),
    state: AttemptState, progress: Nullable(Type.Integer()), error: Nullable(Type.String()), reason: Nullable(Type.String()),
    createdAt: DateTime, updatedAt: DateTime, finishedAt: Nullable(DateTime),
    history: Type.Array(Type.Object({
      state: AttemptState, progress: Nullable(Type.Integer()), error: Nullable(Type.String()), reason: Nullable(Type.String()), at: DateTime,
    })),
  }), { description: 'the latest 50 update attempts, newest first' }),
});
