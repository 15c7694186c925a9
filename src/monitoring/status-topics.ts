// The MQTT status topics for monitoring clients (docs/protocol.md, "Monitoring"): every device
// event on `fleet/{deviceId}/events`, and a retained progress summary per rollout on
// `rollouts/{id}/progress`, throttled. Both QoS 0: a monitor with a persistent session that goes
// away must not make the broker queue an unbounded backlog for it; the retained summary is the
// state a returning monitor needs.
import type { Broker } from '../../broker/index.js';
import { monitorTopics } from './topics.js';
import type { FleetEvents } from '../events.js';
import type { FleetRepository } from '../db/fleet-repository.js';
import type { Logger } from '../logger.js';
import type { RolloutLifecycle } from '../rollouts/lifecycle.js';
import { ActiveRollouts } from './active-rollouts.js';
import { isFinalRolloutState } from '../rollouts/states.js';
import { DEVICE_EVENT_TYPES, toMonitorEvent } from './monitor-events.js';
import { ProgressThrottle } from './progress-throttle.js';

export const PROGRESS_INTERVAL_MS = 500;

export interface StatusTopicsDeps {
  events: FleetEvents;
  rollouts: Pick<RolloutLifecycle, 'progress'>;
  broker: Pick<Broker, 'publish' | 'statusTopicReaders'>;
  repository: Pick<FleetRepository, 'unfinishedRolloutIds'>;
  logger: Logger;
  progressIntervalMs?: number;
  /** The broker is shared by several instances (external mode): another instance's events are its to publish. */
  sharedBroker?: boolean;
}

/** Starts publishing; resolves with the function that stops it (and waits for publications under way). */
export async function startStatusTopics(deps: StatusTopicsDeps): Promise<() => Promise<void>> {
  const { events, rollouts, broker } = deps;
  const log = deps.logger.child({ component: 'monitoring' });

  const throttle = new ProgressThrottle({
    intervalMs: deps.progressIntervalMs ?? PROGRESS_INTERVAL_MS,
    publish: async (rolloutId) => {
      const progress = await rollouts.progress(rolloutId);
      if (progress) await broker.publish(monitorTopics.rolloutProgress(rolloutId), JSON.stringify(progress), { qos: 0, retain: true });
    },
    onError: (err, rolloutId) => log.warn({ err, rolloutId }, 'rollout progress not published'),
  });

  const unsubscribe = [
    ...DEVICE_EVENT_TYPES.map((type) => events.on(type, (event) => {
      if (deps.sharedBroker && events.remote) return;
      // Thousands a second during a fan-out or a connect storm, usually with no monitor connected.
      if (broker.statusTopicReaders() === 0) return;
      const message = toMonitorEvent(type, event);
      if (!message.deviceId) return; // a refusal of no one in particular has no device topic
      broker.publish(monitorTopics.fleetEvents(message.deviceId), JSON.stringify(message), { qos: 0 })
        .catch((err: Error) => log.debug({ deviceId: message.deviceId, type, err: err.message }, 'fleet event not published'));
    })),
    // A progress report alone (same state) changes no count.
    events.on('attempt', ({ rolloutId, state, previousState }) => { if (state !== previousState) throttle.changed(rolloutId); }),
    events.on('rollout', ({ rolloutId, state }) => {
      if (isFinalRolloutState(state)) throttle.now(rolloutId, true);
      else throttle.changed(rolloutId);
    }),
  ];

  // Retained messages live in the broker's memory: after a restart, unfinished rollouts publish theirs again.
  const active = new ActiveRollouts(events);
  try {
    await active.load(() => deps.repository.unfinishedRolloutIds());
  } finally {
    active.close();
  }
  for (const id of active.ids()) throttle.changed(id);

  return async () => {
    for (const stop of unsubscribe) stop();
    await throttle.close();
  };
}
