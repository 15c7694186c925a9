// GET /healthz without auth: broker, database and disk, for load balancers and orchestrators.
import type { FastifyInstance } from 'fastify';
import { Health } from '../../schemas/index.js';

const MIN_FREE_BYTES = 64 * 1024 * 1024;

export async function healthRoutes(app: FastifyInstance): Promise<void> {
  const { services } = app;
  app.get('/healthz', {
    schema: {
      tags: ['health'], summary: 'Service health', description: '503 with `reason` when the broker, the database, its writes (failing, or a full backlog) or the disk (under 64 MiB free) is not ok.',
      response: { 200: { ...Health, description: 'ok' }, 503: { ...Health, description: 'degraded' } },
    },
  }, async (_req, reply) => {
    const { db, broker, catalog, registry, rollouts, repository } = services;
    const database: { ok: boolean; kind: string; error?: string } = await db.ping().then(() => ({ ok: true, kind: db.kind }), (err: Error) => ({ ok: false, kind: db.kind, error: err.message }));
    const freeBytes = await catalog.images.freeBytes().catch(() => 0);
    const disk = { ok: freeBytes >= MIN_FREE_BYTES, freeBytes };
    const mqtt = { ok: broker.healthy(), port: broker.port, connectedDevices: broker.connectedDevices() };
    const commit = repository.health();
    const writes = {
      ok: commit.ok, backlogRows: commit.backlogRows, maxBacklogRows: commit.maxBacklogRows,
      failingSince: commit.failingSince, lastError: commit.lastError,
    };
    const reasons = [
      !database.ok && `database unreachable: ${database.error}`,
      !writes.ok && commit.reason,
      !disk.ok && `disk almost full: ${freeBytes} bytes free`,
      !mqtt.ok && 'MQTT broker closed',
    ].filter((r): r is string => typeof r === 'string');
    const ok = reasons.length === 0;
    return reply.code(ok ? 200 : 503).send({
      status: ok ? 'ok' : 'degraded', ...(ok ? {} : { reason: reasons.join('; ') }), broker: mqtt, database, disk, writes,
      fleet: { devices: registry.size, online: registry.onlineCount(), runningRollouts: rollouts.runningCount() },
      instance: { id: services.config.instanceId, leader: services.cluster?.isLeader() ?? true },
    });
  });
}
