// Persistent sessions (clean=false): Aedes' in-memory persistence keeps subscriptions and queues
// QoS 1/2 messages for offline clients. One gap: on SUBSCRIBE, Aedes stores the whole packet's
// topic list once any one topic is authorized (lib/handlers/subscribe.js, storeSubscriptions),
// refused ones included. A stored '#' would then queue every QoS 1 message for that client,
// online or not, without bound (delivery is still stopped by authorizeForward). So the store
// itself applies the ACL.

import type { Subscription } from 'aedes';
import MemoryPersistence from 'aedes-persistence/asyncPersistence.js';

interface SubscriptionStore {
  addSubscriptions(client: { id: string }, subs: Subscription[], cb?: (err: Error | null) => void): unknown;
}

/** Wraps `persistence.addSubscriptions` so only subscriptions `allowed` for that client are ever stored. */
export function storeOnlyAuthorizedSubscriptions(
  persistence: SubscriptionStore,
  allowed: (client: { id: string }, sub: Subscription) => boolean,
): void {
  const add = persistence.addSubscriptions.bind(persistence);
  persistence.addSubscriptions = (client, subs, cb) =>
    add(
      client,
      subs.filter((sub) => allowed(client, sub)),
      cb,
    );
}

/**
 * Aedes' in-memory persistence, as Aedes 1.x calls it: through its promise API. The package's
 * default export wraps it in a callback layer for older Aedes versions, and that layer hands out
 * every stream twice wrapped (`Readable.from` of the inner `Readable.from`): the queued messages
 * read on every CONNECT, the retained ones on every SUBSCRIBE, an async iterator a device each
 * time (bench/README.md, "Eighth round"). Subscriptions are stored only where `allowed` says so.
 */
export function sessionStore(allowed: (client: { id: string }, sub: Subscription) => boolean): MemoryPersistence {
  const store = new MemoryPersistence();
  storeOnlyAuthorizedSubscriptions(store, allowed);
  return store;
}
