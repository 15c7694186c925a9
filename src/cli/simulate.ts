// `mqota simulate`: a fleet of simulated devices (src/simulation/simulated-fleet.ts) against a
// running mqota, for demos and load. Prints a one-line summary as the fleet changes; Ctrl-C (or
// SIGTERM) disconnects every device and exits 0.
import { type Command, InvalidArgumentError } from 'commander';
import type { ApiClient } from './api-client.js';
import { normaliseVersion } from '../firmware/version.js';
import { SimulatedFleet, type FleetSummary } from '../simulation/simulated-fleet.js';

const count = (name: string, max: number) => (v: string) => {
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > max) throw new InvalidArgumentError(`${name} must be a whole number from 1 to ${max}`);
  return Number(v);
};
const ratio = (v: string) => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) throw new InvalidArgumentError('a number from 0 to 1, e.g. 0.05');
  return n;
};

export function summaryLine(s: FleetSummary): string {
  const versions = Object.entries(s.versions).sort(([a], [b]) => a.localeCompare(b)).map(([v, n]) => `${v}: ${n}`).join(', ') || '-';
  return `online ${s.online}/${s.devices}  updating ${s.updating}  succeeded ${s.succeeded}  failed ${s.failed}  versions ${versions}`;
}

export function registerSimulate(program: Command, client: () => Promise<ApiClient>): void {
  program.command('simulate')
    .description('run a simulated fleet of mutual-TLS MQTT devices that complete updates (demos, load); Ctrl-C stops it')
    .requiredOption('--type <type>', 'firmware type the devices run')
    .option('--devices <n>', 'number of devices', count('--devices', 10_000), 10)
    .option('--version <semver>', 'version the devices start on', '1.0.0')
    .option('--chip <chip>', 'chip the devices announce', 'esp32')
    .option('--failure-rate <ratio>', 'probability that an update fails (reported failed)', ratio, 0)
    .option('--prefix <prefix>', 'device ids are <prefix>-0001, ... (default sim-<type>)')
    .option('--concurrency <n>', 'devices provisioned and connecting at once', count('--concurrency', 256), 16)
    .action(async (o: { type: string; devices: number; version: string; chip: string; failureRate: number; prefix?: string; concurrency: number }) => {
      if (!/^[A-Za-z0-9_.-]{1,64}$/.test(o.type)) throw new Error(`--type '${o.type}': letters, digits, '_', '.', '-'`);
      if (!normaliseVersion(o.version)) throw new Error(`--version '${o.version}' is not a semantic version`);
      const api = await client();
      const fleet = new SimulatedFleet({ devices: o.devices, type: o.type, version: o.version, chip: o.chip, failureRate: o.failureRate, prefix: o.prefix ?? `sim-${o.type}`, concurrency: o.concurrency });
      const live = process.stdout.isTTY;
      let last = '';
      let timer: NodeJS.Timeout | null = null;
      // At most a few lines a second however busy the fleet is; on a terminal the line is redrawn in place.
      const show = () => {
        timer = null;
        const line = summaryLine(fleet.summary());
        if (line === last) return;
        last = line;
        process.stdout.write(live ? `\r\x1b[K${line}` : `${line}\n`);
      };
      fleet.onChange(() => { timer ??= setTimeout(show, 200); });
      let stopping: Promise<void> | null = null;
      const stop = () => stopping ??= (async () => {
        if (timer) clearTimeout(timer);
        await fleet.stop();
        await api.close();
        show();
        process.stdout.write(`${live ? '\n' : ''}stopped: ${summaryLine(fleet.summary())}\n`);
        process.exit(0);
      })();
      process.on('SIGINT', () => void stop());
      process.on('SIGTERM', () => void stop());
      process.stderr.write(`simulating ${o.devices} ${o.type} devices on ${o.version} (ids ${fleet.ids()[0]}...), failure rate ${o.failureRate}; Ctrl-C stops\n`);
      let errors = 0;
      await fleet.start(api, (id, err) => {
        if (++errors <= 5) process.stderr.write(`${live ? '\n' : ''}${id}: ${err.message}${errors === 5 ? ' (further errors not shown)' : ''}\n`);
      });
      if (stopping) return stopping;
      if (fleet.summary().online === 0) {
        await fleet.stop();
        await api.close();
        throw new Error('no device could connect');
      }
      show();
      // Runs until a signal stops it.
      await new Promise<never>(() => { setInterval(() => undefined, 1 << 30); });
    });
}
