// Prometheus metrics over HTTP: `metricsRoutes`, registered at the root and not encapsulated, holds
// the fleet metrics and the app-wide hooks that count HTTP errors and the image bytes /firmware/
// responses write (so it sees every route registered after it); `metricsEndpoint` is GET /metrics
// in the text format, registered where the API's bearer token is required.
import { Transform, pipeline, type Readable } from 'node:stream';
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import { FleetMetrics } from '../../monitoring/metrics.js';
import type { Services } from '../../services.js';

declare module 'fastify' {
  interface FastifyInstance {
    fleetMetrics: FleetMetrics;
  }
}

export const metricsRoutes = fp(async (app: FastifyInstance, { services }: { services: Services }) => {
  const metrics = new FleetMetrics({
    events: services.events, broker: services.broker, rollouts: services.rollouts, writes: services.repository, logger: services.logger,
  });
  await metrics.load();
  app.decorate('fleetMetrics', metrics);
  app.addHook('onClose', async () => metrics.close());

  app.addHook('onResponse', async (_req, reply) => {
    if (reply.statusCode >= 400) metrics.httpErrors.inc({ class: `${Math.floor(reply.statusCode / 100)}xx` });
  });

  // Bytes counted as they are handed to the connection: a download cut short counts what went out.
  app.addHook('onSend', async (req, _reply, payload) => {
    if (!req.routeOptions.url?.startsWith('/firmware/') || !isReadable(payload)) return payload;
    const counted = new Transform({
      transform(chunk: Buffer, _enc, done) {
        metrics.imageBytesServed.inc(chunk.length);
        done(null, chunk);
      },
    });
    pipeline(payload, counted, () => undefined); // an error on either side destroys both; Fastify sees it on `counted`
    return counted;
  });

}, { name: 'mqota-metrics' });

export async function metricsEndpoint(app: FastifyInstance): Promise<void> {
  app.get('/metrics', async (_req, reply) => {
    const { contentType, body } = await app.fleetMetrics.exposition();
    return reply.type(contentType).send(body);
  });
}

function isReadable(payload: unknown): payload is Readable {
  return typeof payload === 'object' && payload !== null && typeof (payload as Readable).pipe === 'function';
}
