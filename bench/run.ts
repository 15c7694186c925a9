// `npm run bench`: issue #2's benchmark. A real mqota server process and a fleet of real TLS MQTT
// devices in another process, on 127.0.0.1 only, once per database (PGlite, then PostgreSQL).
//
//   npm run bench -- [--devices 1000] [--databases pglite,postgres] [--complete]
//                    [--concurrency 64] [--warmup 50] [--profile]
//   npm run bench -- --broker mosquitto [--devices 10000]   (issue #10: broker-comparison.ts)
//
// Prints a report per database with PASS/MISS against the targets, a markdown table, and writes
// everything to bench/results/<timestamp>.json. See bench/README.md.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { brokerComparisonUnavailable, runBrokerComparison } from './broker-comparison.js';
import { comparisonTable, runBareAedes, runMosquitto, type BrokerAnchorResult } from './compare.js';
import { issueFleetCredentials } from './credentials.js';
import { compareImages, printImageComparison } from './images.js';
import { measureStartup, printStartup } from './startup.js';
import { DATABASE_KINDS, Databases, type DatabaseKind } from './database.js';
import { markdownTable, printScenario, verdicts, writeResults, type RunInfo } from './report.js';
import { runScenario, type ScenarioResult } from './scenario.js';
import { ServerProcess } from './server-process.js';
import { START_NODE_ARGS } from '../src/heap-tuning.js';
import { fixed } from './stats.js';
import { runsCompiled } from '../bin/entry.js';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.dirname(BENCH_DIR);
const RESULTS_DIR = path.join(BENCH_DIR, 'results');

const USAGE = `npm run bench -- [options]
  --devices N          simulated devices (default 1000; 10000 with --broker)
  --databases LIST     pglite,postgres (default both; PostgreSQL from MQOTA_BENCH_DATABASE_URL,
                       MQOTA_TEST_DATABASE_URL or a throwaway local cluster)
  --complete           devices also report accepted→succeeded; time until the API shows completed
  --concurrency N      devices connecting at a time (default 64; 100 with --broker)
  --warmup N           devices that connect, announce and leave before measuring (default 50)
  --compare            also Mosquitto (same fleet), nginx (images, wrk) and start-up, side by side
  --image-runs N       alternating nginx/mqota wrk runs with --compare (default 3)
  --broker mosquitto   instead: the same fleet against the embedded broker, then Mosquitto
                       (configured by \`mqota broker config mosquitto\`) with one and two mqota
                       instances over PostgreSQL; one table (bench/README.md)
  --profile            run the server with --cpu-prof; profiles under bench/results/
  --server-env K=V     extra environment for the server, repeatable (e.g. MALLOC_ARENA_MAX=2)
  --server-node-arg A  extra node/V8 option for the server, repeatable (e.g. --max-semi-space-size=32)`;

function options() {
  const { values } = parseArgs({
    options: {
      devices: { type: 'string' },
      broker: { type: 'string' },
      databases: { type: 'string', default: DATABASE_KINDS.join(',') },
      complete: { type: 'boolean', default: false },
      concurrency: { type: 'string' },
      warmup: { type: 'string', default: '50' },
      profile: { type: 'boolean', default: false },
      compare: { type: 'boolean', default: false },
      'image-runs': { type: 'string', default: '3' },
      'server-env': { type: 'string', multiple: true, default: [] },
      'server-node-arg': { type: 'string', multiple: true, default: [] },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  if (values.broker !== undefined && values.broker !== 'mosquitto') throw new Error(`--broker takes mosquitto, not ${values.broker}`);
  const brokerMode = values.broker === 'mosquitto';
  const defaults = { devices: brokerMode ? '10000' : '1000', concurrency: brokerMode ? '100' : '64', warmup: '50' };
  const count = (name: 'devices' | 'concurrency' | 'warmup', min: number) => {
    const n = Number(values[name] ?? defaults[name]);
    if (!Number.isInteger(n) || n < min || n > 100_000) throw new Error(`--${name} must be an integer from ${min} to 100000`);
    return n;
  };
  const databases = values.databases.split(',').map((d) => d.trim()).filter(Boolean);
  const unknown = databases.filter((d) => !DATABASE_KINDS.includes(d as DatabaseKind));
  if (unknown.length || !databases.length) throw new Error(`--databases takes ${DATABASE_KINDS.join(', ')}`);
  const serverEnv: Record<string, string> = {};
  for (const pair of values['server-env']) {
    const eq = pair.indexOf('=');
    if (eq < 1) throw new Error(`--server-env takes NAME=VALUE, not ${pair}`);
    serverEnv[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const serverNodeArgs = values['server-node-arg'];
  for (const arg of serverNodeArgs) if (!arg.startsWith('--')) throw new Error(`--server-node-arg takes an option such as --max-semi-space-size=32, not ${arg}`);
  return {
    serverEnv, serverNodeArgs,
    devices: count('devices', 1), concurrency: count('concurrency', 1), warmup: count('warmup', 0),
    databases: databases as DatabaseKind[], complete: values.complete, profile: values.profile,
    broker: brokerMode, compare: values.compare, imageRuns: Number(values['image-runs']),
  };
}

/** What is being measured: the commit, and whether the server's code differs from it. */
function commitUnderTest(): string {
  try {
    const git = (...args: string[]) => execFileSync('git', ['-C', REPO_ROOT, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return `${git('rev-parse', '--short', 'HEAD')}${git('status', '--porcelain', '--', 'src', 'broker', 'certs', 'prisma') ? '+dirty' : ''}`;
  } catch {
    return 'unknown (not a git checkout)';
  }
}

/**
 * The last batch's size: a tenth of the fleet, at least 200 so its memory stands out of the noise
 * of a reading (±1–2 MiB), at most the fleet.
 */
function laterDevices(devices: number): number {
  return Math.min(devices, Math.max(200, Math.ceil(devices / 10)));
}

async function main(): Promise<number> {
  const opts = options();
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const workDir = await mkdtemp(path.join(os.tmpdir(), 'mqota-bench-'));
  const databases = new Databases();
  const cleanUp = async () => {
    await databases.close();
    await rm(workDir, { recursive: true, force: true });
  };
  process.once('SIGINT', () => { void ServerProcess.stopAll().then(cleanUp).finally(() => process.exit(130)); });
  try {
    const brokerSkip = opts.broker ? brokerComparisonUnavailable(databases) : null;
    if (brokerSkip) {
      console.log(brokerSkip);
      return 0;
    }
    const commit = commitUnderTest();
    const [load1] = readFileSync('/proc/loadavg', 'utf8').split(' ').map(Number);
    console.log(`mqota ${commit}, node ${process.version}, ${os.availableParallelism()} CPUs, load average ${load1}`);
    if (load1 > 0.5) console.log('  the machine is busy: figures will be disturbed (each phase reports how much CPU other processes took)');
    const allocator = ServerProcess.allocator(REPO_ROOT, opts.serverEnv).name;
    console.log(`  server allocator: ${allocator}`);
    // The sources through tsx hold more memory and start slower than the service as shipped.
    if (!runsCompiled()) console.log('  the server runs the sources through tsx (dist/ is older than them: npm run build): memory and start-up figures are not the compiled service\'s');
    const certsDir = path.join(workDir, 'certs');
    // What one more device costs is read from a further batch, connected with the fleet online.
    const later = opts.broker ? 0 : laterDevices(opts.devices);
    const issuing = opts.devices + opts.warmup + later;
    console.log(`Issuing ${issuing} device certificates (ECDSA P-256)...`);
    const fleet = await issueFleetCredentials({ certsDir, file: path.join(workDir, 'devices.json'), devices: opts.devices, warmup: opts.warmup, later });
    console.log(`  ${issuing} issued in ${fixed(fleet.seconds, 1)} s (${fixed((fleet.seconds * 1000) / issuing, 2)} ms each), reused by every database's server`);

    const info: RunInfo = {
      commit, devices: opts.devices, warmup: opts.warmup, concurrency: opts.concurrency, node: process.version, allocator,
      cpus: `${os.availableParallelism()} × ${os.cpus()[0]?.model.trim() ?? 'CPU'}`, credentialsSeconds: fleet.seconds, skipped: [], serverEnv: opts.serverEnv, serverNodeArgs: opts.serverNodeArgs,
    };
    if (opts.broker) {
      const { table, file } = await runBrokerComparison(databases, {
        repoRoot: REPO_ROOT, workDir, resultsDir: RESULTS_DIR, certsDir, caPem: fleet.caPem, credentialsFile: fleet.file,
        deviceIds: fleet.deviceIds, warmupIds: fleet.warmupIds, concurrency: opts.concurrency, serverEnv: opts.serverEnv, serverNodeArgs: opts.serverNodeArgs,
      }, info);
      console.log(`\n${table}\n\nResults: ${path.relative(process.cwd(), file)}`);
      return 0;
    }
    const brokers: (BrokerAnchorResult | string)[] = [];
    if (opts.compare) {
      if (!fleet.warmupIds.length) throw new Error('--compare needs --warmup ≥ 1 (a warm-up identity publishes the anchor broker\'s commands)');
      const run = { workDir, certsDir, credentialsFile: fleet.file, deviceIds: fleet.deviceIds, publisherId: fleet.warmupIds[0], concurrency: opts.concurrency };
      console.log('\nMosquitto, same fleet: connect + subscribe, then one command to every device...');
      // An anchor that fails is reported in its column; mqota's own run still happens.
      const failed = (name: string) => (err: unknown) => `${name} failed: ${err instanceof Error ? err.message : String(err)}`;
      brokers.push(await runMosquitto(run).catch(failed('Mosquitto')));
      // The stack without mqota: what Node's TLS and Aedes cost by themselves, with mqota's node flags and allocator.
      console.log('\nBare Aedes behind Node TLS, same fleet and steps...');
      brokers.push(await runBareAedes({ ...run, repoRoot: REPO_ROOT, nodeArgs: [...START_NODE_ARGS, ...opts.serverNodeArgs],
        env: ServerProcess.allocator(REPO_ROOT, opts.serverEnv).env }).catch(failed('Aedes + Node TLS')));
      for (const b of brokers) {
        if (typeof b === 'string') console.log(`  ${b}`);
        else console.log(`  ${b.name} (${b.version}): ${b.connected}/${b.devices} connected in ${fixed(b.connectSeconds, 2)} s (${fixed(b.connectCpuMs / Math.max(1, b.connected), 2)} ms CPU a device), fan-out ${b.fanOutMs === null ? `INCOMPLETE (${b.fanOutReceived})` : `${fixed(b.fanOutMs, 0)} ms`} (${fixed(b.fanOutCpuMs, 0)} ms CPU), ${fixed(b.perDeviceRssBytes / 1024)} KiB RSS per device${Object.keys(b.failures).length ? `, failures ${JSON.stringify(b.failures)}` : ''}`);
      }
    }
    const results: ScenarioResult[] = [];
    for (const kind of opts.databases) {
      const unavailable = kind === 'postgres' ? databases.postgresUnavailable() : null;
      if (unavailable) {
        console.log(`\nPostgreSQL skipped: ${unavailable}`);
        info.skipped.push(unavailable);
        continue;
      }
      const db = await databases.open(kind);
      const result = await runScenario(db, {
        repoRoot: REPO_ROOT, workDir, certsDir, caPem: fleet.caPem, credentialsFile: fleet.file,
        deviceIds: fleet.deviceIds, warmupIds: fleet.warmupIds, laterIds: fleet.laterIds, concurrency: opts.concurrency, complete: opts.complete,
        cpuProfileDir: opts.profile ? path.join(RESULTS_DIR, `profile-${stamp}`) : undefined, serverEnv: opts.serverEnv, serverNodeArgs: opts.serverNodeArgs,
      });
      printScenario(result, info);
      results.push(result);
    }

    console.log(`\n${markdownTable(results, info)}\n`);
    if (opts.compare) {
      const images = await compareImages({ repoRoot: REPO_ROOT, workDir, runs: opts.imageRuns, seconds: 10, connections: 100, nginxWorkers: 'auto', serverEnv: opts.serverEnv, serverNodeArgs: opts.serverNodeArgs });
      printImageComparison(images);
      const startup = await measureStartup({ repoRoot: REPO_ROOT, workDir, restarts: 2, serverEnv: opts.serverEnv, serverNodeArgs: opts.serverNodeArgs });
      printStartup(startup);
      console.log(`\nSide by side (one run, ${opts.devices} devices, ${opts.concurrency} connecting at a time):\n\n${comparisonTable(results, brokers, images, startup)}\n`);
    }
    console.log(`Results: ${path.relative(process.cwd(), await writeResults(RESULTS_DIR, info, results))}`);
    if (opts.profile) console.log(`CPU profiles: ${path.relative(process.cwd(), path.join(RESULTS_DIR, `profile-${stamp}`))} (open in Chrome DevTools, or: npx tsx bench/profile-summary.ts <file>)`);
    return results.every((r) => verdicts(r).every((v) => v.pass)) ? 0 : 1;
  } finally {
    await cleanUp();
  }
}

main().then((code) => process.exit(code), (err) => {
  console.error(`bench failed: ${err instanceof Error ? err.stack : String(err)}`);
  process.exit(2);
});
