// The identity the broker authenticated for each Aedes client. Reading an identity from a
// certificate is certs/identity.ts; this only attaches the result to the client it belongs to.

import type { Identity } from '../certs/identity.js';

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
