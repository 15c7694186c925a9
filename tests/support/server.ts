// A real mqota for tests: TLS broker and HTTPS API on ephemeral ports, PGlite in a temp folder or
// a fresh PostgreSQL database, certificates from a TestPki. Restartable on the same data.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino, type Logger } from 'pino';
import type { MqttClient } from 'mqtt';
import { ApiClient } from '../../src/cli/api-client.js';
import { loadConfig, type Config } from '../../src/config.js';
import type { Clock } from '../../src/webhooks/index.js';
import { startMqota, type Mqota } from '../../src/mqota.js';
import { topics } from '../../src/topics.js';
import { createTestPki, type TestPki } from './pki.js';
import { connectDevice, nextMessage } from './mqtt.js';
import { freshPostgresDatabase } from './postgres.js';

export type DatabaseKind = 'pglite' | 'postgres';

export const DATABASES: DatabaseKind[] = ['pglite', 'postgres'];

export interface TestServer {
  mqota: Mqota;
  pki: TestPki;
  api: ApiClient;
  dataDir: string;
  config: Config;
  /** Stops and starts again on the same data, certificates and ports. */
  restart(): Promise<void>;
  close(): Promise<void>;
  /** Connects a device (persistent session) subscribed to its command topic. */
  device(id: string): Promise<MqttClient>;
}

/**
 * `sameDatabaseAs`: another instance over the first one's PostgreSQL database, with its
 * certificates (src/cluster/); it leaves both to the first to clean up.
 */
export async function startTestServer(opts: { database?: DatabaseKind; env?: Record<string, string>; logger?: Logger; pki?: TestPki; dataDir?: string; webhookClock?: Clock; sameDatabaseAs?: TestServer } = {}): Promise<TestServer> {
  const shared = opts.sameDatabaseAs;
  const pki = shared?.pki ?? opts.pki ?? await createTestPki();
  const dataDir = opts.dataDir ?? await mkdtemp(path.join(os.tmpdir(), 'mqota-data-'));
  const databaseUrl = shared ? shared.config.databaseUrl! : opts.database === 'postgres' ? await freshPostgresDatabase() : undefined;
  const config = loadConfig({
    MQOTA_DATA_DIR: dataDir, MQOTA_CERTS_DIR: pki.paths.dir, MQOTA_HOST: '127.0.0.1', MQTT_PORT: '0', HTTPS_PORT: '0',
    MQOTA_HOSTNAMES: '127.0.0.1', MQOTA_ADMIN_TOKEN: 'test-token-0123456789abcdef', LOG_LEVEL: process.env.MQOTA_TEST_LOG ?? 'silent', LOG_FORMAT: 'json',
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}), ...opts.env,
  });
  const logger = opts.logger ?? pino({ level: config.logLevel });
  let mqota = await startMqota(config, logger, { webhookClock: opts.webhookClock });
  const apiFor = (m: Mqota) => new ApiClient({ baseUrl: m.publicUrl, token: config.adminToken!, caPem: pki.caPem });
  const server: TestServer = {
    mqota, pki, dataDir, config, api: apiFor(mqota),
    async restart() {
      const { httpsPort, mqttPort } = server.mqota;
      await server.mqota.close();
      await server.api.close();
      mqota = await startMqota({ ...config, httpsPort, mqttPort }, logger, { webhookClock: opts.webhookClock });
      server.mqota = mqota;
      server.api = apiFor(mqota);
    },
    async close() {
      await server.api.close();
      await server.mqota.close();
      await rm(dataDir, { recursive: true, force: true });
      if (!shared) await pki.cleanup();
    },
    async device(id) {
      // On an external broker mqota learns presence from the device's retained presence messages.
      const client = await connectDevice(id, { port: server.mqota.mqttPort, pki, presence: config.broker.mode === 'external' });
      await client.subscribeAsync(topics.command(id), { qos: 1 });
      return client;
    },
  };
  return server;
}

/** Publishes an announce and resolves with the command the server answers. */
export async function announce(client: MqttClient, id: string, body: unknown): Promise<Record<string, unknown>> {
  const answer = nextMessage(client, topics.command(id));
  await client.publishAsync(topics.announce(id), typeof body === 'string' ? body : JSON.stringify(body), { qos: 1 });
  return JSON.parse((await answer).payload.toString());
}

export async function report(client: MqttClient, id: string, body: Record<string, unknown>): Promise<void> {
  await client.publishAsync(topics.status(id), JSON.stringify(body), { qos: 1 });
}
