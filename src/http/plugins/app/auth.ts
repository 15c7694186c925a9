// Who may call the operator API, and the record of what they did: bearer tokens with roles
// (src/auth/), the role each route needs, and an audit entry for every change attempted.
import fp from 'fastify-plugin';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { identityFromConnection, type ConnectionIdentity } from '../../../../certs/identity.js';
import { AuditLog, sanitise } from '../../../auth/audit-log.js';
import { defaultRole, roleAllows, type Principal, type Role } from '../../../auth/roles.js';
import { ApiTokenStore } from '../../../auth/token-store.js';
import { HttpError } from '../../errors.js';
import { redactUrl } from '../../log-serializers.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The least role that may call the route. Default: `viewer` for GET/HEAD, `operator` otherwise. */
    role?: Role;
    /** A device may call the route with its TLS client certificate instead of a token (image downloads). */
    device?: boolean;
  }
  interface FastifyRequest {
    /** The caller of an /api request, set before validation and handlers run (null outside /api). */
    principal: Principal;
    /** The device whose client certificate authenticated a `device` route (null when a token did). */
    device: ConnectionIdentity | null;
    /** Set by a handler whose body says too little for the audit log (a multipart upload's form fields). */
    auditDetails: Record<string, unknown> | null;
  }
  interface FastifyInstance {
    apiTokens: ApiTokenStore;
    auditLog: AuditLog;
  }
}

const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export const authPlugin = fp(async (app: FastifyInstance) => {
  const { services } = app;
  const log = services.logger.child({ component: 'auth' });
  const tokens = new ApiTokenStore(services.db.prisma, services.adminToken, log, services.sharedCaches);
  await tokens.load();
  const audit = new AuditLog(services.db.prisma, log);
  app.decorate('apiTokens', tokens);
  app.decorate('auditLog', audit);
  app.decorateRequest('principal', null as unknown as Principal);
  app.decorateRequest('device', null);
  app.decorateRequest('auditDetails', null);
  app.addHook('onClose', async () => { await tokens.close(); await audit.settled(); });

  // Routing has happened, nothing of the body is read yet: a caller without the role is refused before any upload starts.
  app.addHook('onRequest', async (req, reply) => {
    const match = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    const principal = match ? tokens.authenticate(match[1]) : null;
    if (!principal && req.routeOptions.config.device) {
      // The HTTPS listener asks for a client certificate and verifies it against the device CA,
      // but lets connections without one through (browsers, API clients); here it is required.
      const device = identityFromConnection(req.raw.socket);
      const revoked = device !== null && services.certificates.isRevoked(device.serial);
      if (device?.role === 'device' && !revoked) {
        req.device = device;
        return;
      }
      req.log.warn({ ip: req.ip, url: redactUrl(req.url), deviceId: device?.id, revoked }, 'image request without a device certificate or token');
      return reply.code(401).header('www-authenticate', 'Bearer realm="mqota"').send({ statusCode: 401, error: 'Unauthorized', message: 'a device client certificate (not revoked) or an Authorization: Bearer <token> header is required' });
    }
    if (!principal) {
      req.log.warn({ ip: req.ip, url: redactUrl(req.url) }, 'API request without a valid token');
      return reply.code(401).header('www-authenticate', 'Bearer realm="mqota"').send({ statusCode: 401, error: 'Unauthorized', message: 'a valid Authorization: Bearer <token> header is required' });
    }
    req.principal = principal;
    if (req.is404) return;
    const need = req.routeOptions.config.role ?? defaultRole(req.method);
    if (!roleAllows(principal.role, need)) {
      throw new HttpError(403, `token '${principal.name}' has the ${principal.role} role; ${req.method} ${req.routeOptions.url} needs ${need}`);
    }
  });

  // Everything that tries a change is recorded before the answer leaves (unauthenticated requests
  // are not attributable and are only logged, above): a 2xx is never sent for a change whose audit
  // entry could still be lost to a crash.
  app.addHook('onSend', async (req, reply, payload) => {
    if (!audited(req) || !req.principal) return payload;
    let created: string | null = null;
    if (reply.statusCode < 300 && typeof payload === 'string' && !requestTarget(req)) {
      try {
        const id = (JSON.parse(payload) as { id?: unknown } | null)?.id;
        if (typeof id === 'string') created = id;
      } catch { /* not JSON: nothing to name */ }
    }
    const body = req.body;
    const details = req.auditDetails ?? (body && typeof body === 'object' ? (body as Record<string, unknown>) : null);
    await audit.record({
      at: new Date(),
      actor: req.principal.name,
      action: `${req.method} ${req.routeOptions.url}`,
      target: requestTarget(req) ?? created,
      statusCode: reply.statusCode,
      details: details ? sanitise(details) as Record<string, unknown> : null,
    });
    return payload;
  });
}, { name: 'mqota-auth', encapsulate: false });

function audited(req: FastifyRequest): boolean {
  return !READ_METHODS.has(req.method) && !req.is404 && req.routeOptions.url !== undefined;
}

/** What a change is about, when its request says: `params.id`, `params.name`, `body.id`, `body.name`. */
function requestTarget(req: FastifyRequest): string | null {
  const params = (req.params ?? {}) as Record<string, unknown>;
  const body = (req.body && typeof req.body === 'object' ? req.body : {}) as Record<string, unknown>;
  for (const v of [params.id, params.name, body.id, body.name]) if (typeof v === 'string' && v) return v;
  return null;
}
