// Provisioning by claim: claim batches and the devices' requests (docs/provisioning.md).
import { Type } from 'typebox';
import { PROVISION_REQUEST_STATES } from '../../fleet/claims.js';
import { DateTime, DeviceId, FirmwareType, Nullable } from './common.js';

export const ClaimCreateBody = Type.Object({
  maxDevices: Type.Integer({ minimum: 1, maximum: 100_000, description: 'device certificates the claim may obtain in all' }),
  expiresAt: Type.String({ format: 'date-time', description: 'the claim certificate expires then, and no request is answered after it' }),
  type: Type.Optional(FirmwareType),
  requireApproval: Type.Optional(Type.Boolean({ description: 'each request waits for `POST /api/provision-requests/{deviceId}/approve`' })),
}, { additionalProperties: false });

export const ClaimView = Type.Object({
  id: Type.String({ description: 'the claim certificate CN' }), serial: Type.String(), type: Nullable(Type.String()),
  maxDevices: Type.Integer(), issued: Type.Integer({ description: 'device certificates obtained so far' }), expiresAt: DateTime,
  requireApproval: Type.Boolean(), createdAt: DateTime, createdBy: Type.String(),
});

export const ClaimCreated = Type.Object({
  claim: ClaimView,
  bundle: Type.Object({
    claimId: Type.String(), type: Nullable(Type.String()), brokerUrl: Type.String(),
    certPem: Type.String(), keyPem: Type.String({ description: 'the claim key, shared by the batch: returned once, not kept' }), caPem: Type.String(),
    fingerprint: Type.String(), expiresAt: DateTime, maxDevices: Type.Integer(),
    commandKeyPem: Nullable(Type.String({ description: 'public half of the command key, kept by the devices that claim with this bundle' })),
    imageKeyDigests: Type.Array(Type.String({ pattern: '^[0-9a-f]{64}$' }), { description: 'digests of the active image signing keys, kept by the devices that claim with this bundle' }),
  }),
});

export const ClaimParams = Type.Object({ id: DeviceId });

export const ProvisionRequestState = Type.Union(PROVISION_REQUEST_STATES.map((s) => Type.Literal(s)));

export const ProvisionRequestQuery = Type.Object({
  state: Type.Optional(ProvisionRequestState),
  claimId: Type.Optional(DeviceId),
});

export const ProvisionRequestView = Type.Object({
  deviceId: Type.String(), claimId: Type.String(), state: Type.String(), certSerial: Nullable(Type.String()), reason: Nullable(Type.String()),
  createdAt: DateTime, decidedAt: Nullable(DateTime), decidedBy: Nullable(Type.String()),
});

export const ProvisionRefuseBody = Type.Object({ reason: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })) }, { additionalProperties: false });
