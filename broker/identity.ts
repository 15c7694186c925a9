// Who a client is, from its TLS client certificate: CN = id, OU = role. The certificate is the
// only credential; username and password are never looked at.

import { TLSSocket } from 'node:tls';
import { DEVICE_ID_PATTERN } from './topics.js';

export type Role = 'device' | 'monitor';

export interface Identity {
  readonly id: string;
  readonly role: Role;
}

/** An identity as a connection proved it: with its certificate's serial, which revocation names. */
export interface ConnectionIdentity extends Identity {
  /** Lower-case hex without leading zeros (normalizeSerial). */
  readonly serial: string;
}

/**
 * A certificate serial number in one spelling: lower-case hex without leading zeros, so the
 * serial Node prints (`0E33…`), the one an operator pastes (`e33…`) and the one mqota issued
 * compare equal. Null for anything that is not 1-20 octets of hex (RFC 5280 §4.1.2.2).
 */
export function normalizeSerial(serial: string): string | null {
  const hex = serial.trim().replace(/:/g, '').toLowerCase();
  if (!/^[0-9a-f]{1,40}$/.test(hex)) return null;
  return hex.replace(/^0+(?=.)/, '');
}

const ROLES: readonly Role[] = ['device', 'monitor'];

/**
 * Reads a certificate subject as `X509Certificate.subject` prints it: one `KEY=value` per line,
 * values escaped per RFC 2253 and control characters as `\0A`, so no value can forge a line. An
 * attribute given twice, or a multi-valued RDN (`CN=a + OU=b` on one line), fails the id or role
 * check and is refused rather than guessed at.
 */
export function identityFromSubject(subject: string | undefined): Identity | null {
  if (!subject) return null;
  const attributes = new Map<string, string | null>();
  for (const line of subject.split('\n')) {
    const eq = line.indexOf('=');
    if (eq <= 0) return null;
    const key = line.slice(0, eq);
    attributes.set(key, attributes.has(key) ? null : line.slice(eq + 1));
  }
  const id = attributes.get('CN');
  const role = attributes.get('OU');
  if (typeof id !== 'string' || !DEVICE_ID_PATTERN.test(id)) return null;
  if (typeof role !== 'string' || !ROLES.includes(role as Role)) return null;
  return { id, role: role as Role };
}

/**
 * The identity of a TLS connection whose client certificate the handshake verified, or null
 * (plain TCP, no certificate, unusable subject). `getPeerX509Certificate` wraps the certificate
 * OpenSSL already holds; the legacy `getPeerCertificate` would build a whole object with three
 * fingerprints per connection, which showed in the connect-storm profile.
 */
export function identityFromConnection(conn: unknown): ConnectionIdentity | null {
  if (!(conn instanceof TLSSocket) || !conn.authorized) return null;
  const cert = conn.getPeerX509Certificate();
  const identity = identityFromSubject(cert?.subject);
  const serial = cert && normalizeSerial(cert.serialNumber);
  return identity && serial ? { ...identity, serial } : null;
}

// A ConnectionIdentity (with its serial) for every client the broker authenticated; tests may set a bare Identity.
const byClient = new WeakMap<object, Identity>();

/** Remembers the identity on the Aedes client (weakly: it goes with the client). */
export function setIdentity(client: object, identity: Identity): void {
  byClient.set(client, identity);
}

/** The identity stored at CONNECT, or undefined for a client that was never authenticated. */
export function identityOf(client: object | null | undefined): Identity | undefined {
  return client ? byClient.get(client) : undefined;
}
