// The HTTPS application: operator API under /api (bearer token), images under /firmware, /healthz.
// One instance, one error handler and one not-found handler; plugins/ and routes/ hold the rest.
import Fastify, { LogController, type FastifyInstance, type FastifyError } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { isDatabaseUnavailable } from '../db/database.js';
import type { Logger } from '../logger.js';
import type { Services } from '../services.js';
import { HttpError } from './errors.js';
import { lazySchemaCompilers } from './lazy-schema-compilers.js';
import { logSerializers } from './log-serializers.js';
import { appPlugins } from './plugins/app/index.js';
import { servicesPlugin } from './plugins/app/services.js';
import { externalPlugins } from './plugins/external/index.js';
import { routes } from './routes/index.js';

export type App = FastifyInstance<any, any, any, Logger, TypeBoxTypeProvider>;

/**
 * The routes whose schemas are compiled as soon as the app listens rather than on their first
 * request: a rollout's creation and the emergency brake, which an operator calls while devices
 * are being served, and the reads the dashboard polls. Each first use otherwise compiles tens of
 * milliseconds of Ajv on the event loop; the other routes compile on their first request.
 */
const WARM_ROUTES = new Set([
  'POST /api/rollouts', 'POST /api/rollouts/:id/pause', 'GET /api/rollouts', 'GET /api/rollouts/:id',
  'GET /api/devices', 'GET /api/devices/:id', 'GET /api/events',
]);

/**
 * `warmedUp` is called once the warm-ups that follow listening are done (WARM_ROUTES' schemas, the
 * rollout reads' query plans): what start-up does is over by then.
 */
export async function buildApp(services: Services, tls: { key: string; cert: string; clientCa: string }, opts: { warmedUp?: () => void } = {}): Promise<App> {
  const schemas = lazySchemaCompilers((route) => WARM_ROUTES.has(`${route.method} ${route.url}`));
  const app = Fastify({
    // A client certificate is asked for and verified against the device CA, never required here:
    // devices present theirs for image downloads, browsers and API clients carry a token instead.
    https: { key: tls.key, cert: tls.cert, minVersion: 'TLSv1.2', ca: tls.clientCa, requestCert: true, rejectUnauthorized: false },
    // Our `req` serializer wins over Fastify's: query-string credentials never reach the log.
    loggerInstance: services.logger.child({ component: 'http' }, { serializers: logSerializers }),
    // Access logs are one `debug` line per request (the hook below), so `info` shows device,
    // update and rollout events rather than every dashboard poll and image range request.
    // (Through a LogController: Fastify 5.12 deprecates the top-level option with a warning at start.)
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1024 * 1024,
    // Path tricks are answered by the router (404) or the name check on /firmware, never the file system.
    routerOptions: { maxParamLength: 200 },
    // Fastify's Ajv strips properties a schema does not allow; a misspelt field (`waves` as
    // `wave`) would then be ignored in silence. Refuse it with a 400 that names it instead.
    ajv: { customOptions: { removeAdditional: false } },
    // Each route's schemas are compiled on its first request (or WARM_ROUTES' after listening), not while a start waits.
    schemaController: schemas.schemaController,
    // Fastify's own wording, except that an unknown field is named.
    schemaErrorFormatter: (errors, dataVar) =>
      new Error(errors.map((e) => (e.keyword === 'additionalProperties'
        ? `${dataVar}${e.instancePath} has an unknown field "${String(e.params.additionalProperty)}"`
        : `${dataVar}${e.instancePath} ${e.message}`)).join(', ')),
  }).withTypeProvider<TypeBoxTypeProvider>() as unknown as App;

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (isDatabaseUnavailable(err)) {
      // Not a fault of the request and not an internal error: the client should come back.
      req.log.warn({ err }, 'request failed: database unavailable');
      return reply.code(503).header('retry-after', '5').send({ statusCode: 503, error: 'Service Unavailable', message: 'the database is unavailable; retry later' });
    }
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    // An HttpError is an answer a route chose, its message written for the client (507: disk full).
    if (status >= 500 && !(err instanceof HttpError)) {
      req.log.error({ err }, 'request failed');
      return reply.code(status).send({ statusCode: status, error: 'Internal Server Error', message: 'Internal Server Error' });
    }
    req.log[status >= 500 ? 'warn' : 'info']({ code: err.code, message: err.message }, 'request rejected');
    return reply.code(status).send({ statusCode: status, error: httpReason(status), message: err.message });
  });
  app.addHook('onResponse', async (req, reply) => {
    req.log.debug({ req, res: reply, responseTime: reply.elapsedTime }, 'request completed');
  });
  // WARM_ROUTES' schemas are compiled one per turn once the app listens, and the rollout
  // answers' queries planned (fleet-repository.ts, planRolloutReads).
  let stopWarmUp = () => {};
  app.addHook('onListen', async () => {
    const schemasCompiled = new Promise<void>((resolve) => { stopWarmUp = schemas.warmUp(resolve); });
    const readsPlanned = services.repository.planRolloutReads().catch((err: unknown) => app.log.debug({ err }, 'planning the rollout reads failed'));
    void Promise.all([schemasCompiled, readsPlanned]).then(() => opts.warmedUp?.());
  });
  app.addHook('onClose', async () => stopWarmUp());
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ statusCode: 404, error: 'Not Found', message: `${req.method} ${req.url.split('?')[0]} not found` }));

  // The layers, in order: the parts of mqota as a decorator, third-party plugins, mqota's own, the routes.
  await app.register(servicesPlugin, { services });
  await app.register(externalPlugins);
  await app.register(appPlugins);
  await app.register(routes);
  return app;
}

function httpReason(status: number): string {
  return ({ 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 406: 'Not Acceptable', 409: 'Conflict',
    413: 'Payload Too Large', 415: 'Unsupported Media Type', 416: 'Range Not Satisfiable', 429: 'Too Many Requests',
    503: 'Service Unavailable', 507: 'Insufficient Storage' } as Record<number, string>)[status] ?? 'Error';
}
