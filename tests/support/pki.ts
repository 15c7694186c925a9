// A throw-away PKI for tests: server CA, server certificate (localhost, 127.0.0.1, ::1) and device
// CA in a temp dir, client certificates issued on demand, and a second, unrelated PKI for
// "unknown CA" cases. Built with the real certs/pki.ts.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ClientRole } from '../../certs/identity.js';
import { ensurePki, issueClientCertificate, type PkiPaths } from '../../certs/pki.js';

/** What a client needs to connect: its certificate and key, and the server CA to verify the broker. */
export interface ClientCredentials {
  certPem: string;
  keyPem: string;
  caPem: string;
}

export interface TestPki {
  dir: string;
  paths: PkiPaths;
  /** Server-side TLS material, in the shape `startBroker({ tls })` takes. */
  serverTls: { key: string; cert: string; clientCa: string };
  /** The server CA PEM (what devices trust). */
  caPem: string;
  /** A client certificate signed by this PKI's device CA (cached per id and role). */
  issue(id: string, role?: ClientRole): Promise<ClientCredentials>;
  /** A client certificate for `id` from a different device CA, which the broker must not trust. */
  issueForeign(id: string, role?: ClientRole): Promise<ClientCredentials>;
  /** Removes the temp dirs. */
  cleanup(): Promise<void>;
}

/** Creates a temp PKI; call cleanup() in an after() hook. */
export async function createTestPki(): Promise<TestPki> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mqota-pki-'));
  const foreignDir = path.join(dir, 'foreign');
  const { paths } = await ensurePki({ dir: path.join(dir, 'pki') });
  const [key, cert, clientCa, caPem] = await Promise.all(
    [paths.serverKey, paths.serverCert, paths.deviceCaCert, paths.caCert].map((p) => readFile(p, 'utf8')),
  );
  const cache = new Map<string, Promise<ClientCredentials>>();
  let foreignPaths: Promise<PkiPaths> | undefined;

  const issueFrom = (from: PkiPaths, id: string, role: ClientRole) =>
    issueClientCertificate(from, { id, role }).then(({ certPem, keyPem }) => ({ certPem, keyPem, caPem }));

  return {
    dir,
    paths,
    serverTls: { key, cert, clientCa },
    caPem,
    issue(id, role = 'device') {
      const k = `${role}:${id}`;
      if (!cache.has(k)) cache.set(k, issueFrom(paths, id, role));
      return cache.get(k)!;
    },
    async issueForeign(id, role = 'device') {
      foreignPaths ??= ensurePki({ dir: foreignDir }).then((r) => r.paths);
      return issueFrom(await foreignPaths, id, role);
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
