import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate as NodeX509, createHash, createPrivateKey } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { identityFromSubject, normalizeSerial } from '../certs/identity.js';
import { ensurePki, fingerprintOf, issueClientCertificate, type PkiPaths } from '../certs/pki.js';

const hasOpenssl = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

const DAY = 24 * 60 * 60 * 1000;

function derFingerprint(pem: string): string {
  const der = x509.PemConverter.decode(pem)[0]!;
  return createHash('sha256').update(Buffer.from(der)).digest('hex').toUpperCase().match(/../g)!.join(':');
}

async function readAll(paths: PkiPaths): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [k, p] of Object.entries(paths)) if (k !== 'dir') out[k] = await readFile(p, 'utf8');
  return out;
}

describe('ensurePki', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'mqota-pki-test-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('creates both CAs and a server certificate with private files', async () => {
    const dir = path.join(root, 'fresh');
    const { paths, created, fingerprints } = await ensurePki({ dir, hostnames: ['mqota.example', '10.1.2.3'] });
    assert.equal(created, true);
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    for (const key of [paths.caKey, paths.serverKey, paths.deviceCaKey]) {
      assert.equal((await stat(key)).mode & 0o777, 0o600, key);
      const pem = await readFile(key, 'utf8');
      assert.match(pem, /^-----BEGIN PRIVATE KEY-----\n/);
      const k = createPrivateKey(pem);
      assert.equal(k.asymmetricKeyType, 'ec');
      assert.equal(k.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    }
    const files = await readAll(paths);
    assert.equal(fingerprints.ca, derFingerprint(files.caCert!));
    assert.equal(fingerprints.server, derFingerprint(files.serverCert!));
    assert.equal(fingerprints.deviceCa, derFingerprint(files.deviceCaCert!));
    assert.equal(fingerprintOf(files.caCert!), fingerprints.ca);

    for (const [pem, cn] of [[files.caCert!, 'mqota server CA'], [files.deviceCaCert!, 'mqota device CA']] as const) {
      const ca = new x509.X509Certificate(pem);
      assert.match(ca.subject, new RegExp(`CN=${cn}`));
      assert.equal(ca.subject, ca.issuer);
      const bc = ca.getExtension(x509.BasicConstraintsExtension)!;
      assert.deepEqual([bc.ca, bc.critical], [true, true]);
      const ku = ca.getExtension(x509.KeyUsagesExtension)!;
      assert.equal(ku.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
      assert.ok(ca.getExtension(x509.SubjectKeyIdentifierExtension));
      assert.ok(await ca.verify({ signatureOnly: true }));
      assert.equal(ca.publicKey.algorithm.name, 'ECDSA');
    }

    const server = new NodeX509(files.serverCert!);
    assert.ok(server.checkIssued(new NodeX509(files.caCert!)) && server.verify(new NodeX509(files.caCert!).publicKey));
    assert.ok(!server.checkIssued(new NodeX509(files.deviceCaCert!)));
    for (const name of ['localhost', os.hostname(), 'mqota.example']) assert.equal(server.checkHost(name), name);
    for (const ip of ['127.0.0.1', '::1', '10.1.2.3']) assert.ok(server.checkIP(ip), ip);
    assert.match(server.subjectAltName!, /IP Address:10\.1\.2\.3/);
    assert.match(server.subjectAltName!, /DNS:mqota\.example/);
    assert.doesNotMatch(server.subjectAltName!, /DNS:10\.1\.2\.3/);
    assert.deepEqual(server.keyUsage, ['1.3.6.1.5.5.7.3.1']); // Node's keyUsage is the EKU list: serverAuth
    const days = (Date.parse(server.validTo) - Date.now()) / DAY;
    assert.ok(days > 824 && days <= 825, `server validity ${days} days`);
    const leaf = new x509.X509Certificate(files.serverCert!);
    assert.equal(leaf.getExtension(x509.KeyUsagesExtension)!.usages, x509.KeyUsageFlags.digitalSignature);
    assert.equal(
      leaf.getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId,
      new x509.X509Certificate(files.caCert!).getExtension(x509.SubjectKeyIdentifierExtension)!.keyId,
    );
  });

  test('is idempotent: a second run changes nothing', async () => {
    const dir = path.join(root, 'idem');
    const first = await ensurePki({ dir });
    const before = await readAll(first.paths);
    const second = await ensurePki({ dir });
    assert.equal(second.created, false);
    assert.deepEqual(second.fingerprints, first.fingerprints);
    assert.deepEqual(await readAll(second.paths), before);
  });

  test('re-issues only the server certificate when a hostname is not covered', async () => {
    const dir = path.join(root, 'rehost');
    const first = await ensurePki({ dir, hostnames: ['a.example'] });
    const before = await readAll(first.paths);
    assert.equal((await ensurePki({ dir, hostnames: ['a.example'] })).created, false);
    const second = await ensurePki({ dir, hostnames: ['b.example', '192.0.2.7'] });
    assert.equal(second.created, true);
    const after = await readAll(second.paths);
    for (const k of ['caCert', 'caKey', 'deviceCaCert', 'deviceCaKey']) assert.equal(after[k], before[k], k);
    assert.notEqual(after.serverCert, before.serverCert);
    assert.notEqual(after.serverKey, before.serverKey);
    const server = new NodeX509(after.serverCert!);
    assert.equal(server.checkHost('b.example'), 'b.example');
    assert.ok(server.checkIP('192.0.2.7'));
    assert.equal(second.fingerprints.ca, first.fingerprints.ca);
    assert.notEqual(second.fingerprints.server, first.fingerprints.server);
  });

  test('refuses half a pair instead of overwriting a key', async () => {
    const dir = path.join(root, 'half');
    const { paths } = await ensurePki({ dir });
    await unlink(paths.serverCert);
    await assert.rejects(ensurePki({ dir }), /server\.crt is missing while .*server\.key exists/);
  });

  test('an operator CA without its key is kept; re-issuing then needs the key', async () => {
    const dir = path.join(root, 'external');
    const { paths } = await ensurePki({ dir, hostnames: ['ok.example'] });
    await unlink(paths.caKey);
    const again = await ensurePki({ dir, hostnames: ['ok.example'] });
    assert.equal(again.created, false);
    await assert.rejects(ensurePki({ dir, hostnames: ['new.example'] }), /ca\.key is absent/);
  });

  test('openssl accepts the chain', { skip: !hasOpenssl && 'openssl not installed' }, async () => {
    const dir = path.join(root, 'openssl');
    const { paths } = await ensurePki({ dir });
    const client = await issueClientCertificate(paths, { id: 'dev-ossl', role: 'device' });
    const clientFile = path.join(dir, 'client.crt');
    await writeFile(clientFile, client.certPem);
    const verify = (...args: string[]) => execFileSync('openssl', ['verify', ...args], { encoding: 'utf8' });
    assert.match(verify('-CAfile', paths.caCert, '-purpose', 'sslserver', paths.serverCert), /: OK/);
    assert.match(verify('-CAfile', paths.deviceCaCert, '-purpose', 'sslclient', clientFile), /: OK/);
    assert.throws(() => execFileSync('openssl', ['verify', '-CAfile', paths.caCert, clientFile], { stdio: 'pipe' }));
  });
});

describe('issueClientCertificate', () => {
  let root: string;
  let paths: PkiPaths;
  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'mqota-pki-client-'));
    paths = (await ensurePki({ dir: root })).paths;
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('a device certificate: CN = id, OU = device, clientAuth, 10 years, signed by the device CA', async () => {
    const filesBefore = await readAll(paths);
    const issued = await issueClientCertificate(paths, { id: 'dev-01.a_b', role: 'device' });
    assert.deepEqual(await readAll(paths), filesBefore, 'writes nothing');
    const cert = new NodeX509(issued.certPem);
    assert.equal(cert.subject, 'CN=dev-01.a_b\nOU=device');
    // What the broker and the HTTPS server read back is what was issued, serial included.
    assert.deepEqual(identityFromSubject(cert.subject), { id: 'dev-01.a_b', role: 'device' });
    assert.equal(normalizeSerial(cert.serialNumber), issued.serial.replace(/^0+/, ''));
    assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.2']);
    assert.equal(cert.ca, false);
    assert.ok(cert.checkPrivateKey(createPrivateKey(issued.keyPem)));
    assert.match(issued.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
    assert.equal(createPrivateKey(issued.keyPem).asymmetricKeyDetails?.namedCurve, 'prime256v1');
    const deviceCa = new NodeX509(await readFile(paths.deviceCaCert, 'utf8'));
    assert.ok(cert.checkIssued(deviceCa) && cert.verify(deviceCa.publicKey));
    assert.ok(!cert.checkIssued(new NodeX509(await readFile(paths.caCert, 'utf8'))));
    assert.equal(issued.caPem, await readFile(paths.caCert, 'utf8'), 'caPem is the server CA');
    assert.equal(issued.fingerprint, derFingerprint(issued.certPem));
    const years = (issued.notAfter.getTime() - Date.now()) / (365 * DAY);
    assert.ok(years > 9.99 && years <= 10, `device validity ${years} years`);
    assert.equal(issued.notAfter.getTime(), Date.parse(cert.validTo));
    assert.match(issued.serial, /^[0-7][0-9a-f]{31}$/);
    assert.equal(issued.serial.toUpperCase(), cert.serialNumber);
    const peculiar = new x509.X509Certificate(issued.certPem);
    assert.equal(peculiar.getExtension(x509.BasicConstraintsExtension)!.ca, false);
    assert.equal(peculiar.getExtension(x509.KeyUsagesExtension)!.usages, x509.KeyUsageFlags.digitalSignature);
  });

  test('a monitor certificate lasts a year; serials differ', async () => {
    const a = await issueClientCertificate(paths, { id: 'ops', role: 'monitor' });
    const b = await issueClientCertificate(paths, { id: 'ops', role: 'monitor' });
    assert.equal(new NodeX509(a.certPem).subject, 'CN=ops\nOU=monitor');
    const days = (a.notAfter.getTime() - Date.now()) / DAY;
    assert.ok(days > 364 && days <= 365, `monitor validity ${days} days`);
    assert.notEqual(a.serial, b.serial);
  });

  test('refuses ids that cannot be an MQTT client id and a topic level', async () => {
    for (const id of ['', '.hidden', 'a/b', 'a+b', '#', 'x'.repeat(65), 'a b', 'dév']) {
      await assert.rejects(issueClientCertificate(paths, { id, role: 'device' }), /invalid client id/, JSON.stringify(id));
    }
    await assert.rejects(issueClientCertificate(paths, { id: 'ok', role: 'admin' as never }), /invalid client role/);
  });

  test('Node TLS completes a mutual handshake with the issued certificates', async () => {
    const issued = await issueClientCertificate(paths, { id: 'dev-tls', role: 'device' });
    const server = tls.createServer({
      key: await readFile(paths.serverKey),
      cert: await readFile(paths.serverCert),
      ca: await readFile(paths.deviceCaCert),
      requestCert: true,
      rejectUnauthorized: true,
    });
    const seen = new Promise<string>((resolve) => server.once('secureConnection', (s) => {
      resolve(String(s.getPeerCertificate().subject.CN));
      s.end();
    }));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as { port: number }).port;
      const socket = tls.connect({ host: '127.0.0.1', port, ca: issued.caPem, cert: issued.certPem, key: issued.keyPem, servername: 'localhost' });
      await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
      assert.equal(socket.authorized, true);
      assert.equal(await seen, 'dev-tls');
      socket.destroy();
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test("an operator's own device CA (P-384, SEC1 key) can sign", { skip: !hasOpenssl && 'openssl not installed' }, async () => {
    const dir = path.join(root, 'own');
    const own = (await ensurePki({ dir })).paths;
    await unlink(own.deviceCaKey);
    await unlink(own.deviceCaCert);
    execFileSync('openssl', ['ecparam', '-name', 'secp384r1', '-genkey', '-noout', '-out', own.deviceCaKey]);
    execFileSync('openssl', ['req', '-x509', '-new', '-key', own.deviceCaKey, '-subj', '/O=Acme/CN=Acme Devices', '-days', '3650', '-out', own.deviceCaCert,
      '-addext', 'basicConstraints=critical,CA:true', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    assert.match(await readFile(own.deviceCaKey, 'utf8'), /BEGIN EC PRIVATE KEY/);
    assert.equal((await ensurePki({ dir })).created, false, 'kept as is');
    const issued = await issueClientCertificate(own, { id: 'dev-acme', role: 'device' });
    const clientFile = path.join(dir, 'acme-client.crt');
    await writeFile(clientFile, issued.certPem);
    assert.match(execFileSync('openssl', ['verify', '-CAfile', own.deviceCaCert, '-purpose', 'sslclient', clientFile], { encoding: 'utf8' }), /: OK/);
    assert.ok(existsSync(own.deviceCaKey));
    // The leaf cannot outlive its issuer.
    const caNotAfter = Date.parse(new NodeX509(await readFile(own.deviceCaCert, 'utf8')).validTo);
    assert.ok(issued.notAfter.getTime() <= caNotAfter);
  });
});
