// Domain events of the fleet, published by the engine and the registry, consumed by monitoring
// (MQTT status topics, server-sent events, metrics). Synchronous and in-process: a consumer must
// not block, and an exception in one never reaches the publisher.
import { EventEmitter } from 'node:events';
import type { Logger } from './logger.js';

export interface AttemptEvent {
  updateId: string; rolloutId: string; deviceId: string; firmwareId: string; retry: number;
  state: string; previousState: string | null; progress: number | null; error: string | null; reason: string | null; at: Date;
}

export interface RolloutEvent {
  rolloutId: string; state: string; previousState: string | null; wave: number; reason: string | null; actor: string | null; at: Date;
}

export interface PresenceEvent { deviceId: string; online: boolean; at: Date }
export interface AnnounceEvent { deviceId: string; type: string; version: string; chip: string | null; at: Date }
export interface CommandEvent { deviceId: string; action: 'update' | 'none' | 'cancel'; updateId: string | null; reason: string | null; at: Date }
export interface RejectionEvent { deviceId: string | null; kind: 'announce' | 'status' | 'mqtt'; reason?: string; error: string; at: Date }

export interface FleetEventMap {
  attempt: AttemptEvent;
  rollout: RolloutEvent;
  presence: PresenceEvent;
  announce: AnnounceEvent;
  command: CommandEvent;
  rejection: RejectionEvent;
}

export type FleetEventName = keyof FleetEventMap;

export class FleetEvents {
  private readonly emitter = new EventEmitter({ captureRejections: false });
  private remoteDepth = 0;

  constructor(private readonly log: Logger) {
    this.emitter.setMaxListeners(0);
  }

  emit<K extends FleetEventName>(name: K, event: FleetEventMap[K]): void {
    for (const listener of this.emitter.listeners(name)) {
      try {
        (listener as (e: FleetEventMap[K]) => void)(event);
      } catch (err) {
        this.log.error({ err, event: name }, 'fleet event consumer failed');
      }
    }
  }

  /**
   * True while the events being emitted are another instance's, applied here from the change feed
   * (src/cluster/): shown (SSE, dashboard), but not acted on twice (webhooks, counters, topics on
   * a shared broker), since the instance that made them acts on them.
   */
  get remote(): boolean {
    return this.remoteDepth > 0;
  }

  /** Runs `apply` (synchronous) with `remote` true. */
  asRemote(apply: () => void): void {
    this.remoteDepth++;
    try { apply(); } finally { this.remoteDepth--; }
  }

  /** How many consumers listen for `name` (tests check that closed streams let go). */
  listenerCount(name: FleetEventName): number {
    return this.emitter.listenerCount(name);
  }

  on<K extends FleetEventName>(name: K, listener: (event: FleetEventMap[K]) => void): () => void {
    this.emitter.on(name, listener);
    return () => { this.emitter.off(name, listener); };
  }
}
