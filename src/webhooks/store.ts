// Every statement about webhooks and their deliveries. Deliveries are rows: a queued one survives
// a restart, and the rows are the webhook's delivery log. Times come from the dispatcher's clock.
import { randomBytes } from 'node:crypto';
import type { PrismaClient } from '../generated/prisma/client.js';
import type { WebhookEventName, WebhookFormat } from './events.js';

export interface WebhookRecord {
  id: string; url: string; events: string[]; format: string; secret: string; createdBy: string | null; createdAt: Date;
}

export interface DeliveryRecord {
  id: string; webhookId: string; event: string; body: string; state: 'pending' | 'delivered' | 'failed'; attempts: number;
  nextAttemptAt: Date | null; lastStatus: number | null; lastError: string | null; createdAt: Date; finishedAt: Date | null;
}

export const newId = (prefix: string) => `${prefix}_${randomBytes(9).toString('base64url')}`;

// Times go in as ISO text cast to timestamp (UTC, as Prisma stores them), never as a driver's
// Date, which PostgreSQL could read in the session's time zone.
// Due deliveries, each leased (nextAttemptAt moved to the lease's end) in the statement that picks
// it: two instances over one PostgreSQL never send the same try, and a try cut short by a crash is
// picked up again when its lease ends.
const CLAIM_DUE = `
UPDATE "WebhookDelivery" d SET "nextAttemptAt" = $2::timestamp
WHERE d.id IN (SELECT id FROM "WebhookDelivery" WHERE state = 'pending' AND "nextAttemptAt" <= $1::timestamp
  ORDER BY "nextAttemptAt" LIMIT $3 FOR UPDATE SKIP LOCKED)
RETURNING d.id, d."webhookId", d.event, d.body, d.attempts`;

export class WebhookStore {
  constructor(private readonly prisma: PrismaClient) {}

  create(w: { url: string; events: WebhookEventName[]; format: WebhookFormat; secret: string; createdBy: string | null }): Promise<WebhookRecord> {
    return this.prisma.webhook.create({ data: { id: newId('wh'), ...w } });
  }

  list(): Promise<WebhookRecord[]> {
    return this.prisma.webhook.findMany({ orderBy: { createdAt: 'asc' } });
  }

  get(id: string): Promise<WebhookRecord | null> {
    return this.prisma.webhook.findUnique({ where: { id } });
  }

  /** Deletes the webhook and its delivery log; false if there was none. */
  async remove(id: string): Promise<boolean> {
    return (await this.prisma.webhook.deleteMany({ where: { id } })).count === 1;
  }

  async enqueue(rows: Array<{ id: string; webhookId: string; event: string; body: string; at: Date }>): Promise<void> {
    if (!rows.length) return;
    await this.prisma.webhookDelivery.createMany({
      data: rows.map((r) => ({ id: r.id, webhookId: r.webhookId, event: r.event, body: r.body, state: 'pending', nextAttemptAt: r.at, createdAt: r.at })),
    });
  }

  async claimDue(now: Date, leaseUntil: Date, limit: number): Promise<Array<{ id: string; webhookId: string; event: string; body: string; attempts: number }>> {
    return this.prisma.$queryRawUnsafe(CLAIM_DUE, now.toISOString(), leaseUntil.toISOString(), limit);
  }

  /** When the next pending delivery is due, if any. */
  async nextDue(): Promise<Date | null> {
    const row = await this.prisma.webhookDelivery.findFirst({ where: { state: 'pending' }, orderBy: { nextAttemptAt: 'asc' }, select: { nextAttemptAt: true } });
    return row?.nextAttemptAt ?? null;
  }

  async settle(id: string, outcome: { state: 'delivered' | 'failed' | 'pending'; attempts: number; status: number | null; error: string | null; nextAttemptAt: Date | null; at: Date }): Promise<void> {
    await this.prisma.webhookDelivery.updateMany({
      where: { id, state: 'pending' },
      data: {
        state: outcome.state, attempts: outcome.attempts, lastStatus: outcome.status, lastError: outcome.error,
        nextAttemptAt: outcome.nextAttemptAt, finishedAt: outcome.state === 'pending' ? null : outcome.at,
      },
    });
  }

  /** A webhook's deliveries, newest first. */
  deliveries(webhookId: string, take: number): Promise<DeliveryRecord[]> {
    return this.prisma.webhookDelivery.findMany({ where: { webhookId }, orderBy: [{ createdAt: 'desc' }, { id: 'desc' }], take }) as Promise<DeliveryRecord[]>;
  }
}
