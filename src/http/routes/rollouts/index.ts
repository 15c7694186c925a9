// /api/rollouts: create (targeting, waves, controls), inspect, pause, resume, cancel; and steer a
// rollout that runs: edit its settings, retry its failed devices, promote the next wave.
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import type { RolloutPolicy } from '../../../rollouts/policy.js';
import { FAILURE_STATES, isFinalRolloutState, type AttemptState } from '../../../rollouts/states.js';
import { SINGLE_WAVE, type WavePlan } from '../../../rollouts/waves.js';
import { notFound } from '../../errors.js';
import { errors, IdParams, RolloutCreateBody, RolloutDetail, RolloutEditBody, RolloutListQuery, RolloutView, type RolloutCreate } from '../../schemas/index.js';

const POLICY_FIELDS = ['minSuccessRatio', 'soakSeconds', 'maxPerMinute', 'failureThreshold', 'onFailureThreshold', 'attemptTimeoutSeconds',
  'maxRetries', 'retryBackoffSeconds', 'maintenanceWindow', 'waveDeadlineSeconds', 'allowDowngrade', 'downgradeReason'] as const;

function policyOf(body: RolloutCreate): Partial<RolloutPolicy> {
  const policy: Record<string, unknown> = {};
  for (const k of POLICY_FIELDS) if (body[k] !== undefined) policy[k] = body[k];
  return policy as Partial<RolloutPolicy>;
}

export async function rolloutRoutes(fastify: FastifyInstance): Promise<void> {
  const { services } = fastify;
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { rollouts, repository } = services;
  const actor = (req: { principal: { name: string } }) => req.principal.name;

  async function describe(id: string, detail: boolean) {
    const rollout = await repository.findRollout(id);
    if (!rollout) return null;
    const counts = await repository.attemptCounts(id);
    const plan = (rollout.waves as WavePlan | null) ?? SINGLE_WAVE;
    const view = {
      id: rollout.id, name: rollout.name, state: rollout.state, reason: rollout.reason, firmwareId: rollout.firmwareId, firmware: rollout.firmware,
      targeting: { deviceIds: rollout.deviceIds.length ? rollout.deviceIds : null, tags: rollout.targetTags, versionRange: rollout.versionRange, channel: rollout.channel },
      policy: rollout.policy as Record<string, unknown>, waveUnit: plan.unit, waveSizes: plan.sizes, currentWave: rollout.currentWave,
      createdBy: rollout.createdBy, createdAt: rollout.createdAt, startAt: rollout.startAt, updatedAt: rollout.updatedAt, finishedAt: rollout.finishedAt,
      targets: rollout._count.targets, counts, attempts: Object.values(counts).reduce((a, b) => a + b, 0),
    };
    if (!detail) return view;
    const [{ targets, attempts, history }, deferrals] = await Promise.all([repository.rolloutDetail(id), repository.deferrals(id)]);
    const latest = new Map(attempts.map((a) => [a.deviceId, a])); // ordered by time: the last one wins
    const live = rollouts.waveStandings(id);
    const standings = rollouts.memberStandings(id);
    const final = isFinalRolloutState(rollout.state);
    let cumulative = 0;
    const waves = plan.sizes.map((planned, index) => {
      const members = targets.filter((t) => t.wave === index);
      cumulative += members.length;
      const state = index < rollout.currentWave || (final && index === rollout.currentWave) ? 'done'
        : final ? 'skipped' : index === rollout.currentWave ? 'active' : 'pending';
      return {
        index, planned, size: cumulative, devices: members.length, state,
        succeeded: live?.[index]?.healthy ?? members.filter((m) => latest.get(m.deviceId)?.state === 'succeeded').length,
        failed: live?.[index]?.failed ?? members.filter((m) => FAILURE_STATES.has(latest.get(m.deviceId)?.state as AttemptState)).length,
        skipped: live?.[index]?.skipped ?? 0,
      };
    });
    const devices = targets.map((t) => {
      const a = latest.get(t.deviceId);
      const standing = standings?.get(t.deviceId) ?? null;
      return { deviceId: t.deviceId, wave: t.wave, updateId: a?.id ?? null, state: a?.state ?? null, retry: a?.retry ?? null, progress: a?.progress ?? null,
        error: a?.error ?? null, reason: a?.reason ?? null, fromVersion: a?.fromVersion ?? null, updatedAt: a?.updatedAt ?? null,
        standing: standing === 'open' ? 'waiting' : standing, skipReason: standing === 'skipped' ? 'offline' : null, retryGranted: t.retryUpTo };
    }).sort((a, b) => a.wave - b.wave || a.deviceId.localeCompare(b.deviceId));
    const waiting = rollouts.waveWait(id);
    return {
      ...view, waves, waiting, skipped: devices.filter((d) => d.standing === 'skipped').length, deferrals,
      retried: targets.filter((t) => t.retryUpTo > 0).length, devices, history,
    };
  }

  app.post('/rollouts', { schema: { tags: ['rollouts'], summary: 'Start a rollout', description: 'Targets, waves and controls: see docs/api.md. Online targets in the first wave get the command at once.', body: RolloutCreateBody, response: { 201: RolloutView, ...errors(400, 404) } } }, async (req, reply) => {
    const body = req.body;
    const { id, commanded } = await rollouts.createRollout({
      firmwareId: body.firmwareId, name: body.name, deviceIds: body.deviceIds, tags: body.tags, versionRange: body.versionRange, channel: body.channel,
      waves: body.waves, waveUnit: body.waveUnit, startAt: body.startAt ? new Date(body.startAt) : undefined, policy: policyOf(body), createdBy: actor(req),
    });
    return reply.code(201).send({ ...(await describe(id, false))!, commanded });
  });

  app.get('/rollouts', { schema: { tags: ['rollouts'], summary: 'List rollouts, newest first', querystring: RolloutListQuery, response: { 200: Type.Array(RolloutView) } } }, async (req) => {
    const ids = await repository.listRolloutIds(req.query.state, 200);
    const views = await Promise.all(ids.map((id) => describe(id, false)));
    return views.filter((v) => v !== null);
  });

  app.get('/rollouts/:id', { schema: { tags: ['rollouts'], summary: 'A rollout with its waves, devices and history', params: IdParams, response: { 200: RolloutDetail, ...errors(404) } } }, async (req) => {
    const view = await describe(req.params.id, true) as Static<typeof RolloutDetail> | null;
    if (!view) throw notFound(`rollout ${req.params.id}`);
    return view;
  });

  app.patch('/rollouts/:id', { schema: { tags: ['rollouts'], summary: 'Change a rollout\'s settings', description: 'While scheduled, running or paused: waves not yet started, success ratio, soak, rate, failure threshold, timeout, retries, window, wave deadline; validated as at creation, recorded in the history and the audit log. `null` removes a limit.', params: IdParams, body: RolloutEditBody, response: { 200: RolloutView, ...errors(400, 404, 409) } } }, async (req) => {
    const changed = await rollouts.editRollout(req.params.id, req.body, actor(req));
    return { ...(await describe(req.params.id, false))!, changed };
  });

  app.post('/rollouts/:id/retry', { schema: { tags: ['rollouts'], summary: 'Retry the failed devices', description: 'A new attempt for every device whose latest attempt failed, timed out or rolled back (an operator\'s decision: no back-off, rolled back included). 409 when there is none.', params: IdParams, response: { 200: RolloutView, ...errors(404, 409) } } }, async (req) => {
    const retried = await rollouts.retryFailed(req.params.id, actor(req));
    return { ...(await describe(req.params.id, false))!, retried };
  });

  app.post('/rollouts/:id/promote', { schema: { tags: ['rollouts'], summary: 'Start the next wave now', description: 'Whatever the current wave\'s standing; a paused rollout stays paused. 409 in the last wave.', params: IdParams, response: { 200: RolloutView, ...errors(404, 409) } } }, async (req) => {
    await rollouts.promoteRollout(req.params.id, actor(req));
    return (await describe(req.params.id, false))!;
  });

  for (const action of ['pause', 'resume', 'cancel'] as const) {
    app.post(`/rollouts/:id/${action}`, { schema: { tags: ['rollouts'], summary: `${action[0].toUpperCase()}${action.slice(1)} a rollout`, params: IdParams, response: { 200: RolloutView, ...errors(404, 409) } } }, async (req) => {
      const who = actor(req);
      if (action === 'pause') await rollouts.pauseRollout(req.params.id, who);
      else if (action === 'resume') await rollouts.resumeRollout(req.params.id, who);
      else await rollouts.cancelRollout(req.params.id, who);
      return (await describe(req.params.id, false))!;
    });
  }
}
