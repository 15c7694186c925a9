// Keys made on the device and provisioning at scale, over the real server: CSRs signed through the
// API (and refused with the reason), the all-or-nothing import and its CSV reader, and
// provisioning by claim over the real TLS broker with real certificates (count, expiry, ids taken,
// the ACL, operator approval).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createHash, webcrypto } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import type { MqttClient } from 'mqtt';
import { ApiError } from '../src/cli/api-client.js';
import { importDevices, readImportFile, ImportError } from '../src/cli/device-import.js';
import { ClaimService } from '../src/fleet/claims.js';
import { parseExpiry } from '../src/cli/provision.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { provisionTopics } from '../src/topics.js';
import { closedWithin, connectDevice, connectFailure, nextMessage, subscribeCodes } from './support/mqtt.js';
import { startTestServer, type TestServer } from './support/server.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);
const subtle = webcrypto.subtle as SubtleCrypto;

type Key = { keys: CryptoKeyPair; keyPem: string; alg: EcKeyGenParams | RsaHashedKeyGenParams; sign: Algorithm | EcdsaParams };

async function makeKey(kind: 'p256' | 'p384' | 'rsa2048' | 'rsa1024' = 'p256'): Promise<Key> {
  const alg = kind.startsWith('rsa')
    ? { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: Number(kind.slice(3)) }
    : { name: 'ECDSA', namedCurve: kind === 'p256' ? 'P-256' : 'P-384' };
  const keys = (await subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const keyPem = x509.PemConverter.encode(await subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY') + '\n';
  const sign = kind.startsWith('rsa') ? alg : { name: 'ECDSA', hash: 'SHA-256' };
  return { keys, keyPem, alg, sign };
}

async function csrFor(key: Key, cn: string | null): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: cn === null ? [{ O: ['factory'] }] : [{ CN: [cn] }, { OU: ['monitor'] }], keys: key.keys, signingAlgorithm: key.sign,
  });
  return csr.toString('pem') + '\n';
}

const spkiOf = (certPem: string) => createHash('sha256').update(new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
const spkiOfKey = async (key: Key) => createHash('sha256').update(Buffer.from(await subtle.exportKey('spki', key.keys.publicKey))).digest('hex');

async function status(p: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ApiError) return { code: err.statusCode, message: err.message };
    throw err;
  }
  return { code: 200, message: '' };
}

let server: TestServer;
let tmp: string;
before(async () => {
  server = await startTestServer();
  tmp = await mkdtemp(path.join(os.tmpdir(), 'mqota-provisioning-'));
});
after(async () => {
  await server?.close();
  await rm(tmp, { recursive: true, force: true });
});

describe('CSR: a key made on the device', () => {
  test('POST /api/devices with a CSR signs the device key; the bundle has no key and the device connects with its own', async () => {
    const key = await makeKey();
    const res = await server.api.call<{ bundle: { certPem: string; keyPem: string | null; caPem: string } }>('POST', '/api/devices', { id: 'csr-1', type: 'demo', csrPem: await csrFor(key, 'csr-1') });
    assert.equal(res.bundle.keyPem, null);
    assert.equal(spkiOf(res.bundle.certPem), await spkiOfKey(key));
    const cert = new X509Certificate(res.bundle.certPem);
    // mqota writes the subject: the CSR's OU=monitor does not make a monitor.
    assert.equal(cert.subject, 'CN=csr-1\nOU=device');
    const detail = await server.api.call<{ certificates: { serial: string }[] }>('GET', '/api/devices/csr-1');
    assert.equal(detail.certificates.length, 1, 'recorded in the ledger');
    const client = await connectDevice('csr-1', { port: server.mqota.mqttPort, pki: server.pki, credentials: { certPem: res.bundle.certPem, keyPem: key.keyPem, caPem: server.pki.caPem } });
    client.end(true);
  });

  test('POST /api/devices/{id}/csr: a CSR without CN gets the id; RSA 2048 is accepted; a known device gets a new certificate for its new key', async () => {
    const rsa = await makeKey('rsa2048');
    const made = await server.api.call<{ bundle: { certPem: string; keyPem: string | null } }>('POST', '/api/devices/csr-2/csr', { csrPem: await csrFor(rsa, null), type: 'demo' });
    assert.equal(made.bundle.keyPem, null);
    assert.match(new X509Certificate(made.bundle.certPem).subject, /^CN=csr-2\nOU=device$/);
    const next = await makeKey();
    const rotated = await server.api.call<{ bundle: { certPem: string } }>('POST', '/api/devices/csr-2/csr', { csrPem: await csrFor(next, 'csr-2') });
    assert.equal(spkiOf(rotated.bundle.certPem), await spkiOfKey(next));
    const detail = await server.api.call<{ type: string; certificates: unknown[] }>('GET', '/api/devices/csr-2');
    assert.equal(detail.certificates.length, 2);
    assert.equal(detail.type, 'demo');
  });

  test('a CSR that does not prove the key, names another device or has a weak key is refused with the reason', async () => {
    const key = await makeKey();
    const good = await csrFor(key, 'csr-bad');
    const der = Buffer.from(x509.PemConverter.decode(good)[0]!);
    der[der.length - 5] ^= 0xff; // inside the signature
    const tampered = x509.PemConverter.encode(der, 'CERTIFICATE REQUEST');
    const cases: [string, string, RegExp][] = [
      ['tampered signature', tampered, /signature does not verify/],
      ['another CN', await csrFor(key, 'someone-else'), /CN is "someone-else", not the device id "csr-bad"/],
      ['P-384', await csrFor(await makeKey('p384'), 'csr-bad'), /EC secp384r1: mqota signs ECDSA P-256 or RSA 2048-4096/],
      ['RSA 1024', await csrFor(await makeKey('rsa1024'), 'csr-bad'), /RSA 1024/],
      ['not a CSR', new X509Certificate((await server.pki.issue('x')).certPem).toString(), /not a PEM certificate signing request/],
    ];
    for (const [why, csrPem, reason] of cases) {
      const r = await status(server.api.call('POST', '/api/devices', { id: 'csr-bad', csrPem }));
      assert.equal(r.code, 400, why);
      assert.match(r.message, reason, why);
    }
    assert.equal((await status(server.api.call('GET', '/api/devices/csr-bad'))).code, 404, 'nothing made');
  });
});

describe('import', () => {
  test('all devices or none: a taken id in the middle leaves nothing made', async () => {
    await server.api.call('POST', '/api/devices', { id: 'taken-1' });
    const r = await status(server.api.call('POST', '/api/devices/import', { devices: [{ id: 'imp-a' }, { id: 'taken-1' }, { id: 'imp-c' }] }));
    assert.equal(r.code, 409);
    assert.match(r.message, /^devices\[1\] \(taken-1\): device taken-1 already exists/);
    for (const id of ['imp-a', 'imp-c']) assert.equal((await status(server.api.call('GET', `/api/devices/${id}`))).code, 404, id);
    const bad = await status(server.api.call('POST', '/api/devices/import', { devices: [{ id: 'imp-a' }, { id: 'imp-b', csrPem: await csrFor(await makeKey(), 'imp-x') }] }));
    assert.equal(bad.code, 400);
    assert.match(bad.message, /^devices\[1\] \(imp-b\): the CSR subject CN/);
    assert.equal((await status(server.api.call('GET', '/api/devices/imp-a'))).code, 404);
  });

  test('the CSV names a bad line before anything is sent', async () => {
    const dir = path.join(tmp, 'csv-bad');
    await mkdir(dir);
    const cases: [string, RegExp][] = [
      ['id,type\nok-1,demo\nbad id,demo\n', /devices\.csv:3: invalid device id "bad id"/],
      ['id,type\nok-1,demo\nok-1,demo\n', /devices\.csv:3: device ok-1 already on line 2/],
      ['id,colour\nok-1,red\n', /devices\.csv:1: .*unknown: colour/],
      ['id,csr\nok-1,missing.csr\n', /devices\.csv:2: cannot read the CSR/],
      ['id,tags\nok-1,a;b c;d/e\n', /devices\.csv:2: invalid tag "d\/e"/],
      ['id,type\n"ok-1,demo\n', /devices\.csv: .*(Quote|quote)/],
    ];
    for (const [text, reason] of cases) {
      await writeFile(path.join(dir, 'devices.csv'), text);
      await assert.rejects(readImportFile(path.join(dir, 'devices.csv')), (err: Error) => err instanceof ImportError && reason.test(err.message), reason.source);
    }
    assert.equal((await status(server.api.call('GET', '/api/devices/ok-1'))).code, 404, 'nothing sent');
  });

  test('a CSV of devices, some with their own CSR, becomes a bundle each with an NVS CSV', async () => {
    const dir = path.join(tmp, 'csv-good');
    await mkdir(path.join(dir, 'csr'), { recursive: true });
    const key = await makeKey();
    await writeFile(path.join(dir, 'csr', 'fab-2.csr'), await csrFor(key, 'fab-2'));
    await writeFile(path.join(dir, 'devices.csv'), 'id,type,tags,csr\nfab-1,demo,hall;floor-1,\nfab-2,demo,hall,csr/fab-2.csr\nfab-3,,,\n');
    const progress: number[] = [];
    const rows = await readImportFile(path.join(dir, 'devices.csv'), (done) => progress.push(done));
    assert.deepEqual(progress, [1, 2, 3]);
    const out = path.join(dir, 'out');
    const result = await importDevices(server.api, rows, out);
    assert.deepEqual(result.bundles.map((b) => [b.deviceId, b.ownKey]), [['fab-1', false], ['fab-2', true], ['fab-3', false]]);
    assert.deepEqual((await readdir(out)).sort(), ['fab-1', 'fab-2', 'fab-3'], 'no staging folder left');
    // Commands are signed (the default): every bundle carries the command key, in a file and in NVS.
    assert.deepEqual((await readdir(path.join(out, 'fab-2'))).sort(), ['ca.crt', 'command-key.pem', 'device.crt', 'device.json', 'nvs.csv']);
    assert.equal(await readFile(path.join(out, 'fab-2', 'command-key.pem'), 'utf8'), server.mqota.services.commandKeyPem);
    assert.equal(await readFile(path.join(out, 'fab-1', 'nvs.csv'), 'utf8'), [
      'key,type,encoding,value', 'mqota,namespace,,', 'device_id,data,string,fab-1', `broker_uri,data,string,${server.mqota.services.links.brokerUrl()}`,
      'client_cert,file,string,device.crt', 'client_key,file,string,device.key', 'ca_cert,file,string,ca.crt', 'command_key,file,string,command-key.pem', '',
    ].join('\n'));
    assert.doesNotMatch(await readFile(path.join(out, 'fab-2', 'nvs.csv'), 'utf8'), /client_key/);
    const fab1 = await server.api.call<{ type: string; tags: string[] }>('GET', '/api/devices/fab-1');
    assert.deepEqual([fab1.type, fab1.tags], ['demo', ['hall', 'floor-1']]);
    // A second import of the same file is refused before anything is sent: the bundle folders exist.
    await assert.rejects(importDevices(server.api, rows, out), /line 2: .*fab-1 already exists/);
  });
});

describe('provisioning by claim', () => {
  type ClaimBundle = { claimId: string; certPem: string; keyPem: string; caPem: string };
  type Answer = { status: string; deviceId: string; certPem?: string; error?: string; reason?: string };
  const claims: MqttClient[] = [];
  after(() => { for (const c of claims) c.end(true); });

  async function createClaim(body: Record<string, unknown>): Promise<ClaimBundle> {
    return (await server.api.call<{ bundle: ClaimBundle }>('POST', '/api/claims', { expiresAt: new Date(Date.now() + 3_600_000).toISOString(), ...body })).bundle;
  }

  async function claimConnection(claim: ClaimBundle, deviceId: string): Promise<MqttClient> {
    const client = await connectDevice(`${claim.claimId}:${deviceId}`, {
      port: server.mqota.mqttPort, pki: server.pki, clean: true, credentials: { certPem: claim.certPem, keyPem: claim.keyPem, caPem: claim.caPem },
    });
    claims.push(client);
    assert.deepEqual(await subscribeCodes(client, provisionTopics.response(claim.claimId, deviceId)), [1]);
    return client;
  }

  async function ask(client: MqttClient, claim: ClaimBundle, deviceId: string, payload: string): Promise<Answer> {
    const answer = nextMessage(client, provisionTopics.response(claim.claimId, deviceId));
    client.publish(provisionTopics.request(claim.claimId), payload, { qos: 1 });
    return JSON.parse((await answer).payload.toString()) as Answer;
  }

  test('a batch of two: each device gets a certificate for its own key, a taken id and a third device are refused', async () => {
    const claim = await createClaim({ maxDevices: 2, type: 'demo' });
    const keyA = await makeKey();
    const a = await claimConnection(claim, 'claimed-a');
    const issued = await ask(a, claim, 'claimed-a', JSON.stringify({ csr: await csrFor(keyA, 'claimed-a') }));
    assert.equal(issued.status, 'issued');
    assert.equal(spkiOf(issued.certPem!), await spkiOfKey(keyA));
    // Asking again with the same key (the answer was lost) gives the same certificate, and takes no second device.
    assert.equal((await ask(a, claim, 'claimed-a', JSON.stringify({ csr: await csrFor(keyA, 'claimed-a') }))).certPem, issued.certPem);
    // Another key for the same id: refused.
    const other = await claimConnection(claim, 'claimed-a');
    const taken = await ask(other, claim, 'claimed-a', JSON.stringify({ csr: await csrFor(await makeKey(), 'claimed-a') }));
    assert.deepEqual([taken.status, taken.error], ['refused', 'device-id-taken']);
    // An id registered by other means: refused.
    const t1 = await claimConnection(claim, 'taken-1');
    assert.equal((await ask(t1, claim, 'taken-1', JSON.stringify({ csr: await csrFor(await makeKey(), 'taken-1') }))).error, 'device-id-taken');
    // A request whose CSR names another device, or no CSR: refused, and nothing counted.
    const b = await claimConnection(claim, 'claimed-b');
    assert.equal((await ask(b, claim, 'claimed-b', JSON.stringify({ csr: await csrFor(await makeKey(), 'claimed-a') }))).error, 'invalid-request');
    assert.equal((await ask(b, claim, 'claimed-b', 'not json')).error, 'invalid-request');
    assert.equal((await ask(b, claim, 'claimed-b', JSON.stringify({ csr: await csrFor(await makeKey(), 'claimed-b') }))).status, 'issued');
    const c = await claimConnection(claim, 'claimed-c');
    const exhausted = await ask(c, claim, 'claimed-c', JSON.stringify({ csr: await csrFor(await makeKey(), 'claimed-c') }));
    assert.deepEqual([exhausted.status, exhausted.error], ['refused', 'claim-exhausted']);
    const [batch] = (await server.api.call<{ id: string; issued: number }[]>('GET', '/api/claims')).filter((x) => x.id === claim.claimId);
    assert.equal(batch!.issued, 2);

    // The device reconnects as itself with its certificate and announces; it is registered with the batch's type.
    const device = await connectDevice('claimed-a', { port: server.mqota.mqttPort, pki: server.pki, credentials: { certPem: issued.certPem!, keyPem: keyA.keyPem, caPem: claim.caPem } });
    device.end(true);
    assert.equal((await server.api.call<{ type: string }>('GET', '/api/devices/claimed-a')).type, 'demo');
  });

  test('a claim connection may do nothing else: other topics refused, a publish elsewhere disconnects', async () => {
    const claim = await createClaim({ maxDevices: 5 });
    const opts = { port: server.mqota.mqttPort, pki: server.pki, credentials: { certPem: claim.certPem, keyPem: claim.keyPem, caPem: claim.caPem } };
    assert.equal((await connectFailure(claim.claimId, { ...opts, clean: true })).returnCode, 5, 'client id without a device id');
    assert.equal((await connectFailure(`${claim.claimId}:dev-z`, { ...opts, clean: false })).returnCode, 5, 'persistent session');
    assert.equal((await connectFailure('dev-z', { ...opts, clean: true })).returnCode, 5, 'a device id as client id');
    const z = await claimConnection(claim, 'dev-z');
    assert.deepEqual(await subscribeCodes(z, [provisionTopics.response(claim.claimId, 'dev-y'), `provision/${claim.claimId}/response/+`, 'devices/dev-z/command', '#']), [0x80, 0x80, 0x80, 0x80]);
    z.publish('devices/dev-z/announce', '{}', { qos: 1 });
    assert.ok(await closedWithin(z), 'disconnected after a publish outside its request topic');
  });

  test('with approval: the request waits, an operator approves (audited), the certificate reaches the device', async () => {
    const claim = await createClaim({ maxDevices: 1, requireApproval: true });
    const key = await makeKey();
    const d = await claimConnection(claim, 'approved-1');
    const csr = JSON.stringify({ csr: await csrFor(key, 'approved-1') });
    assert.equal((await ask(d, claim, 'approved-1', csr)).status, 'pending');
    const pending = await server.api.call<{ deviceId: string; claimId: string }[]>('GET', `/api/provision-requests?state=pending&claimId=${claim.claimId}`);
    assert.deepEqual(pending.map((p) => p.deviceId), ['approved-1']);
    assert.equal((await status(server.api.call('GET', '/api/devices/approved-1'))).code, 404, 'not a device before approval');
    const delivered = nextMessage(d, provisionTopics.response(claim.claimId, 'approved-1'));
    const approved = await server.api.call<{ state: string; decidedBy: string }>('POST', '/api/provision-requests/approved-1/approve');
    assert.deepEqual([approved.state, approved.decidedBy], ['issued', 'admin']);
    const answer = JSON.parse((await delivered).payload.toString()) as Answer;
    assert.equal(answer.status, 'issued');
    assert.equal(spkiOf(answer.certPem!), await spkiOfKey(key));
    assert.equal((await status(server.api.call('POST', '/api/provision-requests/approved-1/approve'))).code, 409, 'approved once');
    const audit = await server.api.call<{ action: string; target: string | null }[]>('GET', '/api/audit?action=POST%20/api/provision-requests');
    assert.ok(audit.some((e) => e.action === 'POST /api/provision-requests/:id/approve'), JSON.stringify(audit));
  });

  test('an expired claim is refused (clock injected into the claim service, over the real database)', async () => {
    const claim = await createClaim({ maxDevices: 3 });
    const s = server.mqota.services;
    const published: { topic: string; payload: string }[] = [];
    const later = new ClaimService({
      prisma: s.db.prisma, certificates: s.certificates, provisioning: s.provisioning, brokerUrl: s.links.brokerUrl, logger: s.logger,
      publish: async (topic, payload) => { published.push({ topic, payload }); }, now: () => new Date(Date.now() + 2 * 3_600_000),
    });
    const serial = (await server.api.call<{ id: string; serial: string }[]>('GET', '/api/claims')).find((c) => c.id === claim.claimId)!.serial;
    const payload = Buffer.from(JSON.stringify({ csr: await csrFor(await makeKey(), 'late-1') }));
    await later.handleRequest({ claimId: claim.claimId, deviceId: 'late-1', serial, payload });
    assert.equal(published.length, 1);
    assert.equal(published[0]!.topic, provisionTopics.response(claim.claimId, 'late-1'));
    assert.equal((JSON.parse(published[0]!.payload) as Answer).error, 'claim-expired');
    // The same request now (positive control) is issued; a request with another certificate's serial is not the claim's.
    await s.claims.handleRequest({ claimId: claim.claimId, deviceId: 'late-2', serial: 'abc', payload });
    assert.equal((await status(server.api.call('GET', '/api/devices/late-2'))).code, 404);
    const now = new ClaimService({ ...({ prisma: s.db.prisma, certificates: s.certificates, provisioning: s.provisioning, brokerUrl: s.links.brokerUrl, logger: s.logger }),
      publish: async (topic, p) => { published.push({ topic, payload: p }); } });
    await now.handleRequest({ claimId: claim.claimId, deviceId: 'late-1', serial, payload });
    assert.equal((JSON.parse(published.at(-1)!.payload) as Answer).status, 'issued');
  });

  test('a revoked claim certificate can no longer connect', async () => {
    const claim = await createClaim({ maxDevices: 1 });
    const live = await claimConnection(claim, 'rv-1');
    const closed = closedWithin(live);
    await server.api.call('POST', `/api/claims/${claim.claimId}/revoke`);
    assert.ok(await closed, 'the live claim connection was closed');
    const opts = { port: server.mqota.mqttPort, pki: server.pki, clean: true, credentials: { certPem: claim.certPem, keyPem: claim.keyPem, caPem: claim.caPem } };
    assert.equal((await connectFailure(`${claim.claimId}:rv-1`, opts)).returnCode, 5);
  });
});

describe('CLI: provision', () => {
  const run = promisify(execFile);
  const cli = (...args: string[]) => run(process.execPath, [path.resolve('bin/mqota.js'), '--server', server.mqota.publicUrl, '--token', server.config.adminToken!,
    '--ca', server.pki.paths.caCert, ...args]);

  test('--expires takes a duration or an ISO time', () => {
    const now = new Date('2027-01-01T00:00:00Z');
    assert.equal(parseExpiry('30d', now).toISOString(), '2027-01-31T00:00:00.000Z');
    assert.equal(parseExpiry('12h', now).toISOString(), '2027-01-01T12:00:00.000Z');
    assert.equal(parseExpiry('2027-03-01T00:00:00Z', now).toISOString(), '2027-03-01T00:00:00.000Z');
    assert.throws(() => parseExpiry('soon', now), /expected a duration/);
  });

  test('claim create writes the claim bundle with its NVS CSV; provision list shows the requests', async () => {
    const out = path.join(tmp, 'cli-claim');
    const { stdout } = await cli('--json', 'provision', 'claim', 'create', '--count', '3', '--expires', '2h', '--type', 'demo', '--out', out);
    const answer = JSON.parse(stdout) as { bundle: { claimId: string; keyPem?: string } };
    assert.equal(answer.bundle.keyPem, undefined, 'the key is not printed');
    // The devices of the batch trust what a device bundle would have them trust: the command key.
    assert.deepEqual((await readdir(out)).sort(), ['ca.crt', 'claim.crt', 'claim.json', 'claim.key', 'command-key.pem', 'nvs.csv']);
    assert.equal(await readFile(path.join(out, 'command-key.pem'), 'utf8'), server.mqota.services.commandKeyPem);
    const nvs = await readFile(path.join(out, 'nvs.csv'), 'utf8');
    assert.match(nvs, new RegExp(`^key,type,encoding,value\nmqota,namespace,,\nclaim_id,data,string,${answer.bundle.claimId}\n`));
    assert.match(nvs, /\ncommand_key,file,string,command-key.pem\n/);
    const list = await cli('provision', 'claim', 'list');
    assert.match(list.stdout, new RegExp(`${answer.bundle.claimId} +demo +0/3`));
    const requests = await cli('provision', 'list', '--state', 'pending');
    assert.match(requests.stdout, /DEVICEID|none/);
    await assert.rejects(cli('provision', 'approve', 'nobody-asked'), /no provisioning request for device nobody-asked/);
  });
});
