// The fleet `mqota simulate` runs: devices provisioned through the operator API (each gets its own
// certificate, as `mqota device add` does), connected over mutual TLS with persistent sessions
// (mqtt-device.ts), announcing, and completing updates as docs/protocol.md's device sequence
// says: accepted, downloading (the image, over HTTPS with the device's certificate, checked
// against the command's SHA-256), downloaded, rebooting, succeeded, then an announce of the new
// version. A configurable share of updates fails instead, reported `failed` with an error.
import { createHash } from 'node:crypto';
import tls, { type SecureContext } from 'node:tls';
import { Agent, request } from 'undici';
import { ApiError, type ApiClient } from '../cli/api-client.js';
import { mapLimit } from './concurrency.js';
import { deviceSecureContext, MqttDevice, type BrokerAddress } from './mqtt-device.js';

export interface SimulatedFleetOptions {
  devices: number;
  type: string;
  version: string;
  chip: string;
  /** 0..1: the probability that an update fails (reported `failed`). */
  failureRate: number;
  /** Device ids are `${prefix}-0001`... */
  prefix: string;
  /** Connections and provisioning requests in flight at once. */
  concurrency: number;
  /** Randomness for the failure draw; default Math.random. */
  random?: () => number;
}

interface DeviceBundle { deviceId: string; brokerUrl: string; certPem: string; keyPem: string; caPem: string }

export interface FleetSummary {
  devices: number;
  provisioned: number;
  online: number;
  updating: number;
  succeeded: number;
  failed: number;
  versions: Record<string, number>;
}

class FleetDevice {
  version: string;
  updating = false;
  private reconnecting = false;
  private readonly link: MqttDevice;
  /** Updates this device has worked on: a resent command for one of them is not started again. */
  private readonly handled = new Set<string>();

  constructor(readonly id: string, private readonly fleet: SimulatedFleet, private readonly secureContext: SecureContext, readonly broker: BrokerAddress) {
    this.version = fleet.opts.version;
    this.link = new MqttDevice(id, secureContext, (payload) => this.onCommand(payload));
  }

  get online(): boolean { return this.link.online; }

  async start(): Promise<void> {
    await this.link.connect(this.broker);
    this.link.onClose(() => {
      this.fleet.changed();
      this.reconnect(1000);
    });
    await this.announce();
  }

  /**
   * A real device reconnects when its connection drops (a server restart): so does this one, after
   * `delayMs` with jitter, doubling to 30 s while the broker cannot be reached. Its persistent
   * session keeps the commands sent meanwhile.
   */
  private reconnect(delayMs: number): void {
    if (this.fleet.stopping || this.reconnecting) return;
    this.reconnecting = true;
    setTimeout(() => {
      if (this.fleet.stopping) return;
      this.link.end()
        .then(() => this.start())
        .then(() => { this.reconnecting = false; this.fleet.changed(); },
          () => { this.reconnecting = false; this.reconnect(Math.min(delayMs * 2, 30_000)); });
    }, delayMs / 2 + Math.random() * delayMs).unref();
  }

  announce(): Promise<void> {
    return this.link.announce({ type: this.fleet.opts.type, version: this.version, chip: this.fleet.opts.chip });
  }

  end(): Promise<void> { return this.link.end(); }

  private onCommand(payload: Buffer): void {
    let cmd: Record<string, unknown>;
    try { cmd = JSON.parse(payload.toString()); } catch { return; }
    if (cmd.action !== 'update' || typeof cmd.updateId !== 'string' || this.handled.has(cmd.updateId)) return;
    this.handled.add(cmd.updateId);
    this.updating = true;
    this.fleet.changed();
    this.update(cmd as unknown as UpdateCommand).catch(() => undefined).finally(() => { this.updating = false; this.fleet.changed(); });
  }

  private async update(cmd: UpdateCommand): Promise<void> {
    const report = (body: Record<string, unknown>) => this.link.report({ updateId: cmd.updateId, ...body });
    await report({ state: 'accepted' });
    await report({ state: 'downloading', progress: 0 });
    const fails = this.fleet.random() < this.fleet.opts.failureRate;
    let error: string | null = fails ? 'simulated-failure' : null;
    if (!error) error = await this.download(cmd, (progress) => report({ state: 'downloading', progress }));
    if (error) {
      this.fleet.failed++;
      await report({ state: 'failed', error });
      return;
    }
    await report({ state: 'downloaded' });
    await report({ state: 'rebooting' });
    this.version = cmd.version;
    this.fleet.succeeded++;
    await report({ state: 'succeeded', version: cmd.version });
    await this.announce();
  }

  /** Fetches the image with the device's certificate and checks it; null when it is good, else why not. */
  private async download(cmd: UpdateCommand, progress: (percent: number) => Promise<void>): Promise<string | null> {
    const dispatcher = new Agent({ connect: { secureContext: this.secureContext } as tls.ConnectionOptions });
    try {
      const res = await request(cmd.url, { dispatcher });
      if (res.statusCode !== 200) { await res.body.dump(); return `download-http-${res.statusCode}`; }
      const hash = createHash('sha256');
      let received = 0;
      let step = 25;
      for await (const chunk of res.body) {
        hash.update(chunk as Buffer);
        received += (chunk as Buffer).length;
        const percent = cmd.size ? Math.floor((received / cmd.size) * 100) : 100;
        // A few progress steps, as a device would report them, not one per TCP chunk.
        while (percent >= step && step < 100) { await progress(step); step += 25; }
      }
      if (received !== cmd.size) return 'size-mismatch';
      if (hash.digest('hex') !== cmd.sha256) return 'sha256-mismatch';
      await progress(100);
      return null;
    } catch {
      return 'download-failed';
    } finally {
      await dispatcher.close();
    }
  }
}

interface UpdateCommand { updateId: string; version: string; url: string; sha256: string; size: number }

export class SimulatedFleet {
  readonly random: () => number;
  succeeded = 0;
  failed = 0;
  private readonly devices: FleetDevice[] = [];
  private listener: (() => void) | null = null;
  private stopped = false;

  get stopping(): boolean { return this.stopped; }

  constructor(readonly opts: SimulatedFleetOptions) {
    this.random = opts.random ?? Math.random;
  }

  ids(): string[] {
    return Array.from({ length: this.opts.devices }, (_, i) => `${this.opts.prefix}-${String(i + 1).padStart(4, '0')}`);
  }

  /** Called on every change worth showing (a device came, went, started or finished an update). */
  onChange(listener: () => void): void { this.listener = listener; }

  changed(): void { this.listener?.(); }

  /**
   * Provisions every device through the API (a device that exists already gets a new
   * certificate), then connects and announces them. A device that cannot connect is reported
   * through `onError` and left out; the rest run.
   */
  async start(api: ApiClient, onError: (id: string, err: Error) => void): Promise<void> {
    await mapLimit(this.ids(), this.opts.concurrency, async (id) => {
      if (this.stopped) return;
      try {
        const bundle = await provision(api, id, this.opts.type);
        const broker = new URL(bundle.brokerUrl);
        const device = new FleetDevice(id, this, deviceSecureContext({ ca: bundle.caPem, cert: bundle.certPem, key: bundle.keyPem }),
          { host: broker.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(broker.port || 8883) });
        this.devices.push(device);
        this.changed();
        if (this.stopped) return;
        await device.start();
        this.changed();
      } catch (err) {
        onError(id, err as Error);
      }
    });
  }

  summary(): FleetSummary {
    const versions: Record<string, number> = {};
    let online = 0;
    let updating = 0;
    for (const d of this.devices) {
      if (d.online) { online++; versions[d.version] = (versions[d.version] ?? 0) + 1; }
      if (d.updating) updating++;
    }
    return { devices: this.opts.devices, provisioned: this.devices.length, online, updating, succeeded: this.succeeded, failed: this.failed, versions };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.devices.map((d) => d.end()));
  }
}

async function provision(api: ApiClient, id: string, type: string): Promise<DeviceBundle> {
  try {
    return (await api.call<{ bundle: DeviceBundle }>('POST', '/api/devices', { id, type })).bundle;
  } catch (err) {
    if (!(err instanceof ApiError && err.statusCode === 409 && /already exists/.test(err.message))) throw err;
    // From an earlier run: the key was never kept, so the device gets a new certificate.
    return (await api.call<{ bundle: DeviceBundle }>('POST', `/api/devices/${encodeURIComponent(id)}/certificate`)).bundle;
  }
}
