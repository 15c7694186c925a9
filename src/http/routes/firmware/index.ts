// /api/firmware: the catalog. Uploads stream to disk while hashing; the image's own header
// (ESP-IDF app image) supplies or checks type and version.
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { DuplicateFirmwareError, type Firmware } from '../../../firmware/catalog.js';
import { parseEspAppImage } from '../../../firmware/esp-image.js';
import { decideSignatures, inspectImageSignatures, type ImageSignature } from '../../../firmware/image-signatures.js';
import { EmptyImageError, ImageStoreFullError, ImageTooLargeError, type SavedImage } from '../../../firmware/image-store.js';
import { resolveFirmwareIdentity } from '../../../firmware/version.js';
import type { Services } from '../../../services.js';
import { HttpError, notFound } from '../../errors.js';
import { Type } from 'typebox';
import { errors, FirmwareListQuery, FirmwareUploaded, FirmwareUploadForm, FirmwareView, IdParams, NoContent } from '../../schemas/index.js';

const CHANNEL = /^[a-z0-9-]{1,32}$/;
const FORM_FIELDS = new Set(['type', 'version', 'channel', 'notes']);

export function firmwareView(fw: Firmware, services: Services) {
  const signatures = (fw.signatures as ImageSignature[] | null) ?? [];
  const keyOf = (s: ImageSignature) => (s.keyId ? services.signingKeys.get(s.keyId) : undefined);
  const signer = signatures.map(keyOf).find((k, i) => k && signatures[i].verified);
  return {
    signedBy: signer ? { id: signer.id, name: signer.name, retired: signer.retiredAt !== null } : null,
    signatures: signatures.map((s) => ({ ...s, keyName: keyOf(s)?.name ?? null })),
    id: fw.id, type: fw.type, version: fw.version, channel: fw.channel, notes: fw.notes, sha256: fw.sha256, size: fw.size,
    url: services.links.imageUrl(fw.sha256), createdAt: fw.createdAt,
    image: fw.projectName === null ? null : {
      chip: fw.chip, projectName: fw.projectName, version: fw.imageVersion, idfVersion: fw.idfVersion, secureVersion: fw.secureVersion, buildId: fw.buildId,
    },
  };
}

export async function firmwareRoutes(fastify: FastifyInstance): Promise<void> {
  const { services } = fastify;
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { catalog, rollouts } = services;

  app.post('/firmware', {
    // The form is streamed (the file to disk while hashed) and checked here, so it is documented, not validated, by its schema.
    config: { multipartBody: FirmwareUploadForm },
    schema: {
      tags: ['firmware'], summary: 'Upload an image',
      description: 'multipart/form-data: one file part and optional fields. An ESP-IDF app image supplies or checks type and version; its Secure Boot v2 signature blocks are checked against the signing keys (MQOTA_REQUIRE_SIGNED_IMAGES=true refuses an image no active registered key signed). `warnings` says what a device may object to.',
      response: { 201: FirmwareUploaded, ...errors(400, 409, 413, 415, 507) },
    },
  }, async (req, reply) => {
    if (!req.isMultipart()) throw new HttpError(415, 'send multipart/form-data with fields type, version (optional: channel, notes) and one file');
    const fields: Record<string, string> = {};
    req.auditDetails = fields;
    let saved: SavedImage | null = null;
    const warnings: string[] = [];
    try {
      for await (const part of req.parts()) {
        if (part.type === 'file') {
          if (saved) throw new HttpError(400, 'one file per upload');
          saved = await catalog.images.save(part.file);
        } else if (FORM_FIELDS.has(part.fieldname)) {
          fields[part.fieldname] = String(part.value);
        } else {
          throw new HttpError(400, `unknown field '${part.fieldname}'`);
        }
      }
      if (!saved) throw new HttpError(400, 'the file is missing');
      const channel = fields.channel ?? 'stable';
      if (!CHANNEL.test(channel)) throw new HttpError(400, `channel must match ${CHANNEL}`);
      const image = parseEspAppImage(saved.head);
      const identity = resolveFirmwareIdentity({ type: fields.type, version: fields.version }, image);
      if (!identity.ok) throw new HttpError(400, identity.message);
      if (identity.buildId !== null) {
        warnings.push(`the catalog version ${identity.version} differs from the image's own version "${identity.buildId}"; update commands carry both and devices check the image against "${identity.buildId}"`);
      }
      const decision = decideSignatures(await inspectImageSignatures(saved.path, services.signingKeys), services.signingKeys, services.config.requireSignedImages);
      if (!decision.ok) throw new HttpError(400, decision.message);
      warnings.push(...decision.warnings);
      const fw = await catalog.add({
        type: identity.type, version: identity.version, channel, notes: fields.notes ?? null, sha256: saved.sha256, size: saved.size,
        chip: image?.chip ?? null, projectName: image?.projectName ?? null, imageVersion: image?.version ?? null, buildId: identity.buildId,
        idfVersion: image?.idfVersion ?? null, secureVersion: image?.secureVersion ?? null, signatures: decision.signatures,
      });
      const signedBy = firmwareView(fw, services).signedBy?.name ?? null;
      req.log.info({ firmwareId: fw.id, type: fw.type, version: fw.version, sha256: fw.sha256, size: fw.size, chip: fw.chip, signedBy }, 'firmware uploaded');
      if (warnings.length) req.log.warn({ firmwareId: fw.id, type: fw.type, version: fw.version, warnings }, 'firmware uploaded with warnings');
      return reply.code(201).send({ ...firmwareView(fw, services), warnings });
    } catch (err) {
      // A rejected upload leaves nothing behind, unless the same bytes belong to catalog firmware.
      if (saved && !catalog.list().some((f) => f.sha256 === saved!.sha256)) await catalog.images.remove(saved.sha256);
      throw translate(err);
    }
  });

  app.get('/firmware', {
    schema: { tags: ['firmware'], summary: 'List firmware', description: 'Newest first.', querystring: FirmwareListQuery, response: { 200: Type.Array(FirmwareView) } },
  }, async (req) =>
    catalog.list({ type: req.query.type }).map((fw) => firmwareView(fw, services)));

  app.get('/firmware/:id', {
    schema: { tags: ['firmware'], summary: 'One firmware', params: IdParams, response: { 200: FirmwareView, ...errors(404) } },
  }, async (req) => {
    const fw = await catalog.find(req.params.id);
    if (!fw) throw notFound(`firmware ${req.params.id}`);
    return firmwareView(fw, services);
  });

  app.delete('/firmware/:id', {
    schema: {
      tags: ['firmware'], summary: 'Delete firmware', description: 'Firmware a rollout used stays in the database (hidden) so histories remain readable; its file goes.',
      params: IdParams, response: { 204: NoContent('deleted'), ...errors(404, 409) },
    },
  }, async (req, reply) => {
    const fw = await catalog.find(req.params.id);
    if (!fw) throw notFound(`firmware ${req.params.id}`);
    if (rollouts.isFirmwareInUse(fw.id)) throw new HttpError(409, `firmware ${fw.id} is used by a running rollout; cancel it first`);
    await catalog.remove(fw.id);
    req.log.info({ firmwareId: fw.id, type: fw.type, version: fw.version }, 'firmware deleted');
    return reply.code(204).send();
  });
}

// Busboy (inside @fastify/multipart) says a body is not well-formed multipart with plain Errors
// and these messages only; they are the client's error, not ours.
const CUT_OFF = /^(Unexpected end of multipart data|\w+ terminated early due to unexpected end of multipart data)$/;
const NO_BOUNDARY = /^(Multipart: Boundary not found|Boundary required|The needle cannot (be an empty|have a length bigger))/;

function translate(err: unknown): Error {
  if (err instanceof HttpError) return err;
  const { message, code } = err as { message?: string; code?: string };
  if (typeof message === 'string' && CUT_OFF.test(message)) {
    return new HttpError(400, 'the multipart body ends before its closing boundary: the upload was cut off or the body is malformed');
  }
  if (typeof message === 'string' && NO_BOUNDARY.test(message)) {
    return new HttpError(400, 'Content-Type multipart/form-data needs a boundary parameter of 1 to 70 characters (RFC 2046)');
  }
  if (code === 'FST_FILES_LIMIT') return new HttpError(400, 'one file per upload');
  if (err instanceof ImageTooLargeError) return new HttpError(413, err.message);
  if (err instanceof EmptyImageError) return new HttpError(400, 'the file is empty');
  if (err instanceof ImageStoreFullError) return new HttpError(507, err.message);
  if (err instanceof DuplicateFirmwareError) return new HttpError(409, err.message);
  return err as Error;
}
