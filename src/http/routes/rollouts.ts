// /api/rollouts: start, inspect and cancel rollouts.
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { ATTEMPT_STATES } from '../../rollouts/attempt-state.js';
import type { Services } from '../../services.js';
import { notFound } from '../errors.js';
import { IdParams, RolloutCreateBody, RolloutListQuery } from '../schemas.js';

export async function rolloutRoutes(fastify: FastifyInstance, { services }: { services: Services }): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { engine, writes } = services;
  const prisma = services.db.prisma;

  async function describe(id: string, withDevices: boolean) {
    const rollout = await prisma.rollout.findUnique({ where: { id }, include: { firmware: { select: { type: true, version: true, sha256: true } } } });
    if (!rollout) return null;
    const groups = await prisma.updateAttempt.groupBy({ by: ['state'], where: { rolloutId: id }, _count: { _all: true } });
    const counts = Object.fromEntries(ATTEMPT_STATES.map((s) => [s, 0])) as Record<string, number>;
    for (const g of groups) counts[g.state] = g._count._all;
    const view = {
      id: rollout.id, state: rollout.state, reason: rollout.reason, firmwareId: rollout.firmwareId, firmware: rollout.firmware,
      deviceIds: rollout.deviceIds.length ? rollout.deviceIds : null, createdBy: rollout.createdBy,
      createdAt: rollout.createdAt, updatedAt: rollout.updatedAt, finishedAt: rollout.finishedAt,
      counts, attempts: Object.values(counts).reduce((a, b) => a + b, 0),
    };
    if (!withDevices) return view;
    const devices = await prisma.updateAttempt.findMany({
      where: { rolloutId: id }, orderBy: { createdAt: 'asc' },
      select: { deviceId: true, id: true, state: true, progress: true, error: true, reason: true, fromVersion: true, updatedAt: true },
    });
    return { ...view, devices: devices.map(({ id: updateId, ...d }) => ({ updateId, ...d })) };
  }

  app.post('/rollouts', { schema: { body: RolloutCreateBody } }, async (req, reply) => {
    const { id, commanded } = await engine.createRollout({ ...req.body, createdBy: 'admin' });
    await writes.flush();
    return reply.code(201).send({ ...(await describe(id, false)), commanded });
  });

  app.get('/rollouts', { schema: { querystring: RolloutListQuery } }, async (req) => {
    await writes.flush();
    const rows = await prisma.rollout.findMany({ where: req.query.state ? { state: req.query.state } : {}, orderBy: { createdAt: 'desc' }, take: 200, select: { id: true } });
    return Promise.all(rows.map((r) => describe(r.id, false)));
  });

  app.get('/rollouts/:id', { schema: { params: IdParams } }, async (req) => {
    await writes.flush();
    const view = await describe(req.params.id, true);
    if (!view) throw notFound(`rollout ${req.params.id}`);
    return view;
  });

  app.post('/rollouts/:id/cancel', { schema: { params: IdParams } }, async (req) => {
    await engine.cancelRollout(req.params.id, 'admin');
    await writes.flush();
    return describe(req.params.id, false);
  });
}
