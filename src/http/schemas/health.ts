// GET /healthz.
import { Type } from 'typebox';

const HealthCheck = { ok: Type.Boolean() };
export const Health = Type.Object({
  status: Type.Enum(['ok', 'degraded']),
  broker: Type.Object({ ...HealthCheck, port: Type.Integer(), connectedDevices: Type.Integer() }),
  database: Type.Object({ ...HealthCheck, kind: Type.String(), error: Type.Optional(Type.String()) }),
  disk: Type.Object({ ...HealthCheck, freeBytes: Type.Integer() }),
  fleet: Type.Object({ devices: Type.Integer(), online: Type.Integer(), runningRollouts: Type.Integer() }),
});
