// Prometheus metrics of the fleet (GET /metrics), fed by the fleet events and by the HTTP hooks
// of src/http/plugins/app/metrics.ts. One registry per instance, so two servers in one process (tests)
// never share a series.
import { readdir, stat } from 'node:fs/promises';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { Broker } from '../../broker/index.js';
import type { FleetEvents } from '../events.js';
import type { Logger } from '../logger.js';
import { ATTEMPT_STATES, FAILURE_STATES, TERMINAL_STATES, type AttemptState } from '../rollouts/states.js';
import type { RolloutLifecycle, RolloutProgress } from '../rollouts/lifecycle.js';
import type { FleetRepository } from '../db/fleet-repository.js';
import { REJECTION_KINDS, REJECTION_REASONS } from '../protocol/rejections.js';
import { ActiveRollouts } from './active-rollouts.js';

export interface FleetMetricsDeps {
  events: FleetEvents;
  broker: Pick<Broker, 'connectedDevices' | 'handshakes' | 'awaitingConnect' | 'refusals'>;
  rollouts: Pick<RolloutLifecycle, 'progress'>;
  /** The group commit's standing: backlog, failures, held messages. */
  writes: Pick<FleetRepository, 'health' | 'commits' | 'commitFailures' | 'messagesHeld' | 'openAttempts' | 'unfinishedRolloutIds'>;
  logger: Logger;
}

/** prom-client's default metrics whose cost grows with the number of connections. */
const PER_HANDLE_METRICS = ['nodejs_active_handles', 'nodejs_active_handles_total', 'nodejs_active_resources', 'nodejs_active_resources_total', 'process_open_fds'];

export class FleetMetrics {
  readonly registry = new Registry();
  readonly imageBytesServed: Counter;
  readonly httpErrors: Counter<'class'>;
  /** Latest state of every attempt still in flight, by updateId. */
  private readonly inFlight = new Map<string, string>();
  /** Attempts that finished while load() was reading, so a stale row does not bring them back. */
  private readonly finishedDuringLoad = new Set<string>();
  private loading = false;
  private readonly active: ActiveRollouts;
  private readonly unsubscribe: (() => void)[];
  /** The per-rollout figures being read: the three rollout gauges of one scrape share one read. */
  private rolloutsReading: Promise<RolloutProgress[]> | null = null;

  constructor(private readonly deps: FleetMetricsDeps) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    // These walk every handle, or every descriptor, on the event loop at each scrape: one per
    // connected device, 11 % of the main thread while 5,000 devices connected under the bench's
    // scrapes (npm run bench -- --profile). The device gauges below say what they said.
    for (const name of PER_HANDLE_METRICS) this.registry.removeSingleMetric(name);
    if (process.platform === 'linux') {
      new Gauge({
        name: 'process_open_fds', help: 'Number of open file descriptors.', registers,
        async collect() { this.set(await openFileCount()); },
      });
    }
    this.active = new ActiveRollouts(deps.events);

    new Gauge({
      name: 'mqota_connected_devices', help: 'Devices connected to the MQTT broker', registers,
      collect() { this.set(deps.broker.connectedDevices()); },
    });
    new Gauge({
      name: 'mqota_tls_handshakes', help: 'TLS handshakes of the MQTT listener: in progress, queued, and the window the gate allows', labelNames: ['kind'] as const, registers,
      collect() {
        const h = deps.broker.handshakes();
        this.set({ kind: 'in_progress' }, h.inProgress);
        this.set({ kind: 'queued' }, h.queued);
        this.set({ kind: 'window' }, h.window);
      },
    });
    new Gauge({
      name: 'mqota_mqtt_awaiting_connect', help: 'TLS connections accepted that have not sent CONNECT yet; each is closed at MQTT_CONNECT_TIMEOUT_MS', registers,
      collect() { this.set(deps.broker.awaitingConnect()); },
    });
    new Counter({
      name: 'mqota_tls_handshakes_refused_total', help: 'Connections closed unhandled because too many TLS handshakes were waiting', registers,
      // The broker keeps the count; a scrape copies it.
      collect() { this.reset(); this.inc(deps.broker.handshakes().refused); },
    });
    new Counter({
      name: 'mqota_mqtt_refusals_total', help: 'Clients and packets the broker turned away, by reason (tls-handshake, no-identity, client-id, revoked, publish, will, subscribe, packet-too-large, connect-timeout, too-many-connections)',
      labelNames: ['reason'] as const, registers,
      collect() {
        this.reset();
        for (const [reason, n] of deps.broker.refusals()) this.inc({ reason }, n);
      },
    });
    new Gauge({
      name: 'mqota_db_write_backlog_rows', help: 'Rows waiting for a commit (device messages wait unacknowledged past the configured bound)', registers,
      collect() { this.set(deps.writes.health().backlogRows); },
    });
    new Gauge({
      name: 'mqota_db_writes_degraded', help: '1 while database writes fail or the write backlog is full, else 0', registers,
      collect() { this.set(deps.writes.health().ok ? 0 : 1); },
    });
    new Counter({
      name: 'mqota_db_commits_total', help: 'Batches committed by the group commit (rows per commit = rows written / this)', registers,
      collect() { this.reset(); this.inc(deps.writes.commits); },
    });
    new Counter({
      name: 'mqota_db_write_failures_total', help: 'Commits that failed and were retried (none is ever dropped)', registers,
      collect() { this.reset(); this.inc(deps.writes.commitFailures); },
    });
    new Counter({
      name: 'mqota_device_messages_held_total', help: 'Device messages that waited, unacknowledged, for the write backlog to land', registers,
      collect() { this.reset(); this.inc(deps.writes.messagesHeld); },
    });
    const messageRejections = new Counter({
      name: 'mqota_device_message_rejections_total', help: 'Device messages turned away, by kind and reason (malformed-announce, malformed-health, malformed-status, type-mismatch, unknown-update, foreign-update)',
      labelNames: ['kind', 'reason'] as const, registers,
    });
    const announces = new Counter({ name: 'mqota_announces_total', help: 'Valid announces received', registers });
    const commands = new Counter({ name: 'mqota_commands_sent_total', help: 'Commands published to devices, by action', labelNames: ['action'] as const, registers });
    const rejections = new Counter({ name: 'mqota_mqtt_rejections_total', help: 'Device messages refused (invalid announce or status), by kind', labelNames: ['kind'] as const, registers });
    const transitions = new Counter({ name: 'mqota_attempt_transitions_total', help: 'Update attempt state changes, by new state', labelNames: ['state'] as const, registers });
    const inFlight = this.inFlight;
    new Gauge({
      name: 'mqota_attempts_in_flight', help: 'Update attempts not finished yet, by state', labelNames: ['state'] as const, registers,
      collect() {
        this.reset();
        for (const s of ATTEMPT_STATES) if (!TERMINAL_STATES.has(s)) this.set({ state: s }, 0);
        for (const state of inFlight.values()) this.inc({ state });
      },
    });
    const rolloutGauge = (name: string, help: string, value: (p: RolloutProgress) => number | null) => {
      const metrics = this;
      new Gauge({
        name, help, labelNames: ['rollout_id'] as const, registers,
        async collect() {
          this.reset();
          for (const p of await metrics.rollouts()) {
            const v = value(p);
            if (v !== null) this.set({ rollout_id: p.rolloutId }, v);
          }
        },
      });
    };
    rolloutGauge('mqota_rollout_targets', 'Devices targeted by a rollout not finished yet', (p) => p.targets);
    rolloutGauge('mqota_rollout_succeeded', 'Attempts that succeeded, per rollout not finished yet', (p) => p.counts.succeeded ?? 0);
    rolloutGauge('mqota_rollout_failed', 'Attempts that failed, rolled back, were rejected or timed out, per rollout not finished yet',
      (p) => [...FAILURE_STATES].reduce((n, s) => n + ((p.counts as Record<string, number>)[s] ?? 0), 0));
    this.imageBytesServed = new Counter({ name: 'mqota_image_bytes_served_total', help: 'Firmware image bytes written to /firmware/ responses (Range responses included)', registers });
    this.httpErrors = new Counter({ name: 'mqota_http_errors_total', help: 'HTTP responses with an error status, by class (4xx, 5xx)', labelNames: ['class'] as const, registers });

    // Every label value known in advance starts at 0, so rate() sees the first increase.
    for (const action of ['update', 'none', 'cancel']) commands.inc({ action }, 0);
    for (const kind of ['announce', 'status', 'mqtt']) rejections.inc({ kind }, 0);
    for (const reason of REJECTION_REASONS) messageRejections.inc({ kind: REJECTION_KINDS[reason], reason }, 0);
    for (const state of ATTEMPT_STATES) transitions.inc({ state }, 0);
    for (const c of ['4xx', '5xx']) this.httpErrors.inc({ class: c }, 0);

    const { events } = deps;
    this.unsubscribe = [
      // Counters count this instance's work (Prometheus sums the instances); another's events are not counted again.
      events.on('announce', () => { if (!events.remote) announces.inc(); }),
      events.on('command', ({ action }) => { if (!events.remote) commands.inc({ action }); }),
      events.on('rejection', ({ kind, reason }) => {
        rejections.inc({ kind });
        if (reason && kind !== 'mqtt') messageRejections.inc({ kind, reason });
      }),
      events.on('attempt', ({ updateId, state, previousState }) => {
        if (state !== previousState && !events.remote) transitions.inc({ state });
        if (TERMINAL_STATES.has(state as AttemptState)) {
          this.inFlight.delete(updateId);
          if (this.loading) this.finishedDuringLoad.add(updateId);
        } else {
          this.inFlight.set(updateId, state);
        }
      }),
      () => this.active.close(),
    ];
  }

  /** Reads what was in flight and which rollouts are unfinished at start; events keep both current after. */
  async load(): Promise<void> {
    this.loading = true;
    try {
      const [attempts] = await Promise.all([
        this.deps.writes.openAttempts(ATTEMPT_STATES.filter((s) => !TERMINAL_STATES.has(s))),
        this.active.load(() => this.deps.writes.unfinishedRolloutIds()),
      ]);
      // An event seen meanwhile is newer than the row.
      for (const a of attempts) if (!this.inFlight.has(a.id) && !this.finishedDuringLoad.has(a.id)) this.inFlight.set(a.id, a.state);
    } finally {
      this.loading = false;
      this.finishedDuringLoad.clear();
    }
  }

  /** The text exposition format. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  close(): void {
    for (const stop of this.unsubscribe) stop();
    this.registry.clear();
  }

  private rollouts(): Promise<RolloutProgress[]> {
    this.rolloutsReading ??= Promise.all(this.active.ids().map((id) => this.deps.rollouts.progress(id).catch((err: Error) => {
      this.deps.logger.warn({ err, rolloutId: id }, 'rollout progress not read for metrics');
      return null;
    })))
      .then((all) => all.filter((p): p is RolloutProgress => p !== null))
      .finally(() => { this.rolloutsReading = null; });
    return this.rolloutsReading;
  }
}

/**
 * The process's open descriptors. Linux 6.2 and later give their number as the size of
 * /proc/self/fd, so a scrape need not list one name per connected device; older kernels say 0
 * there, and the list is read in libuv's thread pool instead (less the descriptor reading it).
 */
export async function openFileCount(): Promise<number> {
  const { size } = await stat('/proc/self/fd');
  return size > 0 ? size : (await readdir('/proc/self/fd')).length - 1;
}
