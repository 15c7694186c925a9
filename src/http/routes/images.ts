// GET /firmware/<sha256>.bin: the content-addressed image, with Range support and a strong ETag
// (the content hash), so a device can resume an interrupted download safely.
import type { FastifyInstance } from 'fastify';
import type { Services } from '../../services.js';

const IMAGE_NAME = /^([0-9a-f]{64})\.bin$/;

export async function imageRoutes(app: FastifyInstance, _opts: { services: Services }): Promise<void> {
  app.get<{ Params: { name: string } }>('/firmware/:name', async (req, reply) => {
    const match = IMAGE_NAME.exec(req.params.name);
    if (!match) {
      req.log.warn({ name: req.params.name.slice(0, 100) }, 'image request with an invalid name refused');
      return reply.code(404).send({ statusCode: 404, error: 'Not Found', message: 'images are named <sha256>.bin' });
    }
    const etag = `"${match[1]}"`;
    reply.header('etag', etag).header('cache-control', 'public, max-age=31536000, immutable').header('content-type', 'application/octet-stream');
    return reply.sendFile(req.params.name, { etag: false, lastModified: false, cacheControl: false, acceptRanges: true });
  });
}
