// @fastify/rate-limit for the operator API (/api/*). A caller with a valid token is keyed by a
// hash of its token (never the token), with a budget a busy script or dashboard stays under; a
// request without a valid token is keyed by its address, with a small budget per window, so
// guessing tokens or flooding the API with bad ones is cut short (429 and Retry-After) without
// locking out operators with good tokens from the same address. /healthz, /metrics, the dashboard
// files and image downloads are never counted: load balancers, scrapers and a fleet of devices
// behind one address must not be starved by somebody else's flood.
// The hook itself is added by routes/index.ts, before the auth plugin's, where /api is.
import { createHash } from 'node:crypto';
import rateLimit from '@fastify/rate-limit';
import fp from 'fastify-plugin';
import type { FastifyInstance, FastifyRequest } from 'fastify';

const BEARER = /^Bearer\s+(\S+)$/i;

/** `token:<hash>` for a valid bearer token, `address:<ip>` otherwise. */
function rateLimitKey(req: FastifyRequest): string {
  const token = BEARER.exec(req.headers.authorization ?? '')?.[1];
  // apiTokens is decorated by the auth plugin, registered in the same scope as the hook.
  if (token && req.server.apiTokens?.authenticate(token)) {
    return `token:${createHash('sha256').update(token).digest('base64url')}`;
  }
  return `address:${req.ip}`;
}

export const rateLimitPlugin = fp(async (app: FastifyInstance) => {
  const { rateLimitWindowMs, rateLimitTokenMax, rateLimitFailedAuthMax } = app.services.config;
  await app.register(rateLimit, {
    global: false, // only where routes/index.ts adds the hook
    timeWindow: rateLimitWindowMs,
    keyGenerator: rateLimitKey,
    max: (_req, key) => (key.startsWith('token:') ? rateLimitTokenMax : rateLimitFailedAuthMax),
    allowList: (req) => !req.url.startsWith('/api/'),
  });
}, { name: 'mqota-rate-limit' });
