// GET /firmware/<sha256>.bin: the content-addressed image, with Range support and a strong ETag
// (the content hash), so a device can resume an interrupted download safely. Who may download it
// (MQOTA_IMAGE_ACCESS): by default a device with its client certificate, and only images of its
// own firmware type, or a token holder (auth.ts); with `public`, anyone who has the link.
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { parseByteRange } from '../../../firmware/byte-range.js';
import { ImageCache } from '../../../firmware/image-cache.js';
import { notFound } from '../../errors.js';
import { errors } from '../../schemas/index.js';

/**
 * Bytes per socket write of a cached image. Written whole, a 1.5 MB image had Node's TLS encrypt
 * all of it into one buffer before sending; in 64 KiB slices (views of the cached buffer, no copy)
 * it costs about a third less CPU per byte (bench/images.ts: 64 KiB 0.58–0.61× nginx's bytes per
 * CPU-second, 256 KiB 0.52–0.56×, 1 MiB 0.36–0.45×, whole 0.33–0.41×).
 */
const WRITE_BYTES = 64 * 1024;

/** The bytes as a stream of slices, each written when the socket has room for it. */
function slices(bytes: Buffer): Buffer | Readable {
  if (bytes.length <= WRITE_BYTES) return bytes;
  let at = 0;
  return new Readable({
    highWaterMark: 0,
    read() { this.push(at < bytes.length ? bytes.subarray(at, (at += WRITE_BYTES)) : null); },
  });
}
const IMAGE_NAME = /^([0-9a-f]{64})\.bin$/;

export async function imageRoutes(app: FastifyInstance): Promise<void> {
  const { services } = app;
  const open = services.config.imageAccess === 'public';
  const cache = services.config.imageCacheBytes > 0 ? new ImageCache(services.catalog.images, services.config.imageCacheBytes) : null;
  app.get<{ Params: { name: string } }>('/firmware/:name', {
    config: { device: true },
    schema: {
      tags: ['images'], summary: 'Download an image',
      description: `The content-addressed link in update commands. ${open
        ? 'No credentials (MQOTA_IMAGE_ACCESS=public).'
        : 'A device presents its client certificate (the one it uses for MQTT) and may fetch images of its own firmware type; anyone else needs a token (viewer).'} Range requests (206, 416), a strong ETag equal to the SHA-256, If-None-Match (304) and If-Range.`,
      ...(open ? {} : { security: [{ deviceCertificate: [] }, { bearerAuth: [] }] }),
      // No pattern: a bad name is answered (and logged) below as a 404.
      params: { type: 'object', properties: { name: { type: 'string', description: '<sha256>.bin' } }, required: ['name'] },
      response: {
        200: { description: 'the image', content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } },
        206: { description: 'the requested range', content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } },
        304: { description: 'not modified', type: 'null' },
        ...errors(...(open ? [404] as const : [401, 403, 404] as const)),
      },
    },
  }, async (req, reply) => {
    const match = IMAGE_NAME.exec(req.params.name);
    if (!match) {
      req.log.warn({ name: req.params.name.slice(0, 100) }, 'image request with an invalid name refused');
      return reply.code(404).send({ statusCode: 404, error: 'Not Found', message: 'images are named <sha256>.bin' });
    }
    // From memory when it fits the cache (image-cache.ts), else streamed from its file below.
    const bytes = cache ? await cache.get(match[1]) : 'uncached';
    if (bytes === null || (bytes === 'uncached' && !(await services.catalog.images.has(match[1])))) throw notFound(`image ${req.params.name}`);
    if (req.device) {
      // Least privilege: a device fetches what it could be told to install, images of its own type.
      const type = services.registry.get(req.device.id)?.type;
      if (!type || !services.catalog.hasImage(type, match[1])) {
        req.log.warn({ deviceId: req.device.id, type, sha256: match[1] }, 'image request refused: not an image of the device\'s type');
        return reply.code(403).send({ statusCode: 403, error: 'Forbidden', message: `device ${req.device.id} may download images of its own firmware type only` });
      }
    }
    const etag = `"${match[1]}"`;
    // The content hash is a strong validator; conditional requests are answered against it here.
    const ifNoneMatch = req.headers['if-none-match'];
    if (ifNoneMatch && (ifNoneMatch.trim() === '*' || ifNoneMatch.split(',').map((t) => t.trim().replace(/^W\//, '')).includes(etag))) {
      return reply.code(304).header('etag', etag).send();
    }
    const ifRange = req.headers['if-range'];
    if (typeof ifRange === 'string') {
      if (ifRange.trim() !== etag) delete req.raw.headers.range; // another version of the file: send it whole [RFC 9110 13.1.5]
      delete req.raw.headers['if-range'];
    }
    reply.header('etag', etag).header('cache-control', 'public, max-age=31536000, immutable').header('content-type', 'application/octet-stream');
    if (bytes !== 'uncached') {
      // The same answers @fastify/send gives below: one range → 206, past the end → 416, else 200.
      reply.header('accept-ranges', 'bytes');
      const range = parseByteRange(req.raw.headers.range, bytes.length);
      if (range === 'unsatisfiable') {
        return reply.code(416).header('content-range', `bytes */${bytes.length}`).type('application/json; charset=utf-8')
          .send({ statusCode: 416, error: 'Range Not Satisfiable', message: `the image has ${bytes.length} bytes` });
      }
      if (range) {
        return reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${bytes.length}`)
          .header('content-length', range.end + 1 - range.start).send(slices(bytes.subarray(range.start, range.end + 1)));
      }
      return reply.header('content-length', bytes.length).send(slices(bytes));
    }
    return reply.sendFile(req.params.name, { etag: false, lastModified: false, cacheControl: false, acceptRanges: true });
  });
}
