// The change feed between mqota instances sharing one PostgreSQL. Every commit of the group commit
// (and every new rollout) sends, in the same transaction, a NOTIFY with what it changed: device
// rows, rollout members, attempt rows that applied, rollout transitions that applied. PostgreSQL
// delivers notifications only on commit and in commit order, so another instance applies exactly
// the committed facts, in the order they became true. A listener that lost its connection may have
// missed some: it says so (`onGap`), and the instance reloads its state from the tables.
//
// NOTIFY payloads are limited to 8,000 bytes: a change is split into messages under that size; an
// item too large for one message on its own (a long error text) travels as its id, to be read back.
import pg from 'pg';
import type { AttemptRow, DeviceRow, RolloutTransition } from '../db/fleet-repository.js';
import type { Logger } from '../logger.js';

export const FEED_CHANNEL = 'mqota_changes';
const MAX_PAYLOAD_BYTES = 7_800;

/** What one commit changed, as the other instances apply it. */
export interface FeedChange {
  devices?: DeviceRow[];
  targets?: Array<{ r: string; d: string; w: number }>;
  attempts?: AttemptRow[];
  transitions?: RolloutTransition[];
  /** New rollouts, to be loaded from the tables. */
  created?: string[];
  /** Operator labels of devices. */
  labels?: Array<{ id: string; tags: string[]; channel: string }>;
  /** Attempts to read back from the tables (too large for a message). */
  reload?: string[];
  /** Rollouts to read back from the tables (a transition too large for a message: a retry or edit of many members). */
  refresh?: string[];
  /** In-memory tables another instance changed (src/cluster/shared-caches.ts). */
  caches?: string[];
  /** Fleet events that change nothing stored (announces, commands), for the other instances' live views. */
  events?: Array<{ name: string; event: unknown }>;
}

export interface FeedMessage extends FeedChange {
  /** The instance that committed it. */
  from: string;
}

type ItemKey = Exclude<keyof FeedChange, 'reload' | 'refresh'>;
const ITEM_KEYS: readonly ItemKey[] = ['devices', 'targets', 'attempts', 'transitions', 'created', 'labels', 'caches', 'events'];

/** Turns a change into NOTIFY payloads; the repository sends them inside its commit. */
export class ChangeFeedWriter {
  readonly channel = FEED_CHANNEL;

  constructor(readonly instanceId: string) {}

  encode(change: FeedChange): string[] {
    const out: string[] = [];
    const head = `{"from":${JSON.stringify(this.instanceId)}`;
    let parts = new Map<string, string[]>();
    let size = head.length + 1;
    const flush = () => {
      if (!parts.size) return;
      out.push(`${head}${[...parts].map(([k, items]) => `,"${k}":[${items.join(',')}]`).join('')}}`);
      parts = new Map();
      size = head.length + 1;
    };
    const add = (key: string, json: string) => {
      const bytes = Buffer.byteLength(json);
      if (size + bytes + key.length + 6 > MAX_PAYLOAD_BYTES) flush();
      const list = parts.get(key);
      if (list) { list.push(json); size += bytes + 1; } else { parts.set(key, [json]); size += bytes + key.length + 6; }
    };
    for (const key of ITEM_KEYS) {
      for (const item of change[key] ?? []) {
        const json = JSON.stringify(item);
        if (Buffer.byteLength(json) + head.length + key.length + 8 <= MAX_PAYLOAD_BYTES) add(key, json);
        else if (key === 'attempts') add('reload', JSON.stringify((item as AttemptRow).id));
        else if (key === 'transitions') add('refresh', JSON.stringify((item as RolloutTransition).rolloutId));
        // Other items are small by construction (ids, labels, device rows); an oversized event is only a live view: dropped.
      }
    }
    for (const id of change.reload ?? []) add('reload', JSON.stringify(id));
    flush();
    return out;
  }
}

/** Receives the other instances' changes on a connection of its own, reconnecting with back-off. */
export class ChangeFeedListener {
  private client: pg.Client | null = null;
  private closed = false;
  private retryMs = 500;
  private timer: NodeJS.Timeout | null = null;
  /** Messages are applied one after another, in the order they arrived. */
  private chain: Promise<void>;
  private everConnected = false;

  constructor(private readonly opts: {
    connectionString: string;
    instanceId: string;
    logger: Logger;
    /** Messages wait for this (the instance has loaded its state): none is missed, none applied too early. */
    ready?: Promise<void>;
    onMessage: (message: FeedMessage) => Promise<void> | void;
    /** The connection was lost and re-established: changes may have been missed. */
    onGap: () => Promise<void> | void;
  }) {
    this.chain = opts.ready ?? Promise.resolve();
  }

  /** Resolves once listening (the first time). */
  async start(): Promise<void> {
    await this.connect();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => undefined);
    await this.chain;
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.opts.connectionString, keepAlive: true, connectionTimeoutMillis: 5_000 });
    client.on('notification', (n) => {
      if (n.channel !== FEED_CHANNEL || !n.payload) return;
      let message: FeedMessage;
      try {
        message = JSON.parse(n.payload) as FeedMessage;
      } catch (err) {
        this.opts.logger.warn({ err }, 'unreadable change-feed message');
        return;
      }
      if (message.from === this.opts.instanceId) return;
      this.enqueue(() => this.opts.onMessage(message));
    });
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client, null));
    await client.connect();
    await client.query(`LISTEN ${FEED_CHANNEL}`);
    if (this.closed) { await client.end(); return; }
    this.client = client;
    this.retryMs = 500;
    if (this.everConnected) {
      this.opts.logger.info('change feed listening again; reloading state');
      this.enqueue(() => this.opts.onGap());
    }
    this.everConnected = true;
  }

  private enqueue(work: () => Promise<void> | void): void {
    this.chain = this.chain.then(work).catch((err) => this.opts.logger.error({ err }, 'change-feed message not applied'));
  }

  private lost(client: pg.Client, err: Error | null): void {
    if (this.client !== client || this.closed) return;
    this.client = null;
    this.opts.logger.warn({ err: err ?? undefined }, 'change feed connection lost; reconnecting');
    client.end().catch(() => undefined);
    this.schedule();
  }

  private schedule(): void {
    if (this.closed || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.connect().catch((err) => {
        this.opts.logger.debug({ err }, 'change feed not connected yet');
        this.retryMs = Math.min(this.retryMs * 2, 5_000);
        this.schedule();
      });
    }, this.retryMs);
    this.timer.unref();
  }
}
