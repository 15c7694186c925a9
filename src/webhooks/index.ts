// Webhooks: fleet events out to operators' HTTPS receivers (docs/webhooks.md). Subscribes to the
// fleet events, keeps deliveries in the database and sends them with retries. src/mqota.ts starts
// it; the routes in src/http/routes/webhooks use the service it returns.
import type { FleetEvents } from '../events.js';
import type { PrismaClient } from '../generated/prisma/client.js';
import type { Logger } from '../logger.js';
import { DEFAULT_RETRY, systemClock, WebhookDispatcher, type Clock, type RetryPolicy } from './dispatcher.js';
import { fromAttempt, fromPresence, fromRollout, type WebhookEventName, type WebhookFormat } from './events.js';
import { newSecret } from './signature.js';
import { WebhookStore, type DeliveryRecord, type WebhookRecord } from './store.js';
import { checkTarget, type TargetPolicy } from './target-policy.js';

export { TargetRefused } from './target-policy.js';
export type { Clock, RetryPolicy } from './dispatcher.js';
export { WEBHOOK_EVENTS, WEBHOOK_FORMATS } from './events.js';

export interface WebhookService {
  /** Checks the URL (scheme, internal targets); throws TargetRefused. Returns the webhook with its secret. */
  create(w: { url: string; events: WebhookEventName[]; format?: WebhookFormat; secret?: string; createdBy: string | null }): Promise<WebhookRecord>;
  list(): Promise<WebhookRecord[]>;
  get(id: string): Promise<WebhookRecord | null>;
  remove(id: string): Promise<boolean>;
  deliveries(id: string, take: number): Promise<DeliveryRecord[]>;
  close(): Promise<void>;
}

export async function startWebhooks(deps: {
  prisma: PrismaClient;
  events: FleetEvents;
  /** The attempt a device is in the middle of, if any (for device.offline_during_update). */
  updateOf: (deviceId: string) => { id: string; rolloutId: string; state: string } | undefined;
  policy: TargetPolicy;
  logger: Logger;
  clock?: Clock;
  retry?: RetryPolicy;
}): Promise<WebhookService> {
  const store = new WebhookStore(deps.prisma);
  const logger = deps.logger.child({ component: 'webhooks' });
  const dispatcher = new WebhookDispatcher({
    store, clock: deps.clock ?? systemClock, policy: deps.policy, retry: deps.retry ?? DEFAULT_RETRY, logger, userAgent: 'mqota-webhooks/1',
  });
  await dispatcher.start();
  const unsubscribe = [
    // Another instance's events (the change feed) are delivered by that instance.
    deps.events.on('rollout', (e) => { if (!deps.events.remote) dispatcher.publish(fromRollout(e)); }),
    deps.events.on('attempt', (e) => { if (!deps.events.remote) dispatcher.publish(fromAttempt(e)); }),
    deps.events.on('presence', (e) => {
      if (e.online || deps.events.remote) return;
      const a = deps.updateOf(e.deviceId);
      dispatcher.publish(fromPresence(e, a && { updateId: a.id, rolloutId: a.rolloutId, state: a.state }));
    }),
  ];
  return {
    async create(w) {
      await checkTarget(w.url, deps.policy);
      const created = await store.create({ url: w.url, events: [...new Set(w.events)], format: w.format ?? 'json', secret: w.secret ?? newSecret(), createdBy: w.createdBy });
      await dispatcher.reload();
      return created;
    },
    list: () => store.list(),
    get: (id) => store.get(id),
    async remove(id) {
      const removed = await store.remove(id);
      await dispatcher.reload();
      return removed;
    },
    deliveries: (id, take) => store.deliveries(id, take),
    async close() {
      for (const off of unsubscribe) off();
      await dispatcher.close();
    },
  };
}
