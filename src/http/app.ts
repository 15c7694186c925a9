// The HTTPS application: operator API under /api (bearer token), images under /firmware, /healthz.
import Fastify, { type FastifyInstance, type FastifyError } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import multipart from '@fastify/multipart';
import fastifyStatic from '@fastify/static';
import type { Logger } from '../logger.js';
import type { Services } from '../services.js';
import { authPlugin } from './auth.js';
import { HttpError } from './errors.js';
import { openapiPlugin } from './openapi.js';
import { tokenRoutes } from './routes/tokens.js';
import { auditRoutes } from './routes/audit.js';
import { firmwareRoutes } from './routes/firmware.js';
import { imageRoutes } from './routes/images.js';
import { deviceRoutes } from './routes/devices.js';
import { rolloutRoutes } from './routes/rollouts.js';
import { healthRoutes } from './routes/health.js';
import { metricsEndpoint, metricsRoutes } from './routes/metrics.js';
import { eventRoutes } from './routes/events.js';
import { operatorRoutes } from './routes/operators.js';
import { dashboardRoutes } from './routes/dashboard.js';

export type App = FastifyInstance<any, any, any, Logger, TypeBoxTypeProvider>;

export async function buildApp(services: Services, tls: { key: string; cert: string; clientCa: string }): Promise<App> {
  const app = Fastify({
    // A client certificate is asked for and verified against the device CA, never required here:
    // devices present theirs for image downloads, browsers and API clients carry a token instead.
    https: { key: tls.key, cert: tls.cert, minVersion: 'TLSv1.2', ca: tls.clientCa, requestCert: true, rejectUnauthorized: false },
    loggerInstance: services.logger.child({ component: 'http' }),
    bodyLimit: 1024 * 1024,
    // Path tricks are answered by the router (404) or the name check on /firmware, never the file system.
    routerOptions: { maxParamLength: 200 },
    // Fastify's Ajv strips properties a schema does not allow; a misspelt field (`waves` as
    // `wave`) would then be ignored in silence. Refuse it with a 400 that names it instead.
    ajv: { customOptions: { removeAdditional: false } },
    // Fastify's own wording, except that an unknown field is named.
    schemaErrorFormatter: (errors, dataVar) =>
      new Error(errors.map((e) => (e.keyword === 'additionalProperties'
        ? `${dataVar}${e.instancePath} has an unknown field "${String(e.params.additionalProperty)}"`
        : `${dataVar}${e.instancePath} ${e.message}`)).join(', ')),
  }).withTypeProvider<TypeBoxTypeProvider>() as unknown as App;

  await app.register(multipart, {
    limits: { fileSize: services.config.maxImageBytes, files: 1, fields: 10, fieldSize: 4096, parts: 12 },
  });
  await app.register(fastifyStatic, { root: services.catalog.images.dir, serve: false, decorateReply: true });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    // An HttpError is an answer a route chose, its message written for the client (507: disk full).
    if (status >= 500 && !(err instanceof HttpError)) {
      req.log.error({ err }, 'request failed');
      return reply.code(status).send({ statusCode: status, error: 'Internal Server Error', message: 'Internal Server Error' });
    }
    req.log[status >= 500 ? 'warn' : 'info']({ code: err.code, message: err.message }, 'request rejected');
    return reply.code(status).send({ statusCode: status, error: httpReason(status), message: err.message });
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ statusCode: 404, error: 'Not Found', message: `${req.method} ${req.url.split('?')[0]} not found` }));

  await app.register(metricsRoutes, { services }); // first: its hooks count the responses of every route after it
  await app.register(openapiPlugin); // before the routes: it documents those registered after it
  await app.register(healthRoutes, { services });
  // Public images need no token, so they sit outside the auth plugin's scope.
  if (services.config.imageAccess === 'public') await app.register(imageRoutes, { services });
  await app.register(dashboardRoutes);
  // One auth plugin, so one token store, for everything behind a token: /api and GET /metrics.
  await app.register(async (authed) => {
    await authed.register(authPlugin, { services });
    await authed.register(metricsEndpoint);
    if (services.config.imageAccess === 'certificate') await authed.register(imageRoutes, { services });
    await authed.register(async (api) => {
      await api.register(tokenRoutes);
      await api.register(auditRoutes);
      await api.register(firmwareRoutes, { services });
      await api.register(deviceRoutes, { services });
      await api.register(rolloutRoutes, { services });
      await api.register(eventRoutes, { services });
      await api.register(operatorRoutes, { services });
    }, { prefix: '/api' });
  });
  return app;
}

function httpReason(status: number): string {
  return ({ 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 406: 'Not Acceptable', 409: 'Conflict',
    413: 'Payload Too Large', 415: 'Unsupported Media Type', 416: 'Range Not Satisfiable', 429: 'Too Many Requests',
    503: 'Service Unavailable', 507: 'Insufficient Storage' } as Record<number, string>)[status] ?? 'Error';
}
