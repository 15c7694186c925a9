// `mqota` command line. Everything that touches the catalog goes through the HTTPS API, so the
// CLI works while the service runs (PGlite admits one process).
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Command, Option } from 'commander';
import { ApiClient, ApiError } from './api-client.js';
import { ADMIN_TOKEN_FILE } from '../auth/admin-token.js';
import { ROLES, type Role } from '../auth/roles.js';

const program = new Command('mqota')
  .description('Push-based OTA firmware updates for ESP32 fleets')
  .addOption(new Option('--server <url>', 'mqota HTTPS base URL').env('MQOTA_SERVER'))
  .addOption(new Option('--token <token>', 'operator API token (default: the data folder\'s admin-token)').env('MQOTA_ADMIN_TOKEN'))
  .addOption(new Option('--ca <file>', 'CA certificate that signed the server certificate').env('MQOTA_CA'))
  .option('--json', 'print JSON instead of text')
  .showHelpAfterError();

async function client(): Promise<ApiClient> {
  const o = program.opts<{ server?: string; token?: string; ca?: string }>();
  const dataDir = path.resolve(process.env.MQOTA_DATA_DIR ?? './data');
  const certsDir = path.resolve(process.env.MQOTA_CERTS_DIR ?? './certs');
  const token = o.token ?? (await readFile(path.join(dataDir, ADMIN_TOKEN_FILE), 'utf8').catch(() => '')).trim();
  if (!token) throw new Error(`no API token: pass --token, set MQOTA_ADMIN_TOKEN, or run where ${path.join(dataDir, ADMIN_TOKEN_FILE)} exists`);
  const caFile = o.ca ?? path.join(certsDir, 'ca.crt');
  const caPem = await readFile(caFile, 'utf8').catch(() => { throw new Error(`cannot read the CA certificate ${caFile}: pass --ca`); });
  const baseUrl = o.server ?? `https://localhost:${process.env.HTTPS_PORT ?? 8443}`;
  return new ApiClient({ baseUrl, token, caPem });
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

program.command('start').description('run the service (the same as npm start)').action(async () => {
  await import('../main.js');
});

const device = program.command('device').description('provision devices');
device.command('add <deviceId>')
  .description('issue a device certificate (CN = deviceId) and write a bundle ready to flash')
  .requiredOption('--type <firmwareType>', 'firmware type the device runs')
  .option('--out <dir>', 'bundle folder (default ./<deviceId>)')
  .action(async (deviceId: string, o: { type: string; out?: string }) => withClient(async (api) => {
    const res = await api.call<{ bundle: { deviceId: string; type: string; brokerUrl: string; certPem: string; keyPem: string; caPem: string; fingerprint: string } }>(
      'POST', '/api/devices', { id: deviceId, type: o.type });
    const dir = path.resolve(o.out ?? deviceId);
    await writeBundle(dir, res.bundle);
    print({ ...res, bundle: { ...res.bundle, keyPem: undefined, dir } }, () =>
      `device ${deviceId} (${o.type}) provisioned; bundle in ${dir}\n  certificate fingerprint ${res.bundle.fingerprint}\n  broker ${res.bundle.brokerUrl}`);
  }));

async function writeBundle(dir: string, b: { deviceId: string; type: string; brokerUrl: string; certPem: string; keyPem: string; caPem: string }): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(path.join(dir, 'device.crt'), b.certPem);
  await writeFile(path.join(dir, 'device.key'), b.keyPem, { mode: 0o600 });
  await chmod(path.join(dir, 'device.key'), 0o600);
  await writeFile(path.join(dir, 'ca.crt'), b.caPem);
  await writeFile(path.join(dir, 'device.json'), `${JSON.stringify({ deviceId: b.deviceId, type: b.type, brokerUrl: b.brokerUrl }, null, 2)}\n`);
  // For ESP-IDF's nvs_partition_gen.py (run it inside this folder): per-device secrets live in NVS, not in the firmware.
  await writeFile(path.join(dir, 'nvs.csv'), [
    'key,type,encoding,value', 'mqota,namespace,,', `device_id,data,string,${b.deviceId}`, `broker_uri,data,string,${b.brokerUrl}`,
    'client_cert,file,string,device.crt', 'client_key,file,string,device.key', 'ca_cert,file,string,ca.crt', '',
  ].join('\n'));
}

program.command('devices').description('list devices')
  .option('--type <type>').option('--version <semverRange>').option('--online', 'only online devices')
  .action(async (o: { type?: string; version?: string; online?: boolean }) => withClient(async (api) => {
    const q = new URLSearchParams(Object.entries({ type: o.type, version: o.version, online: o.online ? 'true' : undefined }).filter(([, v]) => v) as [string, string][]);
    const rows = await api.call<Record<string, unknown>[]>('GET', `/api/devices?${q}`);
    print(rows, () => table(rows, ['id', 'type', 'version', 'chip', 'online', 'lastSeenAt']));
  }));

const firmware = program.command('firmware').description('the firmware catalog');
firmware.command('upload <file>').description('upload an image (type/version default to the ESP-IDF image\'s own)')
  .option('--type <type>').option('--version <semver>').option('--channel <channel>').option('--notes <text>')
  .action(async (file: string, o: Record<string, string | undefined>) => withClient(async (api) => {
    const fw = await api.uploadFirmware<Record<string, unknown>>(file, o);
    print(fw, () => `uploaded ${fw.type} ${fw.version} as ${fw.id}\n  sha256 ${fw.sha256}, ${fw.size} bytes\n  ${fw.url}`);
  }));
firmware.command('list').description('list firmware').action(async () => withClient(async (api) => {
  const rows = await api.call<Record<string, unknown>[]>('GET', '/api/firmware');
  print(rows, () => table(rows, ['id', 'type', 'version', 'channel', 'size', 'createdAt']));
}));

const rollout = program.command('rollout').description('rollouts');
rollout.command('create').description('start a rollout').requiredOption('--firmware <id>')
  .option('--devices <ids>', 'comma-separated device ids (default: every device of the firmware\'s type)')
  .action(async (o: { firmware: string; devices?: string }) => withClient(async (api) => {
    const r = await api.call<Record<string, unknown>>('POST', '/api/rollouts', { firmwareId: o.firmware, ...(o.devices ? { deviceIds: o.devices.split(',').map((s) => s.trim()).filter(Boolean) } : {}) });
    print(r, () => `rollout ${r.id} ${r.state}; ${r.commanded} online devices commanded`);
  }));
rollout.command('show <id>').action(async (id: string) => withClient(async (api) => {
  const r = await api.call<{ id: string; state: string; counts: Record<string, number>; devices: Record<string, unknown>[] }>('GET', `/api/rollouts/${encodeURIComponent(id)}`);
  print(r, () => `rollout ${r.id}: ${r.state}\n${Object.entries(r.counts).filter(([, n]) => n).map(([s, n]) => `  ${s}: ${n}`).join('\n')}\n\n${table(r.devices, ['deviceId', 'state', 'progress', 'error', 'updatedAt'])}`);
}));
rollout.command('cancel <id>').action(async (id: string) => withClient(async (api) => {
  const r = await api.call<Record<string, unknown>>('POST', `/api/rollouts/${encodeURIComponent(id)}/cancel`);
  print(r, () => `rollout ${r.id}: ${r.state}`);
}));

const token = program.command('token').description('API tokens and their roles (admin)');
token.command('create <name>')
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
token.command('revoke <name>').description('revoke a token at once').action(async (name: string) => withClient(async (api) => {
  await api.call('DELETE', `/api/tokens/${encodeURIComponent(name)}`);
  print({ name, revoked: true }, () => `token ${name} revoked`);
}));

program.parseAsync().catch((err) => {
  const message = err instanceof ApiError ? `${err.message} (HTTP ${err.statusCode})` : (err as Error).message;
  process.stderr.write(`mqota: ${message}\n`);
  process.exit(1);
});
