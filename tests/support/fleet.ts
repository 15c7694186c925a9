// Simulated devices for rollout tests: real mqtt.js TLS clients that announce and then act on
// update commands the way a chosen behaviour says (succeed, fail, roll back, stay silent, fall back).
import type { MqttClient } from 'mqtt';
import { topics } from '../../src/topics.js';
import { endAll, openDevice } from './mqtt.js';
import type { TestServer } from './server.js';

/**
 * `fall-back`: succeeds, then comes back on the old version (the bootloader fell back after a
 * later reboot), as soon as it announced the new one.
 */
export type Behaviour = 'succeed' | 'fail' | 'rollback' | 'silent' | 'reject' | 'fall-back' | 'defer';

export interface Received { at: number; command: Record<string, any> }

export class SimulatedDevice {
  client: MqttClient | null = null;
  readonly commands: Received[] = [];
  /** What to do with an update command once `plan` is used up; may be changed between commands. */
  behaviour: Behaviour;
  /**
   * What to do with the next update commands, one entry each, before `behaviour` applies. Set
   * before the commands come, it decides without racing the server (a test that changed
   * `behaviour` after seeing one command could be too late for the next on a loaded machine).
   */
  plan: Behaviour[];
  version: string;
  /** When the device last reported `succeeded` (taken before publishing it, so before the server knew). */
  succeededAt = 0;
  /** `defer`: the retryAfter (seconds) the device asks for. */
  retryAfter = 1;

  constructor(private readonly server: TestServer, readonly id: string, readonly type: string, version: string,
    opts: { behaviour?: Behaviour; plan?: Behaviour[]; secureVersion?: number; chip?: string } = {}) {
    this.version = version;
    this.behaviour = opts.behaviour ?? 'succeed';
    this.plan = [...(opts.plan ?? [])];
    this.extra = { ...(opts.chip ? { chip: opts.chip } : {}), ...(opts.secureVersion !== undefined ? { secureVersion: opts.secureVersion } : {}) };
  }

  private readonly extra: Record<string, unknown>;

  /** Connects (persistent session), subscribes and announces. */
  async start(): Promise<void> {
    const client = await openDevice(this.id, { port: this.server.mqota.mqttPort, pki: this.server.pki });
    this.client = client;
    client.on('message', (_topic, payload) => {
      const command = JSON.parse(payload.toString());
      this.commands.push({ at: Date.now(), command });
      if (command.action === 'update') void this.act(command);
    });
    await new Promise<void>((resolve, reject) => { client.once('connect', () => resolve()); client.once('error', reject); });
    await client.subscribeAsync(topics.command(this.id), { qos: 1 });
    await this.announce();
  }

  async announce(): Promise<void> {
    await this.client!.publishAsync(topics.announce(this.id), JSON.stringify({ type: this.type, version: this.version, ...this.extra }), { qos: 1 });
  }

  async stop(): Promise<void> {
    await endAll(this.client ?? undefined);
    this.client = null;
  }

  updates(): Received[] {
    return this.commands.filter((c) => c.command.action === 'update');
  }

  private handled = new Set<string>();

  private async act(cmd: Record<string, any>): Promise<void> {
    if (this.handled.has(cmd.updateId)) return; // a duplicate of the update in progress (or one already ignored)
    const behaviour = this.plan.shift() ?? this.behaviour;
    if (behaviour === 'silent') {
      // As if the command was lost: a later resend of the same update is acted on.
      return;
    }
    if (behaviour === 'defer') {
      // The application is busy: the offer of the same update, made again later, is acted on.
      await this.client?.publishAsync(topics.status(this.id), JSON.stringify({ updateId: cmd.updateId, state: 'deferred', retryAfter: this.retryAfter, reason: 'simulated: busy' }), { qos: 1 });
      return;
    }
    this.handled.add(cmd.updateId);
    const report = (body: Record<string, unknown>) => this.client?.publishAsync(topics.status(this.id), JSON.stringify({ updateId: cmd.updateId, ...body }), { qos: 1 });
    if (behaviour === 'reject') { await report({ state: 'rejected', reason: 'simulated' }); return; }
    await report({ state: 'accepted' });
    await report({ state: 'downloading', progress: 50 });
    if (behaviour === 'fail') { await report({ state: 'failed', error: 'download-failed' }); return; }
    await report({ state: 'downloaded' });
    await report({ state: 'rebooting' });
    if (behaviour === 'rollback') { await report({ state: 'rolled_back', error: 'self-test-failed' }); await this.announce(); return; }
    const previous = this.version;
    this.version = cmd.version;
    this.succeededAt = Date.now();
    await report({ state: 'succeeded', version: cmd.version });
    await this.announce();
    if (behaviour === 'fall-back') {
      this.version = previous;
      await this.announce();
    }
  }
}

/** Starts `n` devices `${prefix}-0..n-1` of one type and version. */
export async function startFleet(server: TestServer, prefix: string, n: number, type: string, version: string, opts: ConstructorParameters<typeof SimulatedDevice>[4] = {}): Promise<SimulatedDevice[]> {
  const devices = Array.from({ length: n }, (_, i) => new SimulatedDevice(server, `${prefix}-${i}`, type, version, opts));
  await Promise.all(devices.map((d) => d.start()));
  return devices;
}

export async function stopFleet(devices: SimulatedDevice[]): Promise<void> {
  await Promise.all(devices.map((d) => d.stop()));
}
