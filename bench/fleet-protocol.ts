// The IPC contract between the benchmark (run.ts, through FleetProcess) and the simulated fleet
// (fleet.ts): one request, one response, matched by `seq`. Times are on the shared clock (clock.ts).

export interface DeviceCredentials {
  id: string;
  certPem: string;
  keyPem: string;
}

/** The file fleet.ts reads its identities from. */
export interface FleetCredentials {
  /** The server CA: devices verify the broker with it. */
  caPem: string;
  devices: DeviceCredentials[];
}

export interface Announce {
  type: string;
  version: string;
  chip?: string;
}

/** What every `update` command of the rollout must say. */
export interface ExpectedUpdate {
  type: string;
  version: string;
  url: string;
  sha256: string;
  size: number;
}

export type FleetRequest =
  | { op: 'connect'; brokerPort: number; ids: string[]; announce: Announce; expectReason: string; concurrency: number; timeoutMs: number; disconnectAfter: boolean }
  /** New devices connect and subscribe only (an anchor broker such as Mosquitto, which answers no announce). */
  | { op: 'connect-only'; brokerPort: number; ids: string[]; concurrency: number; timeoutMs: number }
  /** Waits until every online device has received at least one command. */
  | { op: 'await-commands'; timeoutMs: number }
  | { op: 'announce'; announce: Announce; expectReason: string; concurrency: number; timeoutMs: number }
  | { op: 'await-updates'; expected: ExpectedUpdate; timeoutMs: number }
  | { op: 'report-success'; version: string; timeoutMs: number }
  /** From now on every device answers an `update` command at once: accepted, then succeeded with `version`. */
  | { op: 'auto-complete'; version: string }
  /** What auto-complete did so far. */
  | { op: 'auto-complete-stats' }
  | { op: 'clock' }
  /** These devices disconnect and leave the fleet. */
  | { op: 'disconnect'; ids: string[] }
  | { op: 'close' };

export interface AnnounceResult {
  requested: number;
  /** Devices that (connected, subscribed,) announced and got the expected `none` answer. */
  answered: number;
  /** Failures by cause (TLS error, timeout, unexpected answer...). */
  failures: Record<string, number>;
  /** Answers by action/reason. */
  answers: Record<string, number>;
  /** Per answered device: announce PUBLISH sent → command received, ms. */
  announceToCommandMs: number[];
  startedAt: number;
  lastAnswerAt: number;
  /** The fleet process's own event-loop delay while connecting: how much of the latency is the client's. */
  fleetLoopDelayP99Ms: number;
  fleetCpuMs: number;
}

export interface ConnectResult extends AnnounceResult {
  /** Per connected device: connect() called → CONNACK, ms (TLS handshake included). */
  connectMs: number[];
}

export interface ConnectOnlyResult {
  requested: number;
  connected: number;
  failures: Record<string, number>;
  /** connect() called → SUBACK, per device, ms. */
  connectMs: number[];
  startedAt: number;
  lastConnectedAt: number;
  fleetLoopDelayP99Ms: number;
}

export interface CommandsResult { online: number; received: number; firstAt: number; lastAt: number }

export interface UpdatesResult {
  online: number;
  /** Devices that got an `update` command. */
  received: number;
  wellFormed: number;
  distinctUpdateIds: number;
  /** Devices that got more than one command since the rollout started. */
  duplicates: number;
  /** A few offending commands, for the report. */
  malformedExamples: string[];
  firstAt: number;
  lastAt: number;
}

export interface ReportResult {
  reported: number;
  failed: number;
  startedAt: number;
  doneAt: number;
}

/** Per device that got an `update` command with auto-complete on: when, and when its `succeeded` was acknowledged (PUBACK; 0 if not). */
export interface AutoCompleteRecord {
  id: string;
  commandAt: number;
  succeededAt: number;
}

export interface AutoCompleteStats {
  records: AutoCompleteRecord[];
  /** Reports that failed to publish. */
  failed: number;
}

export type FleetResult = ConnectResult | ConnectOnlyResult | CommandsResult | AnnounceResult | UpdatesResult | ReportResult | AutoCompleteStats | { now: number } | Record<string, never>;

export type FleetMessage = FleetRequest & { seq: number };

export type FleetResponse = { seq: number; ok: true; result: FleetResult } | { seq: number; ok: false; error: string };
