// multipart/form-data for firmware uploads, streamed: the route reads the parts itself (the file
// goes to disk while it is hashed), so only limits are set here.
import multipart from '@fastify/multipart';
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';

export const multipartPlugin = fp(async (app: FastifyInstance) => {
  await app.register(multipart, {
    limits: { fileSize: app.services.config.maxImageBytes, files: 1, fields: 10, fieldSize: 4096, parts: 12 },
  });
}, { name: 'mqota-multipart' });
