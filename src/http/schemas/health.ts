// GET /healthz.
import { Type } from 'typebox';

const HealthCheck = { ok: Type.Boolean() };
export const Health = Type.Object({
  status: Type.Enum(['ok', 'degraded']),
  /** Why degraded, in words; absent when ok. */
  reason: Type.Optional(Type.String()),
  broker: Type.Object({ ...HealthCheck, port: Type.Integer(), connectedDevices: Type.Integer() }),
  database: Type.Object({ ...HealthCheck, kind: Type.String(), error: Type.Optional(Type.String()) }),
  disk: Type.Object({ ...HealthCheck, freeBytes: Type.Integer() }),
  writes: Type.Object({ ...HealthCheck, backlogRows: Type.Integer(), maxBacklogRows: Type.Integer(), failingSince: Type.Union([Type.String(), Type.Null()]), lastError: Type.Union([Type.String(), Type.Null()]) }),
  fleet: Type.Object({ devices: Type.Integer(), online: Type.Integer(), runningRollouts: Type.Integer() }),
  /** This instance (MQOTA_INSTANCE_ID), and whether it runs the rollout ticks (always, alone on PGlite). */
  instance: Type.Object({ id: Type.String(), leader: Type.Boolean() }),
});
