// Simulated devices for fault-injection tests: real mqtt.js clients over mutual TLS, each with its
// own certificate, a persistent session (clean: false) and QoS 1 both ways, that go through an
// update the way docs/protocol.md says (accepted, downloading with progress, downloaded,
// rebooting, succeeded, then an announce of the new version) and remember every status report
// the broker acknowledged (PUBACK). They survive server restarts: each client object lives on and
// reconnects by itself, and mqtt.js resends from its session store every QoS 1 publish that was
// not acknowledged, as a device must.
//
// Cheap enough for CI: keys are parsed once per device (one TLS SecureContext reused for every
// reconnect), devices connect a few at a time, and the image is not downloaded (the tests are
// about the reports, not the transfer).
import { EventEmitter } from 'node:events';
import tls, { type SecureContext } from 'node:tls';
import { MqttClient, type IClientOptions } from 'mqtt';
import semver from 'semver';
import { deviceSecureContext } from '../../src/simulation/mqtt-device.js';
import { topics } from '../../src/topics.js';
import type { TestPki } from './pki.js';

/** A status report the broker acknowledged (its PUBACK arrived). */
export interface AcknowledgedReport {
  deviceId: string;
  updateId: string;
  state: string;
  progress?: number;
}

export interface FleetOptions {
  pki: TestPki;
  /** The broker's port (kept across server restarts). */
  port: number;
  ids: string[];
  type: string;
  version: string;
  /** Devices connecting at once while the fleet starts. */
  concurrency?: number;
  /** mqtt.js reconnect delay after the connection is lost, ms. */
  reconnectPeriodMs?: number;
}

const HOST = '127.0.0.1';
/** Generous: a loaded CI machine, and a broker that paces TLS handshakes. */
const START_TIMEOUT_MS = 60_000;
/** The progress a device reports with `downloading` (one report, so it is matched exactly). */
export const DOWNLOAD_PROGRESS = 50;

export class ReportingFleet {
  readonly devices: ReportingDevice[];
  /** Every status report whose PUBACK a device received, in the order the PUBACKs arrived. */
  readonly acknowledged: AcknowledgedReport[] = [];
  private readonly changes = new EventEmitter();

  private constructor(devices: (fleet: ReportingFleet) => ReportingDevice[]) {
    this.devices = devices(this);
    this.changes.setMaxListeners(0);
  }

  /** Issues certificates, connects every device (subscribe, announce) and waits for each announce's answer. */
  static async start(opts: FleetOptions): Promise<ReportingFleet> {
    const contexts = await mapLimit(opts.ids, 8, (id) => secureContext(opts.pki, id));
    const fleet = new ReportingFleet((f) => opts.ids.map((id, i) => new ReportingDevice(f, id, contexts[i], opts)));
    try {
      await mapLimit(fleet.devices, opts.concurrency ?? 16, (d) => d.start());
    } catch (err) {
      await fleet.close();
      throw err;
    }
    return fleet;
  }

  /** Resolves once at least `n` reports have been acknowledged. */
  async acknowledgedAtLeast(n: number, timeoutMs: number): Promise<void> {
    await this.until(() => this.acknowledged.length >= n, timeoutMs, () => `${n} acknowledged reports (have ${this.acknowledged.length})`);
  }

  /** Resolves once `done()` holds, re-checked on every PUBACK and command; rejects after timeoutMs. */
  until(done: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!done()) return;
        clearTimeout(timer);
        this.changes.off('change', check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.changes.off('change', check);
        reject(new Error(`timed out waiting for ${what()}`));
      }, timeoutMs);
      this.changes.on('change', check);
    });
  }

  /** Devices whose latest update is in progress (started, not finished). */
  inProgress(): number {
    return this.devices.filter((d) => d.current !== null).length;
  }

  recordAcknowledged(report: AcknowledgedReport): void {
    this.acknowledged.push(report);
    this.changes.emit('change');
  }

  changed(): void {
    this.changes.emit('change');
  }

  async close(): Promise<void> {
    await Promise.all(this.devices.map((d) => d.close()));
  }
}

export class ReportingDevice {
  readonly client: MqttClient;
  version: string;
  /** The updateId being worked on. */
  current: string | null = null;
  /** Finished updates and the final report each ended with (re-sent for a duplicate command). */
  private readonly finished = new Map<string, Record<string, unknown>>();
  private answered: (() => void) | null = null;

  constructor(private readonly fleet: ReportingFleet, readonly id: string, secureContext: SecureContext, private readonly opts: FleetOptions) {
    this.version = opts.version;
    const options: IClientOptions = {
      protocolVersion: 4, clientId: id, clean: false, keepalive: 60, connectTimeout: 30_000,
      // > 0: the client object lives on across server restarts and resends its unacknowledged
      // QoS 1 publishes from its store after reconnecting [MQTT-4.4.0-1].
      reconnectPeriod: opts.reconnectPeriodMs ?? 500,
      resubscribe: false, // done below, per the protocol: whenever the session is not present
      manualConnect: true,
    };
    this.client = new MqttClient(() => tls.connect({ host: HOST, port: opts.port, secureContext, rejectUnauthorized: true }), options);
    this.client.on('error', () => undefined); // reconnects on its own; a test waits for outcomes, not for errors
    this.client.on('connect', (connack) => { void this.onConnect(connack.sessionPresent); });
    this.client.on('message', (_topic, payload) => this.onCommand(payload));
  }

  /** How many different updates this device installed (a resent command is not installed again). */
  get updatesInstalled(): number {
    return [...this.finished.values()].filter((f) => f.state === 'succeeded').length;
  }

  /** Connects and resolves once the first announce was answered; rejects after timeoutMs. */
  start(timeoutMs = START_TIMEOUT_MS): Promise<void> {
    const answered = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.id}: no answer to its announce within ${timeoutMs / 1000} s`)), timeoutMs);
      this.answered = () => { clearTimeout(timer); resolve(); };
    });
    this.client.connect();
    return answered;
  }

  async close(): Promise<void> {
    await this.client.endAsync(true).catch(() => undefined);
  }

  private async onConnect(sessionPresent: boolean): Promise<void> {
    try {
      // [MQTT-3.2.2-2]: no session on the server (first connect, or a server that lost it): subscribe again.
      if (!sessionPresent) await this.client.subscribeAsync(topics.command(this.id), { qos: 1 });
      await this.announce();
    } catch {
      // The connection dropped again: the next connect does this once more.
    }
  }

  private announce(): Promise<void> {
    return this.publish('announce', { type: this.opts.type, version: this.version, chip: 'esp32' });
  }

  private onCommand(payload: Buffer): void {
    let command: Record<string, unknown>;
    try { command = JSON.parse(payload.toString()); } catch { return; }
    this.answered?.();
    this.answered = null;
    this.fleet.changed();
    if (command.action === 'update' && typeof command.updateId === 'string' && typeof command.version === 'string') {
      void this.update(command.updateId, command.version).catch(() => undefined);
    }
  }

  private async update(updateId: string, version: string): Promise<void> {
    const final = this.finished.get(updateId);
    if (final) { await this.report(updateId, final); return; } // re-report an update already finished
    if (this.current === updateId) return; // a duplicate of the update in progress
    if (this.current !== null) return; // one update at a time; the other is offered again later
    if (!semver.gt(version, this.version)) {
      const rejected = { state: 'rejected', reason: `already running ${this.version}` };
      this.finished.set(updateId, rejected);
      await this.report(updateId, rejected);
      return;
    }
    this.current = updateId;
    this.fleet.changed();
    await this.report(updateId, { state: 'accepted' });
    await this.report(updateId, { state: 'downloading', progress: DOWNLOAD_PROGRESS });
    await this.report(updateId, { state: 'downloaded' });
    // From `rebooting` on, the device runs (and announces, on any reconnect) the new image, as a
    // real one does once it has rebooted; announcing the old one now would say it rolled back.
    this.version = version;
    await this.report(updateId, { state: 'rebooting' });
    const succeeded = { state: 'succeeded', version };
    this.finished.set(updateId, succeeded);
    await this.report(updateId, succeeded);
    this.current = null;
    this.fleet.changed();
    await this.announce();
  }

  /**
   * Publishes a status report and resolves on its PUBACK (whenever that comes, across reconnects).
   * mqtt.js fails a publish it queued while resending its session (never sent, never stored) when
   * that connection drops, a kill during the resend: a device's outbox keeps it, so this sends it
   * again. Only a fleet being closed gives up.
   */
  private async report(updateId: string, body: Record<string, unknown>): Promise<void> {
    for (;;) {
      try {
        await this.publish('status', { updateId, ...body });
        break;
      } catch (err) {
        if (!/Connection closed/.test((err as Error).message) || this.client.disconnecting || this.client.disconnected) throw err;
      }
    }
    this.fleet.recordAcknowledged({
      deviceId: this.id, updateId, state: String(body.state), ...(typeof body.progress === 'number' ? { progress: body.progress } : {}),
    });
  }

  private publish(topic: 'announce' | 'status', body: Record<string, unknown>): Promise<void> {
    return new Promise((resolve, reject) => {
      // The callback runs on PUBACK for QoS 1, or with an error if the client is ended first.
      this.client.publish(topics[topic](this.id), JSON.stringify(body), { qos: 1 }, (err) => (err ? reject(err) : resolve()));
    });
  }
}

/**
 * Each device's TLS material, parsed once per PKI and id and reused by every fleet and reconnect,
 * offering the key exchanges an ESP32 does (not Node 22/24's post-quantum hybrid).
 */
const contexts = new WeakMap<TestPki, Map<string, Promise<SecureContext>>>();

function secureContext(pki: TestPki, id: string): Promise<SecureContext> {
  if (!contexts.has(pki)) contexts.set(pki, new Map());
  const byId = contexts.get(pki)!;
  if (!byId.has(id)) {
    byId.set(id, pki.issue(id, 'device').then((creds) => deviceSecureContext({ ca: creds.caPem, cert: creds.certPem, key: creds.keyPem })));
  }
  return byId.get(id)!;
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]);
    }
  }));
  return results;
}
