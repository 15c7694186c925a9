// The fleet metrics as a decorator (`app.fleetMetrics`), and the app-wide hooks that count HTTP
// errors and the image bytes /firmware/ responses write. Not encapsulated and registered before the
// routes, so it sees every one of them; GET /metrics (routes/metrics) exposes it.
import { Transform, pipeline, type Readable } from 'node:stream';
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import { FleetMetrics } from '../../../monitoring/metrics.js';

declare module 'fastify' {
  interface FastifyInstance {
    fleetMetrics: FleetMetrics;
  }
}

export const metricsPlugin = fp(async (app: FastifyInstance) => {
  const { services } = app;
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
    if (!req.routeOptions.url?.startsWith('/firmware/') || req.method === 'HEAD') return payload;
    if (Buffer.isBuffer(payload)) { metrics.imageBytesServed.inc(payload.length); return payload; } // a small image or range from the cache
    if (!isReadable(payload)) return payload;
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

function isReadable(payload: unknown): payload is Readable {
  return typeof payload === 'object' && payload !== null && typeof (payload as Readable).pipe === 'function';
}
