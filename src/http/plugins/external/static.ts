// `reply.sendFile` over the image store's folder (Range, conditional requests) for image downloads;
// serves nothing by itself, the image route decides what may be sent.
import fastifyStatic from '@fastify/static';
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';

export const staticPlugin = fp(async (app: FastifyInstance) => {
  await app.register(fastifyStatic, { root: app.services.catalog.images.dir, serve: false, decorateReply: true });
}, { name: 'mqota-static' });
