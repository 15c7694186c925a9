// Who a client certificate names: CN = id, OU = role. The rules live here, next to the PKI that
// issues the certificates, and are read by everything that checks one: the broker at CONNECT,
// the HTTPS server for device image downloads, the certificate ledger, the API schemas. The
// certificate is the only credential; MQTT username and password are never looked at.

import { TLSSocket } from 'node:tls';

/**
 * A client id: a device's id, which is also its certificate CN, its MQTT client id and one topic
 * level (so no `/`, `+`, `#`), and the name of a monitor certificate. 1-64 characters, not
 * starting with `.`.
 */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$/;

/**
 * What a client certificate may do on the broker: a device updates itself, a monitor only watches,
 * the service is mqota itself on an external broker (it hears devices and sends commands), a claim
 * certificate (shared by a batch of new devices) only asks for a device certificate.
 */
export const CLIENT_ROLES = ['device', 'monitor', 'service', 'claim'] as const;
export type ClientRole = (typeof CLIENT_ROLES)[number];

export interface Identity {
  readonly id: string;
  readonly role: ClientRole;
}

/** An identity as a connection proved it: with its certificate's serial, which revocation names. */
export interface ConnectionIdentity extends Identity {
  /** Lower-case hex without leading zeros (normalizeSerial). */
  readonly serial: string;
}

export function isClientRole(value: unknown): value is ClientRole {
  return (CLIENT_ROLES as readonly unknown[]).includes(value);
}

/** Why `identity` cannot be written into a certificate, or null when it can. */
export function invalidIdentity(identity: { id: unknown; role: unknown }): string | null {
  if (typeof identity.id !== 'string' || !DEVICE_ID_PATTERN.test(identity.id)) {
    return `invalid client id ${JSON.stringify(identity.id)}: 1-64 characters from [A-Za-z0-9_.-], not starting with '.'`;
  }
  if (!isClientRole(identity.role)) {
    return `invalid client role ${JSON.stringify(identity.role)}: expected one of ${CLIENT_ROLES.join(', ')}`;
  }
  return null;
}

/** The subject mqota writes into a client certificate (@peculiar/x509 JSON name): the inverse of identityFromSubject. */
export function subjectOf(identity: Identity): [{ CN: [string] }, { OU: [string] }] {
  return [{ CN: [identity.id] }, { OU: [identity.role] }];
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
  if (!isClientRole(role)) return null;
  return { id, role };
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
