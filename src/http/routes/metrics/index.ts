// GET /metrics: the fleet metrics (plugins/app/metrics.ts) in Prometheus' text format, registered
// where the API's bearer token is required.
import type { FastifyInstance } from 'fastify';

export async function metricsRoutes(app: FastifyInstance): Promise<void> {
  app.get('/metrics', async (_req, reply) => {
    const { contentType, body } = await app.fleetMetrics.exposition();
    return reply.type(contentType).send(body);
  });
}
