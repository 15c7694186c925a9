// Where webhooks may send (SSRF): an operator's URL is fetched by the server, from inside the
// network it runs in. By default only https:// and only public addresses: no loopback, private,
// link-local (cloud metadata at 169.254.169.254), unique-local, CGNAT, multicast or unspecified
// targets. MQOTA_WEBHOOK_ALLOW_HTTP and MQOTA_WEBHOOK_ALLOW_PRIVATE open that for receivers on a
// private network. The address is checked when the webhook is created (literal IPs, and what the
// name resolves to then) and again on every connection (the lookup that the socket uses), so a
// name re-pointed at an internal address later is refused too.
import dns from 'node:dns';
import net from 'node:net';

export interface TargetPolicy { allowHttp: boolean; allowPrivate: boolean }

export class TargetRefused extends Error {}

const blocked = new net.BlockList();
for (const [addr, prefix] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) blocked.addSubnet(addr, prefix, 'ipv4');
for (const [addr, prefix] of [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8]] as const) blocked.addSubnet(addr, prefix, 'ipv6');

/** Whether an IP address is internal (loopback, private, link-local, ...), IPv4-mapped IPv6 included. */
export function isInternalAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return blocked.check(mapped[1], 'ipv4');
  const family = net.isIP(address);
  if (family === 0) return true; // not an address: never connect to it
  return blocked.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/** Checks a URL's form and scheme; throws TargetRefused with the reason. */
export function checkUrl(raw: string, policy: TargetPolicy): URL {
  let url: URL;
  try { url = new URL(raw); } catch { throw new TargetRefused(`'${raw}' is not a URL`); }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && policy.allowHttp)) {
    throw new TargetRefused(url.protocol === 'http:'
      ? 'only https:// webhook URLs are allowed (set MQOTA_WEBHOOK_ALLOW_HTTP=true for a receiver on a private network)'
      : `webhook URLs must be https://, not ${url.protocol}`);
  }
  if (url.username || url.password) throw new TargetRefused('a webhook URL must not carry credentials; the signature authenticates mqota');
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (!policy.allowPrivate && (net.isIP(host) ? isInternalAddress(host) : /^localhost$|\.localhost$/i.test(host))) {
    throw new TargetRefused(`${host} is an internal address (set MQOTA_WEBHOOK_ALLOW_PRIVATE=true to allow receivers on private networks)`);
  }
  return url;
}

/** checkUrl, and every address the host name resolves to now. */
export async function checkTarget(raw: string, policy: TargetPolicy,
  resolve: (host: string) => Promise<dns.LookupAddress[]> = (host) => dns.promises.lookup(host, { all: true })): Promise<URL> {
  const url = checkUrl(raw, policy);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (policy.allowPrivate || net.isIP(host)) return url;
  let addresses: dns.LookupAddress[];
  try { addresses = await resolve(host); } catch (err) { throw new TargetRefused(`${host} does not resolve: ${(err as Error).message}`); }
  const internal = addresses.find((a) => isInternalAddress(a.address));
  if (internal) throw new TargetRefused(`${host} resolves to the internal address ${internal.address} (set MQOTA_WEBHOOK_ALLOW_PRIVATE=true to allow it)`);
  return url;
}

/** A `lookup` for the sockets of deliveries: what the connection really uses is checked too. */
export function guardedLookup(policy: TargetPolicy): net.LookupFunction {
  return (hostname, options, callback) => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const list = addresses as dns.LookupAddress[];
      const bad = policy.allowPrivate ? undefined : list.find((a) => isInternalAddress(a.address));
      if (bad) return callback(new TargetRefused(`${hostname} resolves to the internal address ${bad.address}`), '', 0);
      if ((options as dns.LookupOptions).all) return (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, list);
      callback(null, list[0].address, list[0].family);
    });
  };
}
