// Who a client is, from its TLS client certificate: CN = id, OU = role. The certificate is the
// only credential; username and password are never looked at.

import { TLSSocket } from 'node:tls';
import { DEVICE_ID_PATTERN } from './topics.js';

export type Role = 'device' | 'monitor';

export interface Identity {
  readonly id: string;
  readonly role: Role;
}

const ROLES: readonly Role[] = ['device', 'monitor'];

/**
 * Reads a certificate subject as Node presents it (`getPeerCertificate().subject`): a
 * multi-valued attribute comes as an array, which we refuse rather than guess which value counts.
 */
export function identityFromSubject(subject: Record<string, unknown> | undefined | null): Identity | null {
  if (!subject) return null;
  const id = subject.CN;
  const role = subject.OU;
  if (typeof id !== 'string' || !DEVICE_ID_PATTERN.test(id)) return null;
  if (typeof role !== 'string' || !ROLES.includes(role as Role)) return null;
  return { id, role: role as Role };
}

/**
 * The identity of a TLS connection whose client certificate the handshake verified, or null
 * (plain TCP, no certificate, unusable subject). Only the two strings are kept: the peer
 * certificate object Node builds here is dropped at once, which matters with thousands of devices.
 */
export function identityFromConnection(conn: unknown): Identity | null {
  if (!(conn instanceof TLSSocket) || !conn.authorized) return null;
  const cert = conn.getPeerCertificate(false);
  return identityFromSubject(cert?.subject as unknown as Record<string, unknown> | undefined);
}

const byClient = new WeakMap<object, Identity>();

/** Remembers the identity on the Aedes client (weakly: it goes with the client). */
export function setIdentity(client: object, identity: Identity): void {
  byClient.set(client, identity);
}

/** The identity stored at CONNECT, or undefined for a client that was never authenticated. */
export function identityOf(client: object | null | undefined): Identity | undefined {
  return client ? byClient.get(client) : undefined;
}
