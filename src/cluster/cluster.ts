// Several mqota instances over one PostgreSQL: each keeps its in-memory views (devices, active
// rollouts, attempts in flight, catalog, tokens, revoked certificates) current from the others'
// committed changes (the change feed), and one of them, the leader, runs the rollout ticks.
//
// Device messages may reach any instance (a shared subscription on the external broker). Whichever
// handles one decides on its view and commits through the guarded, idempotent SQL of the
// repository, so a decision taken on a view a moment behind cannot undo what another instance
// committed: an attempt only moves forward and ends once, a rollout moves only from the state it
// was decided in, and an attempt's id is the same on every instance.
import type { FleetEvents, FleetEventName } from '../events.js';
import type { DeviceRegistry } from '../fleet/device-registry.js';
import type { Logger } from '../logger.js';
import type { RolloutTransition } from '../db/fleet-repository.js';
import type { AttemptTracker } from '../rollouts/attempts.js';
import type { RolloutLifecycle } from '../rollouts/lifecycle.js';
import type { LiveRollouts } from '../rollouts/live-rollouts.js';
import { ChangeFeedListener, type FeedChange, type FeedMessage } from './change-feed.js';
import { Leadership } from './leadership.js';
import type { SharedCacheName, SharedCaches } from './shared-caches.js';

/** Events that change nothing stored, forwarded so every instance's live views (SSE) show the whole fleet. */
const FORWARDED: readonly FleetEventName[] = ['announce', 'command'];
const FORWARD_EVERY_MS = 100;
const MAX_FORWARDED = 2_000;

export interface Cluster {
  readonly instanceId: string;
  isLeader(): boolean;
  close(): Promise<void>;
}

export interface ClusterDeps {
  instanceId: string;
  connectionString: string;
  registry: DeviceRegistry;
  rollouts: LiveRollouts;
  attempts: AttemptTracker;
  lifecycle: RolloutLifecycle;
  caches: SharedCaches;
  events: FleetEvents;
  /** Sends a change outside a commit (forwarded events, cache notices). */
  publish: (change: FeedChange) => Promise<void>;
  logger: Logger;
  /** How often a follower tries to become the leader. Default 1 s. */
  leaderRetryMs?: number;
}

/**
 * Starts listening to the other instances, then (once `ready` resolves: this instance has loaded
 * its state) applies what they committed, and competes for the rollout ticks.
 */
export async function startCluster(deps: ClusterDeps, ready: Promise<void>): Promise<Cluster> {
  const log = deps.logger.child({ component: 'cluster', instance: deps.instanceId });

  const apply = async (m: FeedMessage) => {
    deps.events.asRemote(() => {
      for (const row of m.devices ?? []) deps.registry.applyCommitted({ ...row, lastSeenAt: date(row.lastSeenAt) });
      for (const l of m.labels ?? []) deps.registry.applyLabels(l.id, l);
      for (const t of m.targets ?? []) {
        const r = deps.rollouts.get(t.r);
        if (r && !r.members.has(t.d)) r.members.set(t.d, { wave: t.w, latest: null, unhealthy: false });
      }
      for (const a of m.attempts ?? []) {
        deps.attempts.applyCommitted({ ...a, createdAt: date(a.createdAt)!, updatedAt: date(a.updatedAt)!, finishedAt: date(a.finishedAt) });
      }
      for (const t of m.transitions ?? []) deps.lifecycle.applyCommitted(reviveTransition(t));
      for (const e of m.events ?? []) deps.events.emit(e.name as FleetEventName, reviveDates(e.event) as never);
    });
    for (const id of m.reload ?? []) await deps.attempts.reload(id);
    for (const id of m.created ?? []) await deps.lifecycle.loadCreated(id);
    for (const id of m.refresh ?? []) await deps.lifecycle.refresh(id);
    for (const name of m.caches ?? []) await deps.caches.reload(name as SharedCacheName);
  };

  const listener = new ChangeFeedListener({
    connectionString: deps.connectionString, instanceId: deps.instanceId, logger: log, ready,
    onMessage: apply,
    onGap: async () => { await deps.caches.reloadAll(); await deps.lifecycle.reload(); },
  });
  await listener.start();

  // Forwarded events, batched: a fan-out to thousands of devices is a few notifications, not thousands.
  let outbox: Array<{ name: string; event: unknown }> = [];
  const unsubscribe = FORWARDED.map((name) => deps.events.on(name, (event) => {
    if (!deps.events.remote && outbox.length < MAX_FORWARDED) outbox.push({ name, event });
  }));
  const forwarder = setInterval(() => {
    if (!outbox.length) return;
    const events = outbox;
    outbox = [];
    deps.publish({ events }).catch((err) => log.debug({ err }, 'events not forwarded'));
  }, FORWARD_EVERY_MS);
  forwarder.unref();

  const leadership = new Leadership({
    connectionString: deps.connectionString, logger: log, retryMs: deps.leaderRetryMs,
    onChange: async (leading) => {
      if (!leading) { deps.lifecycle.stop(); return; }
      await ready;
      await deps.lifecycle.reload(); // what the previous leader did last may not have reached this instance yet
      if (leadership.isLeader) deps.lifecycle.start();
    },
  });
  void ready.then(() => leadership.start());

  return {
    instanceId: deps.instanceId,
    isLeader: () => leadership.isLeader,
    close: async () => {
      clearInterval(forwarder);
      for (const off of unsubscribe) off();
      await leadership.close();
      await listener.close();
    },
  };
}

function date(v: Date | string | null | undefined): Date | null {
  return v == null ? null : v instanceof Date ? v : new Date(v);
}

/** A transition as the feed carries it (JSON: its dates are strings). */
function reviveTransition(t: RolloutTransition): RolloutTransition {
  const waveStartedAt = t.changes?.waveStartedAt;
  return { ...t, at: date(t.at)!, changes: t.changes && { ...t.changes, waveStartedAt: waveStartedAt ? date(waveStartedAt)! : undefined } };
}

/** Events carry `at` (and nothing else) as a date. */
function reviveDates(event: unknown): unknown {
  const e = event as { at?: unknown };
  return typeof e?.at === 'string' ? { ...e, at: new Date(e.at) } : event;
}
