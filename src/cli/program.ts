// `mqota` command line: every command, option and its help. Everything that touches the catalog
// goes through the HTTPS API, so the CLI works while the service runs (PGlite admits one process).
// Built without being run (main.ts runs it), so tests can walk the commands.
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import tab from '@bomb.sh/tab/commander';
import { ApiClient } from './api-client.js';
import { resolveConnection, type Connection } from './connection.js';
import { NVS_GENERATE_COMMAND, writeDeviceBundle, type DeviceBundleFiles } from './bundle.js';
import { importDevices, readImportFile } from './device-import.js';
import { registerBrokerConfig } from './broker-config.js';
import { HEALTH_COLUMNS, healthColumns, type DeviceHealthView } from './health-columns.js';
import { registerLogin } from './login.js';
import { registerProvision } from './provision.js';
import { deviceRow, renderRollout, waveRow, watchExitCode, watchRollout } from './rollout-watch.js';
import { registerSigning } from './signing.js';
import { registerSimulate } from './simulate.js';
import { registerMakeTestImage } from './test-image.js';
import { ROLES, type Role } from '../auth/roles.js';
import { ROLLOUT_STATES } from '../rollouts/states.js';
import { WEBHOOK_EVENTS, WEBHOOK_FORMATS } from '../webhooks/events.js';

export const program = new Command('mqota')
  .description('Push-based OTA firmware updates for ESP32 fleets')
  .option('--server <url>', 'mqota HTTPS base URL (else MQOTA_SERVER, the login profile, or https://localhost:8443 in the server\'s folder)')
  .option('--token <token>', 'operator API token (else MQOTA_TOKEN, the login profile, or the server folder\'s data/admin-token)')
  .option('--ca <file>', 'CA certificate that signed the server certificate (else MQOTA_CA, the login profile, or ./certs/ca.crt)')
  .option('--profile <name>', 'login profile to use (else MQOTA_PROFILE, or the default profile)')
  .option('--json', 'print JSON instead of text')
  .showHelpAfterError()
  .addHelpText('after', '\nFrom any folder: `mqota login --server https://host:8443 --ca ca.crt` once, then any command.');

/** The connection of this run, kept so a failure can say which server was tried and why. */
let connection: Connection | undefined;

export function currentConnection(): Connection | undefined {
  return connection;
}

async function client(): Promise<ApiClient> {
  connection = await resolveConnection(program.opts());
  return new ApiClient({ baseUrl: connection.baseUrl, token: connection.token, caPem: connection.caPem });
}

function print(value: unknown, text: () => string): void {
  process.stdout.write(program.opts().json ? `${JSON.stringify(value, null, 2)}\n` : `${text()}\n`);
}

function table(rows: Record<string, unknown>[], columns: string[]): string {
  if (!rows.length) return '(none)';
  const cell = (v: unknown) => (v === null || v === undefined ? '-' : v instanceof Date ? v.toISOString() : String(v));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => vals.map((v, i) => v.padEnd(widths[i])).join('  ').trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...rows.map((r) => line(columns.map((c) => cell(r[c]))))].join('\n');
}

async function withClient<T>(fn: (api: ApiClient) => Promise<T>): Promise<T> {
  const api = await client();
  try { return await fn(api); } finally { await api.close(); }
}

registerLogin(program);
registerBrokerConfig(program, print);

program.command('start').description('run the service (the same as npm start)').action(async () => {
  await import('../main.js');
});

const device = program.command('device').description('the fleet: list devices, their update history; provision devices, rotate and revoke their certificates');
type BundleAnswer = { bundle: DeviceBundleFiles & { fingerprint: string } };

device.command('add').argument('<deviceId>', 'id of the new device: its certificate CN and MQTT client id')
  .description('issue a device certificate (CN = deviceId) and write a bundle ready to flash')
  .option('--type <firmwareType>', 'firmware type the device runs (without it, the type of its first announce, then kept)')
  .option('--csr <file>', 'PEM CSR of a key the device made itself (ECDSA P-256 or RSA >= 2048): the bundle then has no key')
  .option('--out <dir>', 'bundle folder (default ./<deviceId>)')
  .action(async (deviceId: string, o: { type?: string; csr?: string; out?: string }) => withClient(async (api) => {
    const csrPem = o.csr === undefined ? undefined : await readFile(o.csr, 'utf8');
    const res = await api.call<BundleAnswer>('POST', '/api/devices', JSON.parse(JSON.stringify({ id: deviceId, type: o.type, csrPem })));
    const dir = path.resolve(o.out ?? deviceId);
    await writeDeviceBundle(dir, res.bundle);
    print({ ...res, bundle: { ...res.bundle, keyPem: undefined, dir } }, () =>
      `device ${deviceId} (${o.type ?? "type taken from its first announce"}) provisioned; bundle in ${dir}${csrPem ? ' (no key: the device holds its own)' : ''}\n  certificate fingerprint ${res.bundle.fingerprint}\n  broker ${res.bundle.brokerUrl}`);
  }));

device.command('import').argument('<csvFile>', 'the CSV file: a header line, then one device per line (see below)')
  .description('provision every device of a CSV file (columns id, type, tags, csr) at once, or none; a bundle with nvs.csv each')
  .option('--out <dir>', 'folder for the bundles, one <id>/ each (default .)')
  .addHelpText('after', `
CSV: a header line, then one device per line. id is required; type optional; tags separated by ';'
or spaces; csr the path (relative to the CSV file) of a PEM CSR of the device's own key.

  id,type,tags,csr
  thermo-0001,thermostat,hall;floor-1,
  thermo-0002,thermostat,hall,csr/thermo-0002.csr

Every row is checked before anything is made; a bad row is named by its line. Flash each device
with its own NVS partition (in its bundle folder):

  ${NVS_GENERATE_COMMAND}
  esptool.py write_flash 0x9000 nvs.bin`)
  .action(async (csvFile: string, o: { out?: string }) => {
    const bar = progressBar();
    const rows = await readImportFile(csvFile, (done, total) => bar('checking', done, total));
    await withClient(async (api) => {
      const result = await importDevices(api, rows, o.out ?? '.', (done, total) => bar('writing ', done, total));
      print(result, () => `${result.bundles.length} device(s) provisioned; bundles in ${result.outDir}/<id>/ (${result.bundles.filter((b) => b.ownKey).length} with the device's own key)\n` +
        `  flash one: cd <id> && ${NVS_GENERATE_COMMAND} && esptool.py write_flash 0x9000 nvs.bin`);
    });
  });

/** A one-line progress bar on stderr when it is a terminal; nothing otherwise (scripts, pipes). */
function progressBar(): (label: string, done: number, total: number) => void {
  if (!process.stderr.isTTY) return () => undefined;
  return (label, done, total) => {
    const pct = total ? Math.floor((done / total) * 100) : 100;
    process.stderr.write(`\r  ${label} ${'█'.repeat(Math.floor(pct / 4)).padEnd(25, '░')} ${String(done).padStart(String(total).length)}/${total}${done === total ? '\n' : ''}`);
  };
}

type RevokedAnswer = { revoked: { serial: string; fingerprint: string | null }[]; disconnected: boolean };
const revokedText = (who: string, r: RevokedAnswer) =>
  `${who}: ${r.revoked.length} certificate(s) revoked (${r.revoked.map((c) => c.serial).join(', ')})${r.disconnected ? '; its live connection was closed' : ''}`;

device.command('certificate').argument('<deviceId>', 'device id (its certificate CN)')
  .description('issue a new certificate for a device (rotation, or after revocation) and write a new bundle')
  .option('--out <dir>', 'bundle folder (default ./<deviceId>)')
  .action(async (deviceId: string, o: { out?: string }) => withClient(async (api) => {
    const res = await api.call<BundleAnswer>('POST', `/api/devices/${encodeURIComponent(deviceId)}/certificate`);
    const dir = path.resolve(o.out ?? deviceId);
    await writeDeviceBundle(dir, res.bundle);
    print({ ...res, bundle: { ...res.bundle, keyPem: undefined, dir } }, () =>
      `device ${deviceId}: new certificate; bundle in ${dir}\n  certificate fingerprint ${res.bundle.fingerprint}`);
  }));

device.command('revoke').argument('<deviceId>', 'device id (its certificate CN)')
  .description('revoke a device\'s certificates: the broker refuses them and drops its connection')
  .option('--serial <serial>', 'only this certificate (also one from your own CA); default: every one on record')
  .option('--reason <text>', 'why, kept in the audit log')
  .action(async (deviceId: string, o: { serial?: string; reason?: string }) => withClient(async (api) => {
    const r = await api.call<RevokedAnswer>('POST', `/api/devices/${encodeURIComponent(deviceId)}/revoke`, JSON.parse(JSON.stringify({ serial: o.serial, reason: o.reason })));
    print(r, () => revokedText(`device ${deviceId}`, r));
  }));

device.command('label').argument('<deviceId>', 'device id (its certificate CN)').description('set a device\'s tags and release channel (rollouts can target them)')
  .option('--tags <tags>', 'comma-separated tags (replaces the current ones)').option('--channel <channel>', 'release channel the device follows')
  .action(async (deviceId: string, o: { tags?: string; channel?: string }) => withClient(async (api) => {
    const body = { tags: o.tags === undefined ? undefined : o.tags.split(',').map((t) => t.trim()).filter(Boolean), channel: o.channel };
    const d = await api.call<Record<string, any>>('PUT', `/api/devices/${encodeURIComponent(deviceId)}`, JSON.parse(JSON.stringify(body)));
    print(d, () => `${d.id}: channel ${d.channel}, tags ${d.tags.join(', ') || '-'}`);
  }));

device.command('set-type').argument('<deviceId>', 'device id (its certificate CN)').argument('<type>', 'the firmware type to register it with').description('change the firmware type a device is registered with (admin; audited)')
  .action(async (deviceId: string, type: string) => withClient(async (api) => {
    const d = await api.call<Record<string, any>>('PUT', `/api/devices/${encodeURIComponent(deviceId)}/type`, { type });
    print(d, () => `${d.id}: type ${d.type}`);
  }));

const operator = program.command('operator').description('operator certificates for monitoring clients');
operator.command('add').argument('<name>', 'operator name: the certificate CN and MQTT client id')
  .description('issue a monitoring client certificate (CN = name, OU = role) and write it with an example mosquitto_sub command')
  .addOption(new Option('--role <role>', 'what the certificate may do').choices(['monitor']).makeOptionMandatory())
  .option('--out <dir>', 'bundle folder (default ./<name>)')
  .action(async (name: string, o: { role: 'monitor'; out?: string }) => withClient(async (api) => {
    const res = await api.call<{ bundle: { name: string; role: string; brokerUrl: string; topics: string[]; certPem: string; keyPem: string; caPem: string; fingerprint: string; notAfter: string } }>(
      'POST', '/api/operators', { name, role: o.role });
    const b = res.bundle;
    const dir = path.resolve(o.out ?? name);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFile(path.join(dir, 'operator.crt'), b.certPem);
    await writeFile(path.join(dir, 'operator.key'), b.keyPem, { mode: 0o600 });
    await chmod(path.join(dir, 'operator.key'), 0o600);
    await writeFile(path.join(dir, 'ca.crt'), b.caPem);
    const broker = new URL(b.brokerUrl);
    const host = broker.hostname.replace(/^\[(.*)\]$/, '$1'); // mosquitto_sub takes an IPv6 address without brackets
    await writeFile(path.join(dir, 'README.txt'), [
      `mqota operator certificate "${b.name}" (role ${b.role}), valid until ${b.notAfter}`,
      `SHA-256 fingerprint ${b.fingerprint}`, '',
      `The broker knows you by this certificate: the MQTT client id must be "${b.name}". You may subscribe to`,
      `${b.topics.join(', ')} (or narrower filters) and publish nothing. operator.key is the only copy of the key.`, '',
      'Watch every rollout\'s progress and every device event:', '',
      `  mosquitto_sub -h ${host} -p ${broker.port} --cafile ca.crt --cert operator.crt --key operator.key -i ${b.name} -q 1 -v -t 'rollouts/#' -t 'fleet/#'`, '',
    ].join('\n'));
    print({ ...res, bundle: { ...b, keyPem: undefined, dir } }, () =>
      `operator ${name} (${b.role}) certificate issued; bundle in ${dir}\n  certificate fingerprint ${b.fingerprint}\n  broker ${b.brokerUrl}`);
  }));

operator.command('revoke').argument('<name>', 'operator name')
  .description('revoke an operator certificate: the broker refuses it and drops its connection')
  .action(async (name: string) => withClient(async (api) => {
    const r = await api.call<RevokedAnswer>('DELETE', `/api/operators/${encodeURIComponent(name)}`);
    print(r, () => revokedText(`operator ${name}`, r));
  }));

// `device list` is the command; `devices list` stays (hidden) so scripts written for it keep working.
type DeviceFilters = { type?: string; version?: string; tag?: string; channel?: string; online?: boolean; wide?: boolean };
const deviceFilters = (cmd: Command) => cmd
  .option('--type <type>', 'only devices of this firmware type')
  .option('--version <semverRange>', 'only devices on this version or semver range, e.g. ">=1.2.0 <2"')
  .option('--tag <tag>', 'only devices carrying this tag')
  .option('--channel <channel>', 'only devices following this release channel')
  .option('--online', 'only online devices')
  .option('--wide', 'add the health columns of each device\'s latest announce: slot, RSSI, free/minimum heap, uptime, reset reason');
const listDevices = async (o: DeviceFilters) => withClient(async (api) => {
  const q = new URLSearchParams(Object.entries({ type: o.type, version: o.version, tag: o.tag, channel: o.channel, online: o.online ? 'true' : undefined }).filter(([, v]) => v) as [string, string][]);
  const rows = await api.call<Record<string, unknown>[]>('GET', `/api/devices?${q}`);
  const columns = ['id', 'type', 'version', 'chip', 'channel', 'tags', 'online', 'lastSeenAt'];
  print(rows, () => table(rows.map((d) => ({ ...d, tags: (d.tags as string[]).join(','), ...(o.wide ? healthColumns(d.health as DeviceHealthView | null) : {}) })),
    o.wide ? [...columns, ...HEALTH_COLUMNS] : columns));
});
deviceFilters(device.command('list').description('list devices, with filters')).action(listDevices);
deviceFilters(program.command('devices', { hidden: true }).description('the fleet (old name of `device`)').command('list').description('list devices (use `mqota device list`)')).action(listDevices);

type AttemptHistory = {
  updateId: string; rolloutId: string | null; targetVersion: string; fromVersion: string | null; state: string; error: string | null; reason: string | null;
  createdAt: string; finishedAt: string | null; history: { state: string; progress: number | null; error: string | null; reason: string | null; at: string }[];
};
device.command('history').argument('<deviceId>', 'device id (its certificate CN)').description('a device\'s update attempts (latest 50, newest first), each with its state history')
  .action(async (deviceId: string) => withClient(async (api) => {
    const d = await api.call<{ id: string; type: string | null; version: string | null; attempts: AttemptHistory[] }>('GET', `/api/devices/${encodeURIComponent(deviceId)}`);
    print(d.attempts, () => {
      if (!d.attempts.length) return `device ${d.id}: no update attempts`;
      return [`device ${d.id} (${d.type ?? 'type not yet known'}, now on ${d.version ?? 'unknown version'})`, ...d.attempts.map((a) => [
        '', `${a.updateId}  ${a.fromVersion ?? '?'} → ${a.targetVersion}  ${a.state}${a.rolloutId ? `  rollout ${a.rolloutId}` : ''}${a.error ? `  error: ${a.error}` : ''}`,
        table(a.history.map((h) => ({ ...h, progress: h.progress === null ? null : `${h.progress} %` })), ['at', 'state', 'progress', 'error', 'reason']).replace(/^/gm, '  '),
      ].join('\n'))].join('\n');
    });
  }));

const firmware = program.command('firmware').description('the firmware catalog');
firmware.command('upload').argument('<file>', 'the image file (an ESP-IDF application .bin)').description('upload an image (type/version default to the ESP-IDF image\'s own)')
  .option('--type <type>', 'firmware type (default: the image\'s project name)')
  .option('--version <semver>', 'version (default: the image\'s own version string)')
  .option('--channel <channel>', 'release channel (default: stable)')
  .option('--notes <text>', 'release notes shown with the firmware')
  .action(async (file: string, o: Record<string, string | undefined>) => withClient(async (api) => {
    const tty = process.stderr.isTTY;
    const fw = await api.uploadFirmware<Record<string, unknown>>(file, o, (sent, total) => {
      if (!tty) return;
      const pct = total ? Math.floor((sent / total) * 100) : 100;
      process.stderr.write(`\r  uploading ${'█'.repeat(pct / 4).padEnd(25, '░')} ${String(pct).padStart(3)} %${sent === total ? '\n' : ''}`);
    });
    const warnings = (fw.warnings as string[] | undefined) ?? [];
    for (const w of warnings) if (!program.opts().json) process.stderr.write(`warning: ${w}\n`);
    const signer = fw.signedBy as { name: string } | null;
    print(fw, () => `uploaded ${fw.type} ${fw.version} as ${fw.id}\n  sha256 ${fw.sha256}, ${fw.size} bytes\n  ${fw.url}${signer ? `\n  signed by ${signer.name}` : ''}`);
  }));
firmware.command('list').description('list firmware').action(async () => withClient(async (api) => {
  const rows = await api.call<Record<string, unknown>[]>('GET', '/api/firmware');
  print(rows, () => table(rows, ['id', 'type', 'version', 'channel', 'size', 'createdAt']));
}));
firmware.command('show').argument('<id>', 'firmware id (fw_…, see `mqota firmware list`)').description('one firmware: version, hash, download URL and what its ESP-IDF image header says')
  .action(async (id: string) => withClient(async (api) => {
    const fw = await api.call<Record<string, any>>('GET', `/api/firmware/${encodeURIComponent(id)}`);
    const img = fw.image as Record<string, unknown> | null;
    print(fw, () => [
      `${fw.id}: ${fw.type} ${fw.version} (${fw.channel}), ${fw.size} bytes, uploaded ${fw.createdAt}`,
      `  sha256 ${fw.sha256}`, `  ${fw.url}`,
      img ? `  image: ${img.projectName} ${img.version}, chip ${img.chip ?? '-'}, ESP-IDF ${img.idfVersion ?? '-'}, secure version ${img.secureVersion ?? '-'}` : '  image: not an ESP-IDF app image',
      fw.signedBy ? `  signed by ${fw.signedBy.name}${fw.signedBy.retired ? ' (retired)' : ''}` : '  signed by: no registered key',
      ...(fw.signatures as Record<string, any>[]).map((sig) =>
        `    block ${sig.index}: ${sig.algorithm}, key digest ${sig.keyDigest}, ${sig.keyName ?? 'unknown key'}, ${sig.verified ? 'verifies' : 'DOES NOT VERIFY'}`),
      ...(fw.notes ? [`  notes: ${fw.notes}`] : []),
    ].join('\n'));
  }));
firmware.command('delete').argument('<id>', 'firmware id (fw_…, see `mqota firmware list`)').description('delete firmware and its file (refused while a running rollout uses it)')
  .action(async (id: string) => withClient(async (api) => {
    await api.call('DELETE', `/api/firmware/${encodeURIComponent(id)}`);
    print({ id, deleted: true }, () => `firmware ${id} deleted`);
  }));

registerMakeTestImage(firmware, print);
registerSigning(program, firmware, { withClient, print, table });
registerSimulate(program, client);

const rollout = program.command('rollout').description('rollouts: targets, waves and controls; steer them while they run');
const list = (v: string) => v.split(',').map((x) => x.trim()).filter(Boolean);
const num = (v: string) => { const n = Number(v); if (!Number.isFinite(n)) throw new InvalidArgumentError(`not a number: ${v}`); return n; };
/** A number, or `none` to remove the limit (edit). */
const definedOnly = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
const numOrNone = (v: string) => (v === 'none' ? null : num(v));
const window = (v: string) => { const [start, end] = v.split('-'); return { start, end }; };
const ROLLOUT_ID = 'rollout id (ro_…, see `mqota rollout list`)';
rollout.command('create').description('start a rollout').requiredOption('--firmware <id>', 'firmware id (fw_…, see `mqota firmware list`)')
  .option('--name <name>', 'a name to find the rollout by')
  .option('--devices <ids>', 'comma-separated device ids (default: every device of the firmware\'s type)', list)
  .option('--tags <tags>', 'only devices carrying all these tags', list)
  .option('--version-range <range>', 'only devices now on this semver range')
  .option('--channel <channel>', 'only devices following this channel')
  .option('--waves <sizes>', 'cumulative wave sizes, e.g. 1,10,50,100', (v) => list(v).map(num))
  .addOption(new Option('--wave-unit <unit>', 'whether wave sizes are percentages of the targets or device counts').choices(['percent', 'count']))
  .option('--min-success <ratio>', 'share of a wave that must succeed before the next (0..1)', num)
  .option('--soak <seconds>', 'healthy time after succeeded before a device counts', num)
  .option('--max-per-minute <n>', 'rate limit of new commands', num)
  .option('--failure-count <n>', 'pause after this many failures', num)
  .option('--failure-percent <p>', 'pause when failures reach this % of finished attempts', num)
  .option('--failure-min-sample <n>', 'finished attempts needed before the percentage applies', num)
  .addOption(new Option('--on-failure <action>', 'what reaching the failure threshold does').choices(['pause', 'abort']))
  .option('--timeout <seconds>', 'an attempt without progress for this long times out', num)
  .option('--retries <n>', 'retries per device after failed or timed out', num)
  .option('--retry-backoff <seconds>', 'first retry delay (doubles each time)', num)
  .option('--wave-deadline <seconds>', 'how long a wave waits for offline devices before they count as skipped: offline (default 600)', num)
  .option('--start-at <iso>', 'start time (ISO 8601)')
  .option('--window <HH:MM-HH:MM>', 'daily maintenance window in UTC', window)
  .option('--allow-downgrade <reason>', 'allow an older version, with the reason')
  .action(async (o: Record<string, any>) => withClient(async (api) => {
    const failureThreshold = o.failureCount ?? o.failurePercent ?? o.failureMinSample
      ? { count: o.failureCount, percent: o.failurePercent, minSample: o.failureMinSample } : undefined;
    const body = {
      firmwareId: o.firmware, name: o.name, deviceIds: o.devices, tags: o.tags, versionRange: o.versionRange, channel: o.channel,
      waves: o.waves, waveUnit: o.waveUnit, minSuccessRatio: o.minSuccess, soakSeconds: o.soak, maxPerMinute: o.maxPerMinute,
      failureThreshold, onFailureThreshold: o.onFailure, attemptTimeoutSeconds: o.timeout, maxRetries: o.retries, retryBackoffSeconds: o.retryBackoff,
      waveDeadlineSeconds: o.waveDeadline, startAt: o.startAt ? new Date(o.startAt).toISOString() : undefined, maintenanceWindow: o.window,
      allowDowngrade: o.allowDowngrade ? true : undefined, downgradeReason: o.allowDowngrade,
    };
    const r = await api.call<Record<string, unknown>>('POST', '/api/rollouts', JSON.parse(JSON.stringify(body)));
    print(r, () => `rollout ${r.id} ${r.state}: ${r.targets} targets, ${r.commanded} commanded now`);
  }));
rollout.command('edit').description('change a scheduled, running or paused rollout\'s settings (validated as at creation, audited, in its history)')
  .argument('<id>', ROLLOUT_ID)
  .option('--waves <sizes>', 'cumulative wave sizes; waves that have started keep theirs, e.g. 10,40,100 after 10,100', (v) => list(v).map(num))
  .addOption(new Option('--wave-unit <unit>', 'whether wave sizes are percentages of the targets or device counts').choices(['percent', 'count']))
  .option('--min-success <ratio>', 'share of a wave that must succeed before the next (0..1)', num)
  .option('--soak <seconds>', 'healthy time after succeeded before a device counts', num)
  .option('--max-per-minute <n|none>', 'rate limit of new commands; none removes it', numOrNone)
  .option('--failure-count <n>', 'pause after this many failures (since the last resume)', num)
  .option('--failure-percent <p>', 'pause when failures reach this % of finished attempts', num)
  .option('--failure-min-sample <n>', 'finished attempts needed before the percentage applies', num)
  .option('--no-failure-threshold', 'remove the failure threshold (the --failure-* options change only the fields given)')
  .addOption(new Option('--on-failure <action>', 'what reaching the failure threshold does').choices(['pause', 'abort']))
  .option('--timeout <seconds|none>', 'an attempt without progress for this long times out; none removes it', numOrNone)
  .option('--retries <n>', 'retries per device after failed or timed out', num)
  .option('--retry-backoff <seconds>', 'first retry delay (doubles each time)', num)
  .option('--wave-deadline <seconds|none>', 'how long a wave waits for offline devices; none waits for ever', numOrNone)
  .option('--window <HH:MM-HH:MM|none>', 'daily maintenance window in UTC; none removes it', (v) => (v === 'none' ? null : window(v)))
  .addHelpText('after', '\nExample: mqota rollout edit ro_… --soak 60 --max-per-minute none')
  .action(async (id: string, o: Record<string, any>) => withClient(async (api) => {
    const thresholdGiven = o.failureCount ?? o.failurePercent ?? o.failureMinSample;
    // The fields given change; the threshold's others stay (--failure-percent keeps the minimum sample).
    const current = thresholdGiven !== undefined ? (await api.call<{ policy: { failureThreshold: object | null } }>('GET', `/api/rollouts/${encodeURIComponent(id)}`)).policy.failureThreshold : null;
    const failureThreshold = o.failureThreshold === false ? null
      : thresholdGiven !== undefined ? { ...current, ...definedOnly({ count: o.failureCount, percent: o.failurePercent, minSample: o.failureMinSample }) } : undefined;
    const body = {
      waves: o.waves, waveUnit: o.waveUnit, minSuccessRatio: o.minSuccess, soakSeconds: o.soak, maxPerMinute: o.maxPerMinute, failureThreshold,
      onFailureThreshold: o.onFailure, attemptTimeoutSeconds: o.timeout, maxRetries: o.retries, retryBackoffSeconds: o.retryBackoff,
      waveDeadlineSeconds: o.waveDeadline, maintenanceWindow: o.window,
    };
    // undefined: not given; null: remove the limit. JSON keeps null and drops undefined.
    const given = definedOnly(body);
    if (!Object.keys(given).length) throw new Error('nothing to change: give at least one setting (mqota rollout edit --help)');
    const r = await api.call<Record<string, any>>('PATCH', `/api/rollouts/${encodeURIComponent(id)}`, given);
    print(r, () => (r.changed.length ? `rollout ${r.id} (${r.state}) changed:\n${r.changed.map((c: string) => `  ${c}`).join('\n')}` : `rollout ${r.id}: nothing changed`));
  }));
rollout.command('list').description('list rollouts').addOption(new Option('--state <state>', 'only rollouts in this state').choices([...ROLLOUT_STATES])).action(async (o: { state?: string }) => withClient(async (api) => {
  const rows = await api.call<Record<string, any>[]>('GET', `/api/rollouts${o.state ? `?state=${o.state}` : ''}`);
  print(rows, () => table(rows.map((r) => ({ ...r, version: `${r.firmware.type} ${r.firmware.version}`, wave: `${r.currentWave + 1} of ${r.waveSizes.length}`, succeeded: r.counts.succeeded })),
    ['id', 'state', 'version', 'wave', 'targets', 'succeeded', 'createdAt']));
}));
rollout.command('show').description('a rollout: progress, what its wave waits for, waves, and every target device').argument('<id>', ROLLOUT_ID)
  .action(async (id: string) => withClient(async (api) => {
    const r = await api.call<Record<string, any>>('GET', `/api/rollouts/${encodeURIComponent(id)}`);
    print(r, () => `${renderRollout(r as never, false)}\n\n${table(r.waves.map(waveRow), ['wave', 'state', 'devices', 'succeeded', 'failed', 'skipped'])}`
      + `\n\n${table(r.devices.map(deviceRow), ['deviceId', 'wave', 'state', 'progress', 'error', 'updatedAt'])}`);
  }));
rollout.command('watch').description('live progress until the rollout completes (exit 0), pauses (2), aborts (3) or is cancelled (4); the reason goes to stderr')
  .argument('<id>', ROLLOUT_ID)
  .action(async (id: string) => withClient(async (api) => {
    const last = await watchRollout(api, id, process.stdout);
    if (program.opts().json) process.stdout.write(`${JSON.stringify(last, null, 2)}\n`);
    const code = watchExitCode(last.state);
    if (code) process.exitCode = code;
    if (code && code !== 130) {
      process.stderr.write(`mqota: rollout ${last.id} ${last.state}${last.reason ? `: ${last.reason}` : ''}\n`);
    }
  }));
const ROLLOUT_ACTIONS = {
  pause: 'stop sending new commands; updates in progress finish and are recorded',
  resume: 'run again, acknowledging the failures so far: the failure threshold counts from here',
  cancel: 'end the rollout; devices that have not started are told to drop the update',
  promote: 'start the next wave now, whatever the current one\'s standing (a paused rollout stays paused)',
  retry: 'a new attempt for every device whose latest failed, timed out or rolled back (an operator\'s decision)',
} as const;
for (const [action, description] of Object.entries(ROLLOUT_ACTIONS)) {
  rollout.command(action).description(description).argument('<id>', ROLLOUT_ID).action(async (id: string) => withClient(async (api) => {
    const r = await api.call<Record<string, any>>('POST', `/api/rollouts/${encodeURIComponent(id)}/${action}`);
    print(r, () => `rollout ${r.id}: ${r.state}, wave ${r.currentWave + 1} of ${r.waveSizes.length}${action === 'retry' ? `; ${r.retried} device(s) get a new attempt` : ''}`);
  }));
}

registerProvision(program, withClient, print, table);

const token = program.command('token').description('API tokens and their roles (admin)');
token.command('create').argument('<name>', 'a name for the token (who or what uses it)')
  .description('create a token; it is printed once (alone on stdout, so TOKEN=$(mqota token create ci) works)')
  .addOption(new Option('--role <role>', 'viewer: read-only; operator: firmware, rollouts, devices; admin: also tokens').choices([...ROLES]).default('viewer'))
  .action(async (name: string, o: { role: Role }) => withClient(async (api) => {
    const t = await api.call<{ name: string; role: string; token: string }>('POST', '/api/tokens', { name, role: o.role });
    if (!program.opts().json) process.stderr.write(`token ${t.name} (${t.role}) created; it is shown only this once\n`);
    print(t, () => t.token);
  }));
token.command('list').description('list tokens (names, roles, use; never secrets)').action(async () => withClient(async (api) => {
  const rows = await api.call<Record<string, unknown>[]>('GET', '/api/tokens');
  print(rows, () => table(rows, ['name', 'role', 'builtIn', 'createdAt', 'lastUsedAt']));
}));
token.command('revoke').argument('<name>', 'the token\'s name').description('revoke a token at once').action(async (name: string) => withClient(async (api) => {
  await api.call('DELETE', `/api/tokens/${encodeURIComponent(name)}`);
  print({ name, revoked: true }, () => `token ${name} revoked`);
}));

const webhook = program.command('webhook').description('send fleet events to HTTPS receivers, signed (docs/webhooks.md)');
webhook.command('add').argument('<url>', 'the receiver\'s HTTPS URL')
  .description('add a receiver; the signing secret is printed once')
  .addOption(new Option('--event <event>', `an event to send, repeat for more (default: all): ${WEBHOOK_EVENTS.join(', ')}`).argParser((v: string, prev: string[] = []) => {
    if (!(WEBHOOK_EVENTS as readonly string[]).includes(v)) throw new InvalidArgumentError(`Allowed choices are ${WEBHOOK_EVENTS.join(', ')}.`);
    return [...prev, v];
  }))
  .addOption(new Option('--format <format>', 'json: {id, event, at, data}; slack: {"text"} for a Slack-compatible incoming webhook').choices([...WEBHOOK_FORMATS]).default('json'))
  .option('--secret <secret>', 'HMAC-SHA256 signing secret (≥ 16 characters; generated when left out)')
  .action(async (url: string, o: { event?: string[]; format: string; secret?: string }) => withClient(async (api) => {
    const w = await api.call<Record<string, unknown>>('POST', '/api/webhooks', { url, events: o.event ?? [...WEBHOOK_EVENTS], format: o.format, secret: o.secret });
    print(w, () => `webhook ${w.id} added: ${(w.events as string[]).join(', ')} → ${w.url} (${w.format})\nsigning secret (shown only now): ${w.secret}`);
  }));
webhook.command('list').description('list webhooks (never their secrets)').action(async () => withClient(async (api) => {
  const rows = await api.call<Record<string, unknown>[]>('GET', '/api/webhooks');
  print(rows, () => table(rows.map((w) => ({ ...w, events: (w.events as string[]).join(',') })), ['id', 'url', 'format', 'events', 'createdBy', 'createdAt']));
}));
webhook.command('remove').argument('<id>', 'webhook id (see `mqota webhook list`)').description('remove a webhook with its queued deliveries and log').action(async (id: string) => withClient(async (api) => {
  await api.call('DELETE', `/api/webhooks/${encodeURIComponent(id)}`);
  print({ id, removed: true }, () => `webhook ${id} removed`);
}));
webhook.command('deliveries').argument('<id>', 'webhook id (see `mqota webhook list`)').description('a webhook\'s delivery log, newest first')
  .option('--limit <n>', 'how many (1-500)', (v: string) => Number.parseInt(v, 10), 50)
  .action(async (id: string, o: { limit: number }) => withClient(async (api) => {
    const rows = await api.call<Record<string, unknown>[]>('GET', `/api/webhooks/${encodeURIComponent(id)}/deliveries?limit=${o.limit}`);
    print(rows, () => table(rows, ['id', 'event', 'state', 'attempts', 'lastStatus', 'lastError', 'nextAttemptAt', 'createdAt']));
  }));

// Shell completion: `mqota completion bash|zsh|fish|powershell` prints the script, which asks the
// hidden `mqota complete -- …` for suggestions drawn from the commands and options above.
tab(program, { completionCommandName: 'completion' });
program.commands.find((c) => c.name() === 'completion')!
  .addHelpText('after', '\nbash: echo \'source <(mqota completion bash)\' >> ~/.bashrc\nzsh:  echo \'source <(mqota completion zsh)\' >> ~/.zshrc\nfish: mqota completion fish > ~/.config/fish/completions/mqota.fish');
