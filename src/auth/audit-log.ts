// Who did what, when, through the operator API. Entries are written off the request path (a
// failed write is logged, never answered to the client); a read first waits for the writes
// already started, so a client sees its own actions.
import type { PrismaClient } from '../generated/prisma/client.js';
import type { Logger } from '../logger.js';

export interface AuditRecord {
  at: Date;
  /** The token name. */
  actor: string;
  /** `<METHOD> <route pattern>`, e.g. `POST /api/rollouts/:id/cancel`. */
  action: string;
  target: string | null;
  statusCode: number;
  details: Record<string, unknown> | null;
}

export interface AuditQuery { actor?: string; action?: string; target?: string; since?: string; limit?: number }

export const AUDIT_LIMIT_DEFAULT = 100;
export const AUDIT_LIMIT_MAX = 1000;

export class AuditLog {
  private readonly inFlight = new Set<Promise<unknown>>();

  constructor(private readonly prisma: PrismaClient, private readonly log: Logger) {}

  /** Records an entry; resolves once it is written (a failure is logged, not thrown: the change it records has happened). */
  record(entry: AuditRecord): Promise<unknown> {
    const { details, ...rest } = entry;
    const write = this.prisma.auditEntry.create({ data: { ...rest, ...(details ? { details: details as object } : {}) } })
      .catch((err) => this.log.error({ err, action: entry.action, actor: entry.actor, statusCode: entry.statusCode }, 'audit entry not written'))
      .finally(() => this.inFlight.delete(write));
    this.inFlight.add(write);
    return write;
  }

  /** Newest first. `action` matches by prefix (`DELETE`, `POST /api/rollouts`), the others exactly. */
  async list(q: AuditQuery): Promise<Array<AuditRecord & { id: number }>> {
    await this.settled();
    const rows = await this.prisma.auditEntry.findMany({
      where: {
        ...(q.actor ? { actor: q.actor } : {}),
        ...(q.action ? { action: { startsWith: q.action } } : {}),
        ...(q.target ? { target: q.target } : {}),
        ...(q.since ? { at: { gte: new Date(q.since) } } : {}),
      },
      orderBy: [{ at: 'desc' }, { id: 'desc' }],
      take: Math.min(q.limit ?? AUDIT_LIMIT_DEFAULT, AUDIT_LIMIT_MAX),
    });
    return rows.map((r) => ({ ...r, id: Number(r.id), details: (r.details ?? null) as Record<string, unknown> | null }));
  }

  async settled(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
  }
}

const SECRET_FIELD = /token|secret|passw|key|pem|cert|credential|authori[sz]ation/i;
const MAX_STRING = 200;
const MAX_ITEMS = 20;

/**
 * A request body made safe to keep: fields that could hold a secret (tokens, keys, certificates,
 * passwords) are redacted by name, PEM blocks by content, long strings and lists cut short.
 */
export function sanitise(value: unknown, depth = 0): unknown {
  if (value === null || typeof value === 'boolean' || typeof value === 'number') return value;
  if (typeof value === 'string') {
    if (value.includes('-----BEGIN')) return '[redacted]';
    return value.length > MAX_STRING ? `${value.slice(0, MAX_STRING)}…` : value;
  }
  if (depth >= 4) return '[…]';
  if (Array.isArray(value)) {
    const items = value.slice(0, MAX_ITEMS).map((v) => sanitise(v, depth + 1));
    return value.length > MAX_ITEMS ? [...items, `… ${value.length - MAX_ITEMS} more`] : items;
  }
  if (typeof value === 'object' && [Object.prototype, null].includes(Object.getPrototypeOf(value))) {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, SECRET_FIELD.test(k) ? '[redacted]' : sanitise(v, depth + 1)]));
  }
  return `[${typeof value}]`;
}
