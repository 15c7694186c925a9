// The configuration of an external broker, written from mqota's own vocabulary: the ACL table of
// broker/acl.ts (so the broker enforces exactly what the embedded broker does), mqota's server
// certificate and device CA, and a CRL of the revoked client certificates. `mqota broker config`
// writes it once; a service given MQOTA_BROKER_CONFIG_DIR rewrites it on every certificate issued
// or revoked (the ACL names monitors and services, the CRL lists revocations).
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { ACL_RULES, CLAIMANT, OWN_ID } from '../../broker/acl.js';
import { SERVICE_SHARE_GROUP } from '../../broker/topics.js';
import { CLIENT_ROLES, type ClientRole } from '../../certs/identity.js';
import { atomicWrite, issueDeviceCrl, type PkiPaths } from '../../certs/pki.js';

export const BROKER_KINDS = ['mosquitto', 'emqx'] as const;
export type BrokerKind = (typeof BROKER_KINDS)[number];

/** What `mqota broker config` was asked for; kept in the folder so the service can rewrite it the same way. */
export interface BrokerConfigRequest {
  kind: BrokerKind;
  /** The TLS listener's port. */
  port: number;
  /** The folder's path as the broker sees it (a container mount), default the folder itself. */
  brokerDir: string;
}

/** Who holds certificates of the roles the ACL names one by one, and which serials are revoked. */
export interface CertificateState {
  revokedSerials: readonly string[];
  /** CNs per role holding a certificate not revoked; devices are covered by patterns, not names. */
  holders: Readonly<Record<Exclude<ClientRole, 'device'>, readonly string[]>>;
}

export const REQUEST_FILE = 'mqota-broker.json';

const HEADER = (kind: string) => `Written by \`mqota broker config ${kind}\` from mqota's ACL (broker/acl.ts); mqota rewrites it, do not edit.`;

/**
 * A rule's filter for an external broker: OWN_ID as `own`, and CLAIMANT as `+`, since the broker
 * makes the client id the certificate CN and so never sees the device id a claim connection asks
 * for (docs/provisioning.md, "External broker").
 */
function externalFilter(filter: string, own: string): string {
  return filter.split('/').map((l) => (l === OWN_ID ? own : l === CLAIMANT ? '+' : l)).join('/');
}

/** The Mosquitto 2 ACL file: device rules as patterns of the certificate CN (%u), monitors, services and claims by name. */
export function mosquittoAcl(state: CertificateState): string {
  const level = externalFilter;
  const lines = [`# ${HEADER('mosquitto')}`, '#', '# Every client: the device rules, with %u = its certificate CN (use_identity_as_username).'];
  const device = ACL_RULES.device;
  for (const f of device.publish) lines.push(`pattern write ${level(f, '%u')}`);
  for (const f of device.subscribe) lines.push(`pattern read ${level(f, '%u')}`);
  for (const role of CLIENT_ROLES) {
    if (role === 'device') continue;
    for (const name of state.holders[role]) {
      lines.push('', `# ${role} ${name}`, `user ${name}`);
      for (const f of ACL_RULES[role].publish) lines.push(`topic write ${level(f, name)}`);
      for (const f of ACL_RULES[role].subscribe) lines.push(`topic read ${level(f, name)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

export function mosquittoConf(req: BrokerConfigRequest): string {
  const at = (file: string) => path.posix.join(req.brokerDir, file);
  return `# ${HEADER('mosquitto')}
# Mosquitto 2.0. Devices, monitors and mqota itself connect here with client certificates from
# mqota's device CA; the certificate CN is the username and the client id, and the ACL file says
# what each may do (by CN: Mosquitto does not see the certificate's OU, the role). mqota rewrites
# the ACL and the CRL; SIGHUP makes Mosquitto read them again (docs/scaling.md).

per_listener_settings false
allow_anonymous false
acl_file ${at('acl')}
# Devices' sessions and queued commands survive a broker restart.
persistence true
# The embedded broker's limits: 64 KiB packets, QoS 1 at most.
max_packet_size 65536
# No queued message is dropped: mqota's session queues every device report while mqota restarts
# (Mosquitto's default drops past 1,000, after it has acknowledged them to the device). A device's
# own queue holds only its commands. Cap memory with memory_limit if you must (docs/scaling.md).
max_queued_messages 0
max_queued_bytes 0
# mqota acknowledges a report once its batch is committed: a wide window keeps batches full.
max_inflight_messages 1000

listener ${req.port}
max_qos 1
cafile ${at('device-ca.crt')}
certfile ${at('server.crt')}
keyfile ${at('server.key')}
crlfile ${at('crl.pem')}
tls_version tlsv1.2
require_certificate true
use_identity_as_username true
# The client id is the certificate CN too, so no client can take over another's session.
use_username_as_clientid true
`;
}

/** EMQX 5 file authorizer rules (Erlang terms), the same table with ${clientid} = the certificate CN. */
export function emqxAcl(state: CertificateState): string {
  const topicsOf = (filters: readonly string[], own: string) => filters.map((f) => JSON.stringify(externalFilter(f, own))).join(', ');
  const lines = [`%% ${HEADER('emqx')}`, '%% Every client: the device rules, with ${clientid} = its certificate CN (peer_cert_as_clientid = cn).'];
  const device = ACL_RULES.device;
  lines.push(`{allow, all, publish, [${topicsOf(device.publish, '${clientid}')}]}.`);
  lines.push(`{allow, all, subscribe, [${topicsOf(device.subscribe, '${clientid}')}]}.`);
  for (const role of CLIENT_ROLES) {
    if (role === 'device') continue;
    for (const name of state.holders[role]) {
      lines.push(`%% ${role} ${name}`);
      const who = `{clientid, ${JSON.stringify(name)}}`;
      if (ACL_RULES[role].publish.length) lines.push(`{allow, ${who}, publish, [${topicsOf(ACL_RULES[role].publish, name)}]}.`);
      if (ACL_RULES[role].subscribe.length) lines.push(`{allow, ${who}, subscribe, [${topicsOf(ACL_RULES[role].subscribe, name)}]}.`);
    }
  }
  lines.push('{deny, all}.');
  return `${lines.join('\n')}\n`;
}

export function emqxConf(req: BrokerConfigRequest): string {
  const at = (file: string) => JSON.stringify(path.posix.join(req.brokerDir, file));
  return `# ${HEADER('emqx')}
# EMQX 5: include it from emqx.conf (include "${path.posix.join(req.brokerDir, 'emqx.conf')}") or copy its blocks.

listeners.ssl.default {
  bind = "0.0.0.0:${req.port}"
  ssl_options {
    cacertfile = ${at('device-ca.crt')}
    certfile = ${at('server.crt')}
    keyfile = ${at('server.key')}
    verify = verify_peer
    fail_if_no_peer_cert = true
    versions = ["tlsv1.3", "tlsv1.2"]
  }
}
listeners.tcp.default.enable = false

mqtt {
  # The certificate CN is the client id and the username: no client can take over another's session.
  peer_cert_as_clientid = cn
  peer_cert_as_username = cn
  max_qos_allowed = 1
  max_packet_size = 64KB
  # Device reports queued for mqota's session while it restarts are kept (the default drops past
  # 1,000, oldest first); mqota acknowledges a report once its batch is committed, hence the window.
  max_mqueue_len = 10000000
  max_inflight = 1000
  # mqota's instances share device messages through $share/${SERVICE_SHARE_GROUP}/...
  shared_subscription = true
}

authentication = []
authorization {
  no_match = deny
  # A refused publish closes the connection, as the embedded broker does.
  deny_action = disconnect
  sources = [
    { type = file, enable = true, path = ${at('acl.conf')} }
  ]
}
`;
}

/** Writes (or rewrites) every file of the request into `dir`; each file replaced whole, by rename. */
export async function writeBrokerConfig(dir: string, req: BrokerConfigRequest, pki: PkiPaths, state: CertificateState): Promise<string[]> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const crl = await issueDeviceCrl(pki, state.revokedSerials);
  const files: [string, string, number][] = req.kind === 'mosquitto'
    ? [['mosquitto.conf', mosquittoConf(req), 0o644], ['acl', mosquittoAcl(state), 0o644]]
    : [['emqx.conf', emqxConf(req), 0o644], ['acl.conf', emqxAcl(state), 0o644]];
  files.push(['crl.pem', crl, 0o644], [REQUEST_FILE, `${JSON.stringify(req, null, 2)}\n`, 0o644]);
  // The broker's TLS identity is mqota's server certificate; copies, so the broker needs no access to mqota's certs folder.
  for (const [from, to, mode] of [[pki.deviceCaCert, 'device-ca.crt', 0o644], [pki.serverCert, 'server.crt', 0o644], [pki.serverKey, 'server.key', 0o600]] as const) {
    await atomicWrite(path.join(dir, to), await readFile(from, 'utf8'), mode);
  }
  for (const [name, text, mode] of files) await atomicWrite(path.join(dir, name), text, mode);
  return [...files.map(([n]) => n), 'device-ca.crt', 'server.crt', 'server.key'];
}

/** The request a folder was written for, or null when `mqota broker config` never wrote it. */
export async function readBrokerConfigRequest(dir: string): Promise<BrokerConfigRequest | null> {
  try {
    return JSON.parse(await readFile(path.join(dir, REQUEST_FILE), 'utf8')) as BrokerConfigRequest;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** Reads the current certificate state from the ledger. */
export async function certificateState(ledger: { revokedSerials(): string[]; holders(role: ClientRole): Promise<string[]> }): Promise<CertificateState> {
  const [monitor, service, claim] = await Promise.all([ledger.holders('monitor'), ledger.holders('service'), ledger.holders('claim')]);
  return { revokedSerials: ledger.revokedSerials(), holders: { monitor, service, claim } };
}

