// The web dashboard at /: static files (HTML, ES modules, CSS) with no build step, served from
// src/http/dashboard. Every call it makes goes to /api with the operator's bearer token.
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import fastifyStatic from '@fastify/static';

export const DASHBOARD_DIR = fileURLToPath(new URL('../../dashboard/', import.meta.url));

// Only this server's own files run: no inline script or style, no framing, no plugins. The
// dashboard builds its DOM with textContent and CSSOM, which a strict policy allows.
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'", "base-uri 'none'", "object-src 'none'", "frame-ancestors 'none'", "form-action 'none'",
].join('; ');

export async function dashboardRoutes(app: FastifyInstance): Promise<void> {
  app.addHook('onSend', async (_req, reply) => {
    reply
      .header('content-security-policy', CONTENT_SECURITY_POLICY)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('cross-origin-opener-policy', 'same-origin')
      .header('x-frame-options', 'DENY')
      // No build step means no hashed names: revalidate every time (ETag answers 304).
      .header('cache-control', 'no-cache');
  });
  // One route per file found at start-up (wildcard: false), so any other path still reaches the
  // app's 404 handler and nothing outside the folder can be named.
  await app.register(fastifyStatic, {
    root: DASHBOARD_DIR, prefix: '/', index: 'index.html', wildcard: false, decorateReply: false, cacheControl: false,
  });
}
