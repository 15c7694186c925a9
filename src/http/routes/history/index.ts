// History for the dashboard's charts: a rollout's attempts per state over time, and the devices
// per version of a type over time (src/monitoring/fleet-history.ts).
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { notFound } from '../../errors.js';
import { errors, FirmwareType, IdParams } from '../../schemas/index.js';

const TimeSeries = Type.Object({
  at: Type.Array(Type.Number(), { description: 'times, ms since the epoch' }),
  series: Type.Record(Type.String(), Type.Array(Type.Integer()), { description: 'a value per time, per name' }),
});

export async function historyRoutes(fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { history } = app.services;

  app.get('/rollouts/:id/timeline', {
    schema: {
      tags: ['rollouts'], summary: 'A rollout\'s attempts per state over time',
      description: 'Replayed from the attempts\' stored state histories: after each change, how many attempts were in each state (at most ~300 points).',
      params: IdParams, response: { 200: TimeSeries, ...errors(404) },
    },
  }, async (req) => {
    const timeline = await history.rolloutTimeline(req.params.id);
    if (!timeline) throw notFound(`rollout ${req.params.id}`);
    return timeline;
  });

  app.get('/fleet/versions', {
    schema: {
      tags: ['devices'], summary: 'Devices per version of a type over time',
      description: 'Sampled every MQOTA_VERSION_SAMPLE_MS (kept 90 days).',
      querystring: Type.Object({ type: FirmwareType, days: Type.Optional(Type.Integer({ minimum: 1, maximum: 90, default: 7 })) }),
      response: { 200: TimeSeries, ...errors(400) },
    },
  }, async (req) => history.versionHistory(req.query.type, new Date(Date.now() - (req.query.days ?? 7) * 86_400_000)));
}
