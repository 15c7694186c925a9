// What `npm run bench -- --broker mosquitto` points the fleet at (issue #10): mqota with its
// embedded broker, or Debian's Mosquitto configured by `mqota broker config mosquitto` with one or
// more mqota instances in external mode. Every deployment gets its own fresh PostgreSQL database,
// so the broker is the only difference. Instances of one deployment share the database, the data
// folder (images) and the certificates folder, each with its own MQOTA_SERVICE_ID and
// MQOTA_INSTANCE_ID, as docs/scaling.md describes.
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { Agent, request } from 'undici';
import { freePort, withoutMqotaSettings } from '../tests/support/child-process.js';
import { startGeneratedMosquitto, type AnchorProcess } from './anchors.js';
import type { BenchDatabase } from './database.js';
import { ServerProcess } from './server-process.js';

export type DeploymentSpec = { broker: 'embedded' } | { broker: 'mosquitto'; instances: number };

export interface Deployment {
  /** For the report, e.g. "Mosquitto + 2 mqota". */
  name: string;
  /** Where devices connect. */
  brokerPort: number;
  servers: ServerProcess[];
  /** Null with the embedded broker. */
  mosquitto: AnchorProcess | null;
  /** The instance that runs rollout ticks (GET /healthz); 0 with one. */
  leader: number;
  stop(): Promise<void>;
}

export function deploymentName(spec: DeploymentSpec): string {
  return spec.broker === 'embedded' ? 'embedded broker' : `Mosquitto + ${spec.instances} mqota`;
}

export interface DeploymentOptions {
  repoRoot: string;
  workDir: string;
  certsDir: string;
  caPem: string;
  adminToken: string;
  db: BenchDatabase;
  /** Mosquitto's executable (findBinary), for a Mosquitto deployment. */
  mosquittoBinary: string | null;
  serverEnv: Record<string, string>;
  serverNodeArgs: string[];
}

const LEADER_TIMEOUT_MS = 60_000;

export async function startDeployment(spec: DeploymentSpec, opts: DeploymentOptions): Promise<Deployment> {
  const name = deploymentName(spec);
  const dataDir = path.join(opts.workDir, `data-${name.replace(/\W+/g, '-')}`);
  await mkdir(dataDir, { recursive: true });
  const server = (env: Record<string, string>) => ServerProcess.start({
    repoRoot: opts.repoRoot, dataDir, certsDir: opts.certsDir, caPem: opts.caPem, adminToken: opts.adminToken, databaseUrl: opts.db.url,
    env: { ...opts.serverEnv, ...env }, nodeArgs: opts.serverNodeArgs,
  });
  if (spec.broker === 'embedded') {
    const s = await server({});
    return { name, brokerPort: s.mqttPort, servers: [s], mosquitto: null, leader: 0, stop: () => s.stop() };
  }
  if (!opts.mosquittoBinary) throw new Error('Mosquitto is not installed');
  const servers: ServerProcess[] = [];
  let mosquitto: AnchorProcess | null = null;
  const stop = async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await mosquitto?.stop();
  };
  try {
    const port = await freePort();
    const configDir = path.join(opts.workDir, `broker-${port}`);
    const serviceIds = Array.from({ length: spec.instances }, (_, i) => `mqota-${String.fromCharCode(97 + i)}`);
    await brokerConfig(opts, { dataDir, configDir, port, serviceIds });
    mosquitto = await startGeneratedMosquitto({ binary: opts.mosquittoBinary, workDir: opts.workDir, configDir, port });
    for (const [i, serviceId] of serviceIds.entries()) {
      servers.push(await server({
        MQOTA_BROKER: 'external', MQOTA_BROKER_URL: `mqtts://127.0.0.1:${port}`, MQOTA_BROKER_CONFIG_DIR: configDir,
        MQOTA_SERVICE_ID: serviceId, MQOTA_INSTANCE_ID: String.fromCharCode(97 + i),
      }));
    }
    return { name, brokerPort: port, servers, mosquitto, leader: await leaderOf(servers, opts.caPem), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** `mqota broker config mosquitto --out DIR --port P --service-id …`, run as an operator would, with the instances' environment. */
async function brokerConfig(opts: DeploymentOptions, at: { dataDir: string; configDir: string; port: number; serviceIds: string[] }): Promise<void> {
  const env = {
    ...withoutMqotaSettings(process.env),
    MQOTA_DATA_DIR: at.dataDir, MQOTA_CERTS_DIR: opts.certsDir, MQOTA_HOSTNAMES: '127.0.0.1', DATABASE_URL: opts.db.url, LOG_LEVEL: 'warn',
  };
  const args = ['bin/mqota.js', 'broker', 'config', 'mosquitto', '--out', at.configDir, '--port', String(at.port), '--service-id', ...at.serviceIds];
  try {
    await promisify(execFile)(process.execPath, args, { cwd: opts.repoRoot, env });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`mqota broker config mosquitto failed: ${e.stderr?.trim() || e.message}`);
  }
}

/** Waits until exactly one instance says it leads (GET /healthz). */
async function leaderOf(servers: ServerProcess[], caPem: string): Promise<number> {
  if (servers.length === 1) return 0;
  const dispatcher = new Agent({ connect: { ca: caPem } });
  const deadline = Date.now() + LEADER_TIMEOUT_MS;
  try {
    while (Date.now() < deadline) {
      const leading: number[] = [];
      for (const [i, s] of servers.entries()) {
        const res = await request(`${s.publicUrl}/healthz`, { dispatcher });
        const body = await res.body.json() as { instance?: { leader?: boolean } };
        if (body.instance?.leader) leading.push(i);
      }
      if (leading.length === 1) return leading[0];
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`no single leader among ${servers.length} instances within ${LEADER_TIMEOUT_MS / 1000} s`);
  } finally {
    await dispatcher.close();
  }
}
