// The scheduled, running and paused rollouts, in memory, by id and by firmware type: what the
// announce path asks on every message, without a query.
import type { ActiveRollout } from './active-rollout.js';

export class LiveRollouts {
  private readonly byId = new Map<string, ActiveRollout>();

  get(id: string): ActiveRollout | undefined {
    return this.byId.get(id);
  }

  add(rollout: ActiveRollout): void {
    this.byId.set(rollout.id, rollout);
  }

  remove(id: string): void {
    this.byId.delete(id);
  }

  all(): ActiveRollout[] {
    return [...this.byId.values()];
  }

  get size(): number {
    return this.byId.size;
  }

  /** The active rollouts of a firmware type (usually one or none). */
  ofType(type: string): ActiveRollout[] {
    const out: ActiveRollout[] = [];
    for (const r of this.byId.values()) if (r.firmware.type === type) out.push(r);
    return out;
  }
}
