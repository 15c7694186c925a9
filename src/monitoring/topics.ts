// The orchestrator's MQTT topics, read-only for monitors (docs/protocol.md, "Monitoring"). The
// broker knows nothing of them beyond the filters it grants monitors (MONITOR_FILTERS).

export const monitorTopics = {
  /** server → monitors: a rollout's progress summary, retained */
  rolloutProgress: (rolloutId: string): string => `rollouts/${rolloutId}/progress`,
  /** server → monitors: every event about one device */
  fleetEvents: (deviceId: string): string => `fleet/${deviceId}/events`,
};
