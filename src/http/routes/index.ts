// Every route, one folder per resource, in the scopes that decide who may call them: /healthz,
// the dashboard's files and public images without credentials; /api, GET /metrics and
// certificate-guarded images behind the auth plugin.
import type { FastifyInstance } from 'fastify';
import { authPlugin } from '../plugins/app/auth.js';
import { auditRoutes } from './audit/index.js';
import { dashboardRoutes } from './dashboard/index.js';
import { deviceRoutes } from './devices/index.js';
import { eventRoutes } from './events/index.js';
import { firmwareRoutes } from './firmware/index.js';
import { healthRoutes } from './health/index.js';
import { imageRoutes } from './images/index.js';
import { keyRoutes } from './keys/index.js';
import { metricsRoutes } from './metrics/index.js';
import { operatorRoutes } from './operators/index.js';
import { provisioningRoutes } from './provisioning/index.js';
import { rolloutRoutes } from './rollouts/index.js';
import { tokenRoutes } from './tokens/index.js';
import { webhookRoutes } from './webhooks/index.js';
import { historyRoutes } from './history/index.js';

export async function routes(app: FastifyInstance): Promise<void> {
  const { imageAccess } = app.services.config;
  await app.register(healthRoutes);
  // Public images need no token, so they sit outside the auth plugin's scope.
  if (imageAccess === 'public') await app.register(imageRoutes);
  await app.register(dashboardRoutes);
  // One auth plugin, so one token store, for everything behind a token: /api and GET /metrics.
  await app.register(async (authed) => {
    // Before the auth plugin's hook: a flood of bad tokens is answered 429 before it costs a 401.
    authed.addHook('onRequest', authed.rateLimit());
    await authed.register(authPlugin);
    await authed.register(metricsRoutes);
    if (imageAccess === 'certificate') await authed.register(imageRoutes);
    await authed.register(async (api) => {
      await api.register(tokenRoutes);
      await api.register(auditRoutes);
      await api.register(firmwareRoutes);
      await api.register(deviceRoutes);
      await api.register(rolloutRoutes);
      await api.register(eventRoutes);
      await api.register(operatorRoutes);
      await api.register(provisioningRoutes);
      await api.register(webhookRoutes);
      await api.register(historyRoutes);
      await api.register(keyRoutes);
    }, { prefix: '/api' });
  });
}
