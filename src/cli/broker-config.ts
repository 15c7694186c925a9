// `mqota broker config mosquitto|emqx --out DIR`: an external broker's configuration, written
// where the service runs and with its environment (certificates folder, database): the broker
// then enforces mqota's identities and ACL itself (src/device-link/broker-config.ts). It opens the
// database to read the certificate ledger, so with PGlite it runs while the service is stopped;
// a service started with MQOTA_BROKER_CONFIG_DIR=DIR keeps the files current from then on.
import path from 'node:path';
import type { Command } from 'commander';
import { pino } from 'pino';
import { ensurePki } from '../../certs/pki.js';
import { CertificateLedger } from '../auth/certificate-ledger.js';
import { loadConfig, type Config } from '../config.js';
import { openDatabase } from '../db/database.js';
import { BROKER_KINDS, certificateState, writeBrokerConfig, type BrokerConfigRequest, type BrokerKind } from '../device-link/broker-config.js';
import { ensureServiceCertificate } from '../device-link/index.js';
import type { Logger } from '../logger.js';

export interface BrokerConfigOptions {
  kind: BrokerKind;
  out: string;
  port: number;
  /** The folder as the broker sees it; default `out`. */
  brokerDir?: string;
  /** The service certificates to issue now (so the ACL names them); default MQOTA_SERVICE_ID or `mqota`. */
  serviceIds?: string[];
}

/** Writes the files; returns their names. */
export async function generateBrokerConfig(config: Config, opts: BrokerConfigOptions, logger: Logger): Promise<{ dir: string; files: string[] }> {
  const pki = await ensurePki({ dir: config.certsDir, hostnames: config.hostnames });
  const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, logger });
  try {
    const ledger = new CertificateLedger(db.prisma, pki.paths);
    await ledger.load();
    const serviceIds = opts.serviceIds ?? [config.broker.mode === 'external' ? config.broker.serviceId : 'mqota'];
    for (const id of serviceIds) await ensureServiceCertificate(pki.paths, ledger, id, logger);
    const dir = path.resolve(opts.out);
    const request: BrokerConfigRequest = { kind: opts.kind, port: opts.port, brokerDir: opts.brokerDir ?? dir };
    const files = await writeBrokerConfig(dir, request, pki.paths, await certificateState(ledger));
    return { dir, files };
  } finally {
    await db.close();
  }
}

export function registerBrokerConfig(program: Command, print: (value: unknown, text: () => string) => void): void {
  const broker = program.command('broker').description('an external MQTT broker in place of the embedded one (docs/scaling.md)');
  broker.command('config')
    .description('write an external broker\'s configuration: mutual TLS with mqota\'s certificates, mqota\'s ACL, a CRL of revoked certificates')
    .argument('<kind>', `the broker: ${BROKER_KINDS.join(' or ')}`)
    .requiredOption('--out <dir>', 'folder to write into (created if missing)')
    .option('--port <port>', 'the broker\'s TLS port', (v) => {
      if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 65535) throw new Error('--port must be 1-65535');
      return Number(v);
    }, 8883)
    .option('--broker-dir <path>', 'the folder\'s path as the broker sees it (e.g. a container mount); default --out')
    .option('--service-id <id...>', 'client ids of mqota instances (service certificates); default MQOTA_SERVICE_ID or mqota')
    .action(async (kind: string, o: { out: string; port: number; brokerDir?: string; serviceId?: string[] }) => {
      if (!(BROKER_KINDS as readonly string[]).includes(kind)) throw new Error(`unknown broker '${kind}': expected ${BROKER_KINDS.join(' or ')}`);
      const config = loadConfig();
      const logger = pino({ level: 'warn' });
      const { dir, files } = await generateBrokerConfig(config, { kind: kind as BrokerKind, out: o.out, port: o.port, brokerDir: o.brokerDir, serviceIds: o.serviceId }, logger);
      print({ dir, files }, () => `wrote ${files.join(', ')} to ${dir}\n  ${kind === 'mosquitto' ? `mosquitto -c ${path.join(dir, 'mosquitto.conf')}` : `include ${path.join(dir, 'emqx.conf')} from emqx.conf`}\n  then start mqota with MQOTA_BROKER=external MQOTA_BROKER_URL=mqtts://<host>:${o.port} MQOTA_BROKER_CONFIG_DIR=${dir}`);
    });
}
