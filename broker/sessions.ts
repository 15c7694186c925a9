// Persistent sessions (clean=false): Aedes' in-memory persistence keeps subscriptions and queues
// QoS 1/2 messages for offline clients. One gap: on SUBSCRIBE, Aedes stores the whole packet's
// topic list once any one topic is authorized (lib/handlers/subscribe.js, storeSubscriptions),
// refused ones included. A stored '#' would then queue every QoS 1 message for that client,
// online or not, without bound (delivery is still stopped by authorizeForward). So the store
// itself applies the ACL.

import type { Subscription } from 'aedes';

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
