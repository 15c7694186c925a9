// The OpenAPI document of the HTTPS API, built from the routes' own schemas (the ones that
// validate requests and serialize responses), at /docs/json, and a browsable UI at /docs whose
// assets ship in @fastify/swagger-ui (no CDN: works offline). Neither needs a token: they describe
// the API, they do not use it. Registered before the routes, since @fastify/swagger collects
// routes as they are added.
import { readFile } from 'node:fs/promises';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import fp from 'fastify-plugin';
import type { FastifyInstance, FastifySchema } from 'fastify';
import type { TSchema } from 'typebox';
import { defaultRole } from '../../../auth/roles.js';
import { errors } from '../../schemas/index.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * The form of a multipart/form-data route, for the document only: such a body is streamed and
     * checked by the handler, never parsed into `req.body`, so it cannot be a validated `body` schema.
     */
    multipartBody?: TSchema;
  }
}

const DESCRIPTION = `Push-based OTA firmware updates for ESP32 fleets.

Every \`/api\` route needs \`Authorization: Bearer <token>\`: the admin token (MQOTA_ADMIN_TOKEN or
\`<data>/admin-token\`) or one made with \`mqota token create <name> --role viewer|operator|admin\`.
Each operation says the least role it needs; a token without it gets \`403\`.`;

const STATUS: Record<string, string> = { 200: 'OK', 201: 'Created', 204: 'No Content', 206: 'Partial Content', 304: 'Not Modified' };

export const swaggerPlugin = fp(async (app: FastifyInstance) => {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'mqota operator API', version: await packageVersion(), description: DESCRIPTION },
      tags: [
        { name: 'firmware', description: 'the firmware catalog' },
        { name: 'devices', description: 'the fleet and device provisioning' },
        { name: 'provisioning', description: 'provisioning by claim: claim batches and device requests' },
        { name: 'rollouts', description: 'moving devices to a firmware' },
        { name: 'tokens', description: 'API tokens and their roles (admin)' },
        { name: 'audit', description: 'who changed what, when' },
        { name: 'webhooks', description: 'fleet events sent to your HTTPS receivers (admin to change)' },
        { name: 'keys', description: 'firmware signing keys: Secure Boot v2 public keys uploads are checked against (admin changes them)' },
        { name: 'images', description: 'image downloads: devices with their client certificate, or a token (MQOTA_IMAGE_ACCESS)' },
        { name: 'health', description: 'for load balancers (no token)' },
      ],
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', description: 'an mqota API token' },
          // OpenAPI 3.1's mutualTLS scheme; the plugin's types know 3.0's only.
          deviceCertificate: { type: 'mutualTLS', description: 'a device client certificate from the device CA, as for MQTT' } as never,
        },
      },
    },
    transform: ({ schema, url, route }) => {
      const own = (schema ?? {}) as FastifySchema & { description?: string; tags?: string[]; hide?: boolean; response?: Record<string, { description?: string }> };
      const response = Object.fromEntries(Object.entries(own.response ?? {}).map(([code, r]) => [code, r.description ? r : { ...r, description: STATUS[code] ?? code }]));
      // Outside /api only what a route tags for the document (health, images) is shown, not the dashboard's files.
      if (!url.startsWith('/api/')) return { url, schema: { ...own, response, hide: own.hide ?? !own.tags?.length } as FastifySchema };
      const role = route.config?.role ?? defaultRole([route.method].flat()[0]);
      const form = route.config?.multipartBody;
      return {
        url,
        schema: {
          ...own,
          description: [own.description, `Needs the **${role}** role.`].filter(Boolean).join('\n\n'),
          security: [{ bearerAuth: [] }],
          response: { ...errors(...(role === 'viewer' ? [401, 429] as const : [401, 403, 429] as const)), ...response },
          ...(form ? { consumes: ['multipart/form-data'], body: form } : {}),
        } as FastifySchema,
      };
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', theme: { title: 'mqota API' } });
}, { name: 'mqota-openapi' });

/** package.json is four folders up from the sources, five from the compiled dist/src/http/plugins/external/. */
async function packageVersion(): Promise<string> {
  for (const rel of ['../../../../package.json', '../../../../../package.json']) {
    const text = await readFile(new URL(rel, import.meta.url), 'utf8').catch(() => null);
    if (text) return (JSON.parse(text) as { version: string }).version;
  }
  return '0.0.0';
}
