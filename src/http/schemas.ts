// Request and response shapes of the operator API: one source for validation and types.
import { Type } from 'typebox';

export const DeviceId = Type.String({ pattern: '^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$', description: 'device id (certificate CN)' });
export const FirmwareType = Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' });
export const Id = Type.String({ minLength: 1, maxLength: 80, pattern: '^[A-Za-z0-9_-]+$' });

export const IdParams = Type.Object({ id: Id });
export const DeviceParams = Type.Object({ id: DeviceId });

export const DeviceCreateBody = Type.Object({ id: DeviceId, type: FirmwareType }, { additionalProperties: false });

export const DeviceListQuery = Type.Object({
  type: Type.Optional(FirmwareType),
  version: Type.Optional(Type.String({ maxLength: 64 })),
  online: Type.Optional(Type.Boolean()),
});

export const FirmwareListQuery = Type.Object({ type: Type.Optional(FirmwareType) });

export const RolloutCreateBody = Type.Object({
  firmwareId: Id,
  deviceIds: Type.Optional(Type.Array(DeviceId, { minItems: 1, maxItems: 100_000 })),
}, { additionalProperties: false });

export const RolloutListQuery = Type.Object({
  state: Type.Optional(Type.Union(['running', 'completed', 'cancelled'].map((s) => Type.Literal(s)))),
});
