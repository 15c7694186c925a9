// Device identities for the simulated fleet: one ECDSA P-256 client certificate per device
// (CN = device id), issued by the device CA in the server's certificate directory, as
// `POST /api/devices` would. Issued once per run and shared by every database's server, which
// all use the same certificate directory.
import { writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { ensurePki, issueClientCertificate } from '../certs/pki.js';
import { now } from './clock.js';
import type { DeviceCredentials, FleetCredentials } from './fleet-protocol.js';
import { mapLimit } from '../src/simulation/concurrency.js';

export interface IssuedFleet {
  /** JSON file the fleet process reads (FleetCredentials). */
  file: string;
  caPem: string;
  deviceIds: string[];
  warmupIds: string[];
  /** Devices that connect last, to measure what one more device costs (scenario.ts). */
  laterIds: string[];
  seconds: number;
}

export async function issueFleetCredentials(opts: { certsDir: string; file: string; devices: number; warmup: number; later?: number }): Promise<IssuedFleet> {
  const { paths } = await ensurePki({ dir: opts.certsDir, hostnames: ['127.0.0.1'] });
  const deviceIds = Array.from({ length: opts.devices }, (_, i) => `bench-${String(i).padStart(5, '0')}`);
  const warmupIds = Array.from({ length: opts.warmup }, (_, i) => `warmup-${String(i).padStart(4, '0')}`);
  const laterIds = Array.from({ length: opts.later ?? 0 }, (_, i) => `later-${String(i).padStart(5, '0')}`);
  const started = now();
  let caPem = '';
  // WebCrypto key generation and signing run on libuv's thread pool: a few in flight use every core.
  const devices = await mapLimit([...warmupIds, ...deviceIds, ...laterIds], Math.max(4, availableParallelism() * 2), async (id): Promise<DeviceCredentials> => {
    const issued = await issueClientCertificate(paths, { id, role: 'device' });
    caPem = issued.caPem;
    return { id, certPem: issued.certPem, keyPem: issued.keyPem };
  });
  const seconds = (now() - started) / 1000;
  const credentials: FleetCredentials = { caPem, devices };
  await writeFile(opts.file, JSON.stringify(credentials), { mode: 0o600 });
  return { file: opts.file, caPem, deviceIds, warmupIds, laterIds, seconds };
}
