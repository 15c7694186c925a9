// `npm start`: run mqota with the configuration from the environment.
import { ConfigError, loadConfig } from './config.js';
import { accountExternalMemory, tuneHeap } from './heap-tuning.js';
import { releaseHeap } from './heap-release.js';
import { createLogger } from './logger.js';
import { openPgliteEarly, pgliteDir } from './db/pglite-store.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`mqota: ${err.message}\nSee the README's configuration table.\n`);
      process.exit(2);
    }
    throw err;
  }
  const heap = tuneHeap(config.heapGrowingPercent);
  const externalMemory = accountExternalMemory(config.heapGrowingPercent);
  const logger = createLogger(config);
  // The embedded database starts in its worker thread while the rest of mqota loads here.
  if (!config.databaseUrl) openPgliteEarly(pgliteDir(config.dataDir), logger);
  const { startMqota } = await import('./mqota.js');
  const mqota = await startMqota(config, logger);
  const listen = (port: number) => `${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  logger.info({
    dashboard: `${mqota.publicUrl}/`, docs: `${mqota.publicUrl}/docs`, mqtt: mqota.services.links.brokerUrl(),
    listening: { https: listen(mqota.httpsPort), mqtt: listen(mqota.mqttPort) },
    database: mqota.services.db.kind, dataDir: config.dataDir,
    certsDir: config.certsDir, fingerprints: mqota.fingerprints,
    heapGrowingPercent: heap === 'mqota' ? config.heapGrowingPercent : heap, externalMemoryInGlobalLimit: externalMemory,
  }, mqota.pkiCreated ? 'mqota started with newly generated development certificates' : 'mqota started');
  if (!config.publicUrl) logger.warn({ publicUrl: mqota.publicUrl }, 'PUBLIC_URL is not set: image links use this host name; set it to the address devices reach');
  if (mqota.adminToken.generated) {
    // Printed once, outside the log stream, so it is not shipped with the logs.
    process.stdout.write(`\nOperator API token (stored in ${mqota.adminToken.file}, shown only now):\n\n    ${mqota.adminToken.token}\n\n`);
  }

  // Start-up's leftovers in both isolates, once the warm-ups after listening are done
  // (heap-release.ts). Not with devices connected by then: the collection holds each thread for
  // tens of milliseconds, and V8 gives the memory back by itself later.
  void mqota.warmedUp.then(async () => {
    if (mqota.services.broker.connectedDevices() > 0) return;
    const rssBefore = process.memoryUsage.rss();
    const main = releaseHeap();
    const database = await mqota.services.db.releaseHeap();
    logger.debug({ rssBefore, main, database }, 'start-up memory released');
  }).catch((err: unknown) => logger.warn({ err }, 'releasing start-up memory failed'));

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    mqota.close().then(() => process.exit(0), (err) => { logger.error({ err }, 'unclean stop'); process.exit(1); });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((err) => {
  process.stderr.write(`mqota: could not start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
