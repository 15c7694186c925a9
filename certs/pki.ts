// Certificate tooling for mqota: a server CA and its server certificate (the broker's and the
// HTTPS API's identity), and a device CA that signs client certificates (device and monitor
// identities). All keys we generate are ECDSA P-256 in PKCS#8 PEM, which Node TLS,
// OpenSSL/mosquitto, mbedTLS and ESP-IDF all read.
//
// Two CAs on purpose: devices trust only the server CA (ca.crt), the broker trusts only the
// device CA for client certificates, so neither key can mint the other side's identities.

// @peculiar/x509 registers its algorithms through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import { X509Certificate as NodeX509, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { chmod, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as x509 from '@peculiar/x509';
import { invalidIdentity, subjectOf, type Identity } from './identity.js';

const subtle = webcrypto.subtle as SubtleCrypto;
x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export interface PkiPaths {
  dir: string;
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  deviceCaCert: string;
  deviceCaKey: string;
}

const SERVER_CA_NAME = 'mqota server CA';
const DEVICE_CA_NAME = 'mqota device CA';
const SERVER_NAME = 'mqota server';

const DAY_MS = 24 * 60 * 60 * 1000;
// CAs must outlive the 10-year device certificates they sign.
const CA_VALIDITY_DAYS = 25 * 365;
// 825 days: the longest server validity Apple platforms and most TLS clients still accept.
const SERVER_VALIDITY_DAYS = 825;
const DEVICE_VALIDITY_DAYS = 10 * 365;
const MONITOR_VALIDITY_DAYS = 365;
// Devices often boot with a rough clock; don't make a fresh certificate "not yet valid".
const BACKDATE_MS = 60 * 60 * 1000;

const EC_P256: EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };

export function pkiPaths(dir: string): PkiPaths {
  const abs = path.resolve(dir);
  return {
    dir: abs,
    caCert: path.join(abs, 'ca.crt'),
    caKey: path.join(abs, 'ca.key'),
    serverCert: path.join(abs, 'server.crt'),
    serverKey: path.join(abs, 'server.key'),
    deviceCaCert: path.join(abs, 'device-ca.crt'),
    deviceCaKey: path.join(abs, 'device-ca.key'),
  };
}

/** SHA-256 fingerprint of a PEM certificate (the first one in the text), as colon-separated upper-case hex. */
export function fingerprintOf(certPem: string): string {
  return new NodeX509(certPem).fingerprint256;
}

/** The names the server certificate always carries, before any configured hostnames. */
export function defaultServerNames(): string[] {
  return unique(['localhost', '127.0.0.1', '::1', os.hostname()]);
}

/**
 * Creates what is missing under dir: server CA, server certificate, device CA. Existing files are
 * kept; a key is never overwritten. The server certificate alone is re-issued when `hostnames`
 * are not all covered by it, or when it was not issued by our server CA (e.g. a new CA).
 * A pair with only one of its two files present is an error (we would otherwise orphan a key).
 * A CA whose key is absent is treated as external: fine, as long as we need not sign with it.
 */
export async function ensurePki(opts: { dir: string; hostnames?: string[] }): Promise<{
  paths: PkiPaths;
  created: boolean;
  fingerprints: { ca: string; server: string; deviceCa: string };
}> {
  const paths = pkiPaths(opts.dir);
  const hostnames = unique((opts.hostnames ?? []).map((h) => h.trim()).filter((h) => h.length > 0));
  let created = false;

  if (!(await exists(paths.dir))) {
    await mkdir(paths.dir, { recursive: true, mode: 0o700 });
    await chmod(paths.dir, 0o700); // mkdir's mode is filtered by the umask
  }

  const ca = await pairState(paths.caCert, paths.caKey, true);
  if (ca === 'absent') {
    await writePair(paths.caCert, paths.caKey, await createCa(SERVER_CA_NAME));
    created = true;
  }
  const deviceCa = await pairState(paths.deviceCaCert, paths.deviceCaKey, true);
  if (deviceCa === 'absent') {
    await writePair(paths.deviceCaCert, paths.deviceCaKey, await createCa(DEVICE_CA_NAME));
    created = true;
  }

  const caPem = await readFile(paths.caCert, 'utf8');
  const caKeyPresent = await exists(paths.caKey);
  const server = await pairState(paths.serverCert, paths.serverKey);
  let reissue: string | null = server === 'absent' ? 'missing' : null;
  if (!reissue) {
    const current = new NodeX509(await readFile(paths.serverCert, 'utf8'));
    const uncovered = hostnames.filter((h) => !coversName(current, h));
    if (uncovered.length > 0) reissue = `does not cover ${uncovered.join(', ')}`;
    // Only a CA we hold the key of is ours to check against; an operator's own chain may use intermediates.
    else if (caKeyPresent && !issuedBy(current, new NodeX509(caPem))) reissue = 'was not issued by ca.crt';
  }
  if (reissue) {
    if (!caKeyPresent) {
      throw new Error(
        `server certificate ${paths.serverCert} ${reissue}, and ${paths.caKey} is absent so it cannot be re-issued: ` +
          `provide a server certificate and key signed by your CA that cover ${unique([...defaultServerNames(), ...hostnames]).join(', ')}`,
      );
    }
    const signer = await loadSigner(caPem, await readFile(paths.caKey, 'utf8'));
    await writePair(paths.serverCert, paths.serverKey, await createServerCertificate(signer, unique([...defaultServerNames(), ...hostnames])));
    created = true;
  }

  return {
    paths,
    created,
    fingerprints: {
      ca: fingerprintOf(caPem),
      server: fingerprintOf(await readFile(paths.serverCert, 'utf8')),
      deviceCa: fingerprintOf(await readFile(paths.deviceCaCert, 'utf8')),
    },
  };
}

/** A client certificate and what goes with it; `keyPem` is null when the key was the holder's own (a CSR). */
export interface IssuedClientCertificate {
  certPem: string;
  keyPem: string | null;
  caPem: string;
  fingerprint: string;
  serial: string;
  notAfter: Date;
}

/**
 * Issues a client certificate (CN = id, OU = role) signed by the device CA. Writes nothing: the
 * caller decides where the key goes (a device bundle, a provisioning tool). `caPem` is the
 * server CA, which the client needs to verify the broker and the HTTPS server.
 *
 * With `publicKey` (from a CSR the holder signed, certs/csr.ts) the certificate is for that key
 * and no key is made. `notAfter` shortens the validity (a claim certificate's batch expiry).
 */
export async function issueClientCertificate(
  paths: PkiPaths,
  opts: Identity & { publicKey?: undefined; notAfter?: Date },
): Promise<IssuedClientCertificate & { keyPem: string }>;
export async function issueClientCertificate(
  paths: PkiPaths,
  opts: Identity & { publicKey?: x509.PublicKey; notAfter?: Date },
): Promise<IssuedClientCertificate>;
export async function issueClientCertificate(
  paths: PkiPaths,
  opts: Identity & { publicKey?: x509.PublicKey; notAfter?: Date },
): Promise<IssuedClientCertificate> {
  const invalid = invalidIdentity(opts);
  if (invalid) throw new Error(invalid);
  if (!(await exists(paths.deviceCaKey))) {
    throw new Error(`cannot issue client certificates: device CA key ${paths.deviceCaKey} is absent`);
  }
  const [deviceCaPem, deviceCaKeyPem, caPem] = await Promise.all([
    readFile(paths.deviceCaCert, 'utf8'),
    readFile(paths.deviceCaKey, 'utf8'),
    readFile(paths.caCert, 'utf8'),
  ]);
  const signer = await loadSigner(deviceCaPem, deviceCaKeyPem);
  const keys = opts.publicKey ? null : await generateKeys();
  const days = opts.role === 'device' ? DEVICE_VALIDITY_DAYS : MONITOR_VALIDITY_DAYS;
  const cert = await signLeaf(signer, {
    subject: subjectOf(opts),
    publicKey: opts.publicKey ?? keys!.publicKey,
    days,
    notAfter: opts.notAfter,
    extensions: [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth])],
  });
  const certPem = cert.toString('pem') + '\n';
  return {
    certPem,
    keyPem: keys ? await exportKeyPem(keys.privateKey) : null,
    caPem,
    fingerprint: fingerprintOf(certPem),
    serial: cert.serialNumber,
    notAfter: cert.notAfter,
  };
}

/**
 * A CRL of the device CA listing these serials (hex, any spelling normalizeSerial accepts), as
 * PEM: what an external broker (Mosquitto's `crlfile`) checks client certificates against. Its
 * nextUpdate is far away on purpose: OpenSSL refuses every client certificate once the CRL it
 * holds has passed its nextUpdate (RFC 5280 §5.1.2.5), and a broker holds the file it loaded until
 * it is reloaded; mqota rewrites the file on every revocation, it is never fetched from elsewhere.
 */
export async function issueDeviceCrl(paths: PkiPaths, serials: readonly string[], days = CA_VALIDITY_DAYS): Promise<string> {
  if (!(await exists(paths.deviceCaKey))) throw new Error(`cannot sign a CRL: device CA key ${paths.deviceCaKey} is absent`);
  const signer = await loadSigner(await readFile(paths.deviceCaCert, 'utf8'), await readFile(paths.deviceCaKey, 'utf8'));
  const now = Date.now();
  const ski = signer.cert.getExtension(x509.SubjectKeyIdentifierExtension);
  const crl = await x509.X509CrlGenerator.create({
    issuer: signer.cert.subjectName,
    thisUpdate: new Date(now - BACKDATE_MS),
    nextUpdate: new Date(now + days * DAY_MS),
    entries: serials.map((serial) => ({ serialNumber: derSerial(serial), revocationDate: new Date(now - BACKDATE_MS) })),
    extensions: [ski ? new x509.AuthorityKeyIdentifierExtension(ski.keyId) : await x509.AuthorityKeyIdentifierExtension.create(signer.cert.publicKey)],
    signingKey: signer.key,
    signingAlgorithm: signer.algorithm,
  });
  // OpenSSL reads only the label RFC 7468 §5 gives a CRL.
  return x509.PemConverter.encode(crl.rawData, 'X509 CRL') + '\n';
}

/** A normalized serial as the hex of a positive, minimal DER INTEGER: whole octets, a 00 before a high bit. */
function derSerial(serial: string): string {
  const even = serial.length % 2 ? `0${serial}` : serial;
  return parseInt(even[0], 16) >= 8 ? `00${even}` : even;
}

// ---------------------------------------------------------------------------------------------

interface Issued {
  certPem: string;
  keyPem: string;
}

interface Signer {
  cert: x509.X509Certificate;
  key: CryptoKey;
  algorithm: Algorithm | EcdsaParams;
}

async function generateKeys(): Promise<CryptoKeyPair> {
  return (await subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as CryptoKeyPair;
}

async function exportKeyPem(key: CryptoKey): Promise<string> {
  const der = await subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY') + '\n';
}

/** 16 random bytes, top bit clear so the DER INTEGER is positive, first byte non-zero so it is minimal. */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0] & 0x7f || 0x01;
  return bytes.toString('hex');
}

function validity(days: number, cap?: Date): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  let notAfter = new Date(now + days * DAY_MS);
  // A leaf outliving its issuer only fails later and more confusingly.
  if (cap && notAfter > cap) notAfter = cap;
  return { notBefore: new Date(now - BACKDATE_MS), notAfter };
}

async function createCa(commonName: string): Promise<Issued> {
  const keys = await generateKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [commonName] }, { O: ['mqota'] }],
    ...validity(CA_VALIDITY_DAYS),
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await exportKeyPem(keys.privateKey) };
}

async function createServerCertificate(signer: Signer, names: string[]): Promise<Issued> {
  const keys = await generateKeys();
  const cert = await signLeaf(signer, {
    subject: [{ CN: [SERVER_NAME] }, { O: ['mqota'] }],
    publicKey: keys.publicKey,
    days: SERVER_VALIDITY_DAYS,
    extensions: [
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(
        names.map((n) => (isIP(n) ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n })),
      ),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await exportKeyPem(keys.privateKey) };
}

async function signLeaf(
  signer: Signer,
  leaf: { subject: x509.JsonName; publicKey: CryptoKey | x509.PublicKey; days: number; notAfter?: Date; extensions: x509.Extension[] },
): Promise<x509.X509Certificate> {
  const ski = signer.cert.getExtension(x509.SubjectKeyIdentifierExtension);
  return x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: leaf.subject,
    // The issuer's own encoded name, byte for byte: path building compares names.
    issuer: signer.cert.subjectName,
    ...validity(leaf.days, leaf.notAfter && leaf.notAfter < signer.cert.notAfter ? leaf.notAfter : signer.cert.notAfter),
    publicKey: leaf.publicKey,
    signingKey: signer.key,
    signingAlgorithm: signer.algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      ski
        ? new x509.AuthorityKeyIdentifierExtension(ski.keyId)
        : await x509.AuthorityKeyIdentifierExtension.create(signer.cert.publicKey),
      await x509.SubjectKeyIdentifierExtension.create(leaf.publicKey),
      ...leaf.extensions,
    ],
  });
}

/** Loads a CA for signing. Accepts any PEM private key Node reads (PKCS#8, SEC1, PKCS#1), so an operator's own EC or RSA CA works. */
async function loadSigner(certPem: string, keyPem: string): Promise<Signer> {
  const cert = new x509.X509Certificate(certPem);
  const keyObject = createPrivateKey(keyPem);
  const der = keyObject.export({ type: 'pkcs8', format: 'der' });
  const details = keyObject.asymmetricKeyDetails ?? {};
  let importAlg: EcKeyImportParams | RsaHashedImportParams;
  let algorithm: Algorithm | EcdsaParams;
  if (keyObject.asymmetricKeyType === 'ec') {
    const curve = ({ prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' } as Record<string, string>)[details.namedCurve ?? ''];
    if (!curve) throw new Error(`unsupported CA key curve ${details.namedCurve}`);
    importAlg = { name: 'ECDSA', namedCurve: curve };
    algorithm = { name: 'ECDSA', hash: curve === 'P-256' ? 'SHA-256' : curve === 'P-384' ? 'SHA-384' : 'SHA-512' } as EcdsaParams;
  } else if (keyObject.asymmetricKeyType === 'rsa') {
    importAlg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    algorithm = { name: 'RSASSA-PKCS1-v1_5' };
  } else {
    throw new Error(`unsupported CA key type ${keyObject.asymmetricKeyType}`);
  }
  const key = await subtle.importKey('pkcs8', der, importAlg, false, ['sign']);
  return { cert, key, algorithm };
}

function coversName(cert: NodeX509, name: string): boolean {
  return isIP(name) ? cert.checkIP(name) !== undefined : cert.checkHost(name) !== undefined;
}

function issuedBy(cert: NodeX509, ca: NodeX509): boolean {
  try {
    return cert.checkIssued(ca) && cert.verify(ca.publicKey);
  } catch {
    return false;
  }
}

type PairState = 'present' | 'absent';

/** `keyMayBeElsewhere`: a CA certificate without its key is an operator's CA held offline; the reverse is never fine. */
async function pairState(certPath: string, keyPath: string, keyMayBeElsewhere = false): Promise<PairState> {
  const [c, k] = await Promise.all([exists(certPath), exists(keyPath)]);
  if (c && k) return 'present';
  if (!c && !k) return 'absent';
  if (c && keyMayBeElsewhere) return 'present';
  throw new Error(`${c ? keyPath : certPath} is missing while ${c ? certPath : keyPath} exists: restore it or remove both`);
}

/** Key first, then certificate, each written to a temporary name and renamed, so a crash never leaves half a file. */
async function writePair(certPath: string, keyPath: string, issued: Issued): Promise<void> {
  await atomicWrite(keyPath, issued.keyPem, 0o600);
  await atomicWrite(certPath, issued.certPem, 0o644);
}

/** Writes to a temporary name and renames, so a reader never sees half a file. */
export async function atomicWrite(file: string, data: string, mode: number): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, data, { mode, flag: 'wx' });
  await chmod(tmp, mode);
  await rename(tmp, file);
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}
