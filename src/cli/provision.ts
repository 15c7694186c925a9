// `mqota provision …`: provisioning by claim (docs/provisioning.md). A claim batch's certificate
// and bundle, the devices' requests, and the operator's approval of pending ones.
import path from 'node:path';
import { Command, Option } from 'commander';
import type { ApiClient } from './api-client.js';
import { NVS_GENERATE_COMMAND, writeClaimBundle, type ClaimBundleFiles } from './bundle.js';
import { PROVISION_REQUEST_STATES } from '../fleet/claims.js';

type WithClient = <T>(fn: (api: ApiClient) => Promise<T>) => Promise<T>;
type Print = (value: unknown, text: () => string) => void;
type Table = (rows: Record<string, unknown>[], columns: string[]) => string;

/** `30d`, `12h`, `90m` from now, or an ISO 8601 time. */
export function parseExpiry(value: string, now = new Date()): Date {
  const m = /^(\d+)\s*([dhm])$/.exec(value.trim());
  if (m) return new Date(now.getTime() + Number(m[1]) * { d: 86_400_000, h: 3_600_000, m: 60_000 }[m[2] as 'd' | 'h' | 'm']);
  const at = new Date(value);
  if (Number.isNaN(at.getTime())) throw new Error(`--expires ${JSON.stringify(value)}: expected a duration (30d, 12h, 90m) or an ISO 8601 time`);
  return at;
}

export function registerProvision(program: Command, withClient: WithClient, print: Print, table: Table): void {
  const provision = program.command('provision').description('provisioning by claim: claim certificates for batches of devices, their requests, approval');
  const claim = provision.command('claim').description('claim batches: one certificate shared by a batch, good for N devices until it expires');
  claim.command('create')
    .description('create a claim batch and write its bundle (claim.crt, claim.key, ca.crt, claim.json, nvs.csv) (admin)')
    .requiredOption('--count <n>', 'most devices that may claim a certificate with it', (v) => Number(v))
    .requiredOption('--expires <when>', 'when the claim ends: a duration (30d, 12h) or an ISO 8601 time')
    .option('--type <firmwareType>', 'firmware type the devices are registered with (default: each one\'s first announce)')
    .option('--approval', 'each device waits for `mqota provision approve <deviceId>`')
    .option('--out <dir>', 'bundle folder (default ./<claimId>)')
    .addHelpText('after', `
Flash the same NVS partition into every device of the batch (in the bundle folder):

  ${NVS_GENERATE_COMMAND}
  esptool.py write_flash 0x9000 nvs.bin

On first boot each device makes its own key, asks for its certificate with the claim, stores it
and reconnects as itself.`)
    .action(async (o: { count: number; expires: string; type?: string; approval?: boolean; out?: string }) => withClient(async (api) => {
      if (!Number.isInteger(o.count) || o.count < 1) throw new Error('--count must be a positive integer');
      const body = { maxDevices: o.count, expiresAt: parseExpiry(o.expires).toISOString(), type: o.type, requireApproval: o.approval ? true : undefined };
      const res = await api.call<{ claim: Record<string, unknown>; bundle: ClaimBundleFiles & { fingerprint: string } }>('POST', '/api/claims', JSON.parse(JSON.stringify(body)));
      const dir = path.resolve(o.out ?? res.bundle.claimId);
      await writeClaimBundle(dir, res.bundle);
      print({ ...res, bundle: { ...res.bundle, keyPem: undefined, dir } }, () =>
        `claim ${res.bundle.claimId}: up to ${o.count} device(s) until ${res.bundle.expiresAt}${o.approval ? ', each approved by an operator' : ''}; bundle in ${dir}\n  certificate fingerprint ${res.bundle.fingerprint}`);
    }));
  claim.command('list').description('list claim batches').action(async () => withClient(async (api) => {
    const rows = await api.call<Record<string, unknown>[]>('GET', '/api/claims');
    print(rows, () => table(rows.map((r) => ({ ...r, devices: `${r.issued}/${r.maxDevices}` })), ['id', 'type', 'devices', 'expiresAt', 'requireApproval', 'createdBy']));
  }));
  claim.command('revoke').argument('<claimId>', 'claim batch id (see `mqota provision claim list`)').description('revoke a claim certificate: no more devices can claim with it (admin)')
    .action(async (claimId: string) => withClient(async (api) => {
      const r = await api.call<{ revoked: { serial: string }[]; disconnected: boolean }>('POST', `/api/claims/${encodeURIComponent(claimId)}/revoke`);
      print(r, () => `claim ${claimId} revoked${r.disconnected ? '; its live connections were closed' : ''}`);
    }));

  provision.command('list').description('provisioning requests of devices (oldest first)')
    .addOption(new Option('--state <state>', 'only requests in this state').choices([...PROVISION_REQUEST_STATES]))
    .option('--claim <claimId>', 'only requests made with this claim')
    .action(async (o: { state?: string; claim?: string }) => withClient(async (api) => {
      const q = new URLSearchParams(Object.entries({ state: o.state, claimId: o.claim }).filter(([, v]) => v) as [string, string][]);
      const rows = await api.call<Record<string, unknown>[]>('GET', `/api/provision-requests?${q}`);
      print(rows, () => table(rows, ['deviceId', 'claimId', 'state', 'createdAt', 'decidedBy', 'reason']));
    }));
  provision.command('approve').argument('<deviceId>', 'the device id its request asks for (see `mqota provision list`)').description('approve a pending request: the device gets its certificate (audited)')
    .action(async (deviceId: string) => withClient(async (api) => {
      const r = await api.call<Record<string, unknown>>('POST', `/api/provision-requests/${encodeURIComponent(deviceId)}/approve`);
      print(r, () => `${deviceId}: certificate issued (serial ${r.certSerial}) with claim ${r.claimId}`);
    }));
  provision.command('refuse').argument('<deviceId>', 'the device id its request asks for (see `mqota provision list`)').description('refuse a pending request (audited)')
    .option('--reason <text>', 'told to the device and kept')
    .action(async (deviceId: string, o: { reason?: string }) => withClient(async (api) => {
      const r = await api.call<Record<string, unknown>>('POST', `/api/provision-requests/${encodeURIComponent(deviceId)}/refuse`, JSON.parse(JSON.stringify({ reason: o.reason })));
      print(r, () => `${deviceId}: refused`);
    }));
}
