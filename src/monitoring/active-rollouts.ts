// The ids of the rollouts not yet finished (running, paused, scheduled), from the database at
// start and from `rollout` events after: what the progress topics republish after a restart and
// what the per-rollout metrics cover.
import type { FleetEvents } from '../events.js';
import { isFinalRolloutState } from '../rollouts/states.js';

export class ActiveRollouts {
  private readonly active = new Set<string>();
  /** Finished while load() was reading, so a stale row does not bring them back. */
  private readonly finishedDuringLoad = new Set<string>();
  private loading = false;
  private readonly unsubscribe: () => void;

  constructor(events: FleetEvents) {
    this.unsubscribe = events.on('rollout', ({ rolloutId, state }) => {
      if (isFinalRolloutState(state)) {
        this.active.delete(rolloutId);
        if (this.loading) this.finishedDuringLoad.add(rolloutId);
      } else {
        this.active.add(rolloutId);
      }
    });
  }

  async load(unfinished: () => Promise<string[]>): Promise<void> {
    this.loading = true;
    try {
      for (const id of await unfinished()) if (!this.finishedDuringLoad.has(id)) this.active.add(id);
    } finally {
      this.loading = false;
      this.finishedDuringLoad.clear();
    }
  }

  ids(): string[] {
    return [...this.active];
  }

  close(): void {
    this.unsubscribe();
  }
}
