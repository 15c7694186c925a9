// GET /healthz without auth: broker, database and disk, for load balancers and orchestrators.
import type { FastifyInstance } from 'fastify';
import { Health } from '../../schemas/index.js';

const MIN_FREE_BYTES = 64 * 1024 * 1024;

export async function healthRoutes(app: FastifyInstance): Promise<void> {
  const { services } = app;
  app.get('/healthz', {
    schema: {
      tags: ['health'], summary: 'Service health', description: '503 when the broker, the database or the disk (under 64 MiB free) is not ok.',
      response: { 200: { ...Health, description: 'ok' }, 503: { ...Health, description: 'degraded' } },
    },
  }, async (_req, reply) => {
    const { db, broker, catalog, registry, engine } = services;
    const database = await db.ping().then(() => ({ ok: true, kind: db.kind }), (err: Error) => ({ ok: false, kind: db.kind, error: err.message }));
    const freeBytes = await catalog.images.freeBytes().catch(() => 0);
    const disk = { ok: freeBytes >= MIN_FREE_BYTES, freeBytes };
    const mqtt = { ok: !broker.aedes.closed, port: broker.port, connectedDevices: broker.connectedDevices() };
    const ok = database.ok && disk.ok && mqtt.ok;
    return reply.code(ok ? 200 : 503).send({
      status: ok ? 'ok' : 'degraded', broker: mqtt, database, disk,
      fleet: { devices: registry.size, online: registry.onlineCount(), runningRollouts: engine.runningCount() },
    });
  });
}
