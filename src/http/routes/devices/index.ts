// /api/devices: the fleet, provisioning (a device certificate and its bundle), certificate
// rotation and revocation.
import type { FastifyInstance } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import semver from 'semver';
import type { Device } from '../../../fleet/device-registry.js';
import { HttpError, notFound } from '../../errors.js';
import { Type } from 'typebox';
import { InvalidSerialError } from '../../../auth/certificate-ledger.js';
import { MAX_IMPORT_DEVICES, ProvisioningError } from '../../../fleet/device-provisioning.js';
import { DeviceCreateBody, DeviceCsrBody, DeviceImportBody, DevicesImported, DeviceDetail, DeviceLabelsBody, DeviceListQuery, DeviceParams, DeviceProvisioned, DeviceTypeBody, DeviceView, errors, RevokeBody, Revoked } from '../../schemas/index.js';

function deviceView(d: Device) {
  return {
    id: d.id, type: d.type, version: d.version, chip: d.chip, idfVersion: d.idfVersion, secureVersion: d.secureVersion,
    slot: d.slot, online: d.online, lastSeenAt: d.lastSeenAt, tags: d.tags, channel: d.channel, health: d.health,
  };
}

function provisioningError(err: unknown): never {
  throw err instanceof ProvisioningError ? new HttpError(err.status, err.message) : err;
}

export async function deviceRoutes(fastify: FastifyInstance): Promise<void> {
  const { services } = fastify;
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { registry } = services;

  app.post('/devices', {
    schema: {
      tags: ['devices'], summary: 'Provision a device',
      description: 'Issues a client certificate (CN = id) signed by the device CA and returns the bundle a device needs. Without `csrPem` mqota makes the key and returns it once (it keeps none); with it, the certificate is for the device\'s own key and the bundle has no key.',
      body: DeviceCreateBody, response: { 201: DeviceProvisioned, ...errors(400, 409) },
    },
  }, async (req, reply) => {
    const bundle = await services.provisioning.provision({ id: req.body.id, type: req.body.type ?? null, csrPem: req.body.csrPem }).catch(provisioningError);
    req.log.info({ deviceId: bundle.deviceId, type: bundle.type, fingerprint: bundle.fingerprint, notAfter: bundle.notAfter, ownKey: bundle.keyPem === null }, 'device provisioned');
    return reply.code(201).send({ device: deviceView(registry.get(bundle.deviceId)!), bundle });
  });

  app.post('/devices/:id/csr', {
    schema: {
      tags: ['devices'], summary: 'Sign a device-made key',
      description: 'The device made its key and sent a CSR (ECDSA P-256 or RSA 2048-4096, signed with that key, subject CN = the device id or none). An unknown id is provisioned (with `type`, if given); a known device gets a new certificate for that key (rotation). The private key never leaves the device.',
      params: DeviceParams, body: DeviceCsrBody, response: { 201: DeviceProvisioned, ...errors(400, 409) },
    },
  }, async (req, reply) => {
    const { id } = req.params;
    const known = registry.get(id);
    const bundle = await (known
      ? services.provisioning.reissue(id, req.body.csrPem)
      : services.provisioning.provision({ id, type: req.body.type ?? null, csrPem: req.body.csrPem })).catch(provisioningError);
    req.log.info({ deviceId: id, fingerprint: bundle.fingerprint, notAfter: bundle.notAfter, rotation: Boolean(known) }, 'device certificate issued for its own key');
    return reply.code(201).send({ device: deviceView(registry.get(id)!), bundle });
  });

  app.post('/devices/import', {
    // 1000 CSRs of up to 8 KiB each, and JSON around them.
    bodyLimit: MAX_IMPORT_DEVICES * 9 * 1024,
    schema: {
      tags: ['devices'], summary: 'Provision many devices at once',
      description: `Up to ${MAX_IMPORT_DEVICES} devices, all or none: every row is checked first (a 400 or 409 names the first bad one as \`devices[i] (id)\`), then every certificate is issued and recorded in one write and every device registered. Each row may carry a CSR.`,
      body: DeviceImportBody, response: { 201: DevicesImported, ...errors(400, 409) },
    },
  }, async (req, reply) => {
    const bundles = await services.provisioning.importAll(req.body.devices.map((d) => ({ id: d.id, type: d.type ?? null, tags: d.tags, csrPem: d.csrPem }))).catch(provisioningError);
    req.auditDetails = { devices: bundles.length, ids: bundles.slice(0, 20).map((b) => b.deviceId) };
    req.log.info({ devices: bundles.length, ownKeys: bundles.filter((b) => b.keyPem === null).length }, 'devices imported');
    return reply.code(201).send({ devices: bundles.map((bundle) => ({ device: deviceView(registry.get(bundle.deviceId)!), bundle })) });
  });

  app.post('/devices/:id/certificate', {
    schema: {
      tags: ['devices'], summary: 'Issue a new certificate for a device',
      description: 'Rotation, or a replacement after revocation: a new key and certificate in a new bundle. Certificates issued before stay valid until revoked.',
      params: DeviceParams, response: { 201: DeviceProvisioned, ...errors(404) },
    },
  }, async (req, reply) => {
    const device = registry.get(req.params.id);
    if (!device) throw notFound(`device ${req.params.id}`);
    const bundle = await services.provisioning.reissue(device.id).catch(provisioningError);
    req.log.info({ deviceId: device.id, fingerprint: bundle.fingerprint, notAfter: bundle.notAfter }, 'device certificate issued');
    return reply.code(201).send({ device: deviceView(device), bundle });
  });

  // Admin, like issuing operator certificates and tokens: it changes who may connect.
  app.post('/devices/:id/revoke', {
    config: { role: 'admin' },
    schema: {
      tags: ['devices'], summary: 'Revoke a device\'s certificates',
      description: 'The broker refuses the revoked certificates from now on (CONNACK 5) and closes a live connection made with one. Without `serial`, every certificate of the device on record; with it, that one, also from your own CA.',
      params: DeviceParams, body: RevokeBody, response: { 200: Revoked, ...errors(400, 404, 409) },
    },
  }, async (req) => {
    const device = registry.get(req.params.id);
    if (!device) throw notFound(`device ${req.params.id}`);
    const { serial, reason } = req.body ?? {};
    const result = await services.certificates.revoke({ commonName: device.id, role: 'device', serial, reason, actor: req.principal.name })
      .catch((err) => { throw err instanceof InvalidSerialError ? new HttpError(400, err.message) : err; });
    if (!result.revoked.length) {
      throw new HttpError(409, serial === undefined
        ? `device ${device.id} has no unrevoked certificate on record; give the serial of the one to revoke`
        : `certificate ${serial} is already revoked or belongs to someone else`);
    }
    req.log.warn({ deviceId: device.id, serials: result.revoked.map((c) => c.serial), reason, disconnected: result.disconnected }, 'device certificates revoked');
    return result; // the response schema (CertificateView) leaves out the ledger's other columns
  });

  app.get('/devices', {
    schema: {
      tags: ['devices'], summary: 'List devices', description: '`version` is a version or a semver range.',
      querystring: DeviceListQuery, response: { 200: Type.Array(DeviceView), ...errors(400) },
    },
  }, async (req) => {
    const { type, version, online, tag, channel } = req.query;
    const range = version ? semver.validRange(version) : null;
    if (version && !range) throw new HttpError(400, `version filter '${version}' is neither a version nor a semver range`);
    const devices = type ? registry.ofType(type) : [...registry.all()];
    return devices
      .filter((d) => (!tag || d.tags.includes(tag)) && (!channel || d.channel === channel))
      .filter((d) => (online === undefined || d.online === online) && (!range || (d.version !== null && semver.satisfies(d.version, range, { includePrerelease: true }))))
      .sort((a, b) => a.id.localeCompare(b.id))
      .map(deviceView);
  });

  app.put('/devices/:id', {
    schema: {
      tags: ['devices'], summary: 'Set a device\'s tags and channel', description: 'The device may join running rollouts that target it now.',
      params: DeviceParams, body: DeviceLabelsBody, response: { 200: DeviceView, ...errors(400, 404) },
    },
  }, async (req) => {
    const device = await registry.setLabels(req.params.id, req.body);
    if (!device) throw notFound(`device ${req.params.id}`);
    await services.engine.deviceChanged(device.id); // it may join running rollouts now
    req.log.info({ deviceId: device.id, tags: device.tags, channel: device.channel }, 'device labels set');
    return deviceView(device);
  });

  // Admin: a device's type decides which images its certificate may download.
  app.put('/devices/:id/type', {
    config: { role: 'admin' },
    schema: {
      tags: ['devices'], summary: 'Change a device\'s firmware type',
      description: 'A device keeps the type it was registered with (or, unregistered, the type of its first announce); an announce of another type is answered `type-mismatch` and changes nothing. This is the only way to change it, and it is audited.',
      params: DeviceParams, body: DeviceTypeBody, response: { 200: DeviceView, ...errors(400, 404) },
    },
  }, async (req) => {
    const before = registry.get(req.params.id);
    if (!before) throw notFound(`device ${req.params.id}`);
    const device = (await registry.setType(before.id, req.body.type))!;
    req.log.warn({ deviceId: device.id, from: before.type, to: device.type, actor: req.principal.name }, 'device type changed');
    await services.engine.deviceChanged(device.id); // rollouts of its new type may target it
    return deviceView(device);
  });

  app.get('/devices/:id', {
    schema: { tags: ['devices'], summary: 'One device and its update attempts', params: DeviceParams, response: { 200: DeviceDetail, ...errors(404) } },
  }, async (req) => {
    const device = registry.get(req.params.id);
    if (!device) throw notFound(`device ${req.params.id}`);
    const certificates = await services.certificates.list(device.id, 'device');
    const attempts = await services.repository.deviceAttempts(device.id, 50);
    return {
      ...deviceView(device),
      certificates,
      attempts: attempts.map((a) => ({
        updateId: a.id, rolloutId: a.rolloutId, firmwareId: a.firmwareId, targetVersion: a.firmware.version, fromVersion: a.fromVersion,
        state: a.state, progress: a.progress, error: a.error, reason: a.reason, createdAt: a.createdAt, updatedAt: a.updatedAt, finishedAt: a.finishedAt,
        history: a.events,
      })),
    };
  });
}
