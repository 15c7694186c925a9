// The simulated fleet: real mqtt.js devices over mutual TLS, each with its own certificate, a
// persistent session and a QoS 1 subscription to its command topic, as docs/protocol.md
// describes (src/simulation/mqtt-device.ts, shared with `mqota simulate`). It runs as a child process of the benchmark (so its CPU and memory are not the
// server's) and does what run.ts asks over IPC (fleet-protocol.ts).
//
//   forked by fleet-process.ts: node --import tsx bench/fleet.ts <credentials.json>
import { readFileSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { SecureContext } from 'node:tls';
import { tuneHeap } from '../src/heap-tuning.js';
import { deviceSecureContext, MqttDevice } from '../src/simulation/mqtt-device.js';
import { now } from './clock.js';
import { mapLimit } from '../src/simulation/concurrency.js';
import type {
  Announce, AnnounceResult, AutoCompleteRecord, CommandsResult, ConnectOnlyResult, AutoCompleteStats, ConnectResult, DeviceCredentials, ExpectedUpdate, FleetCredentials, FleetMessage, FleetResponse, FleetResult, ReportResult, UpdatesResult,
} from './fleet-protocol.js';

// One process holding a thousand TLS clients meets the same V8 marking loop as the server
// (src/heap-tuning.ts): nine mark-compacts while its devices connected. Its pauses are part of
// every latency it measures, so it gets the server's setting.
tuneHeap();

const BROKER_HOST = '127.0.0.1';
/** Same pattern the server validates status reports' updateId with (src/protocol/messages.ts). */
const UPDATE_ID = /^[A-Za-z0-9_-]{1,64}$/;
const UPDATE_FIELDS = ['action', 'updateId', 'type', 'version', 'url', 'sha256', 'size'];
const UPDATE_KEYS = [...UPDATE_FIELDS].sort().join();
/** A signed command (src/protocol/command-signature.ts) names its device and adds an expiry and a signature. */
const SIGNED_UPDATE_KEYS = [...UPDATE_FIELDS, 'deviceId', 'expires', 'sig'].sort().join();

interface ReceivedCommand {
  at: number;
  raw: string;
  command: Record<string, unknown> | null;
}

class DeadlineError extends Error {
  constructor() { super('timeout'); }
}

/** Fires 'command' (device) on every command any device receives. */
const commandEvents = new EventEmitter();

class SimulatedDevice {
  readonly commands: ReceivedCommand[] = [];
  /** Index in `commands` of the answer to the latest announce. */
  answerIndex = -1;
  private readonly link: MqttDevice;
  /** Resolves the pending announce's answer. */
  private onAnswer: ((c: ReceivedCommand) => void) | null = null;

  constructor(readonly id: string, secureContext: SecureContext) {
    this.link = new MqttDevice(id, secureContext, (payload) => {
      const received: ReceivedCommand = { at: now(), raw: payload.toString(), command: null };
      try { received.command = JSON.parse(received.raw); } catch { /* kept raw, counted as malformed */ }
      this.commands.push(received);
      this.onAnswer?.(received);
      this.onAnswer = null;
      commandEvents.emit('command', this);
    });
  }

  get online(): boolean {
    return this.link.online;
  }

  /** Connects (persistent session) and subscribes to the command topic; resolves with the time to CONNACK. */
  async connect(port: number): Promise<number> {
    const started = now();
    let connectMs = 0;
    await this.link.connect({ host: BROKER_HOST, port }, { onConnack: () => { connectMs = now() - started; } });
    return connectMs;
  }

  /** Publishes an announce; resolves with the time it was sent and the first command that follows. */
  async announce(body: Announce, deadline: Promise<never>): Promise<{ sentAt: number; answer: ReceivedCommand }> {
    const answer = new Promise<ReceivedCommand>((resolve) => { this.onAnswer = resolve; });
    const sentAt = now();
    await Promise.race([this.link.announce({ ...body }), deadline]);
    return { sentAt, answer: await Promise.race([answer, deadline]) };
  }

  /** Commands after the answer to the latest announce. */
  commandsSinceAnswer(): ReceivedCommand[] {
    return this.commands.slice(this.answerIndex + 1);
  }

  async report(body: Record<string, unknown>): Promise<void> {
    await this.link.report(body);
  }

  async end(): Promise<void> {
    await this.link.end();
  }
}

const { caPem, devices: identities } = JSON.parse(readFileSync(process.argv[2], 'utf8')) as FleetCredentials;
/**
 * Every device's TLS material (CA, certificate, key), parsed when the fleet starts, before any
 * phase: a real device has its own CPU for this, and parsing a thousand keys takes the one
 * simulating process over a second (it used to happen inside the connect phase's window, though
 * before its clock, and diluted the server's CPU share printed for that phase).
 */
const contexts = new Map<string, SecureContext>(identities.map((c: DeviceCredentials) => [c.id, deviceSecureContext({ ca: caPem, cert: c.certPem, key: c.keyPem })]));
const fleet = new Map<string, SimulatedDevice>();

function deadlineAfter(ms: number): Promise<never> {
  const p = new Promise<never>((_, reject) => setTimeout(() => reject(new DeadlineError()), ms).unref());
  p.catch(() => undefined);
  return p;
}

function failureName(err: unknown): string {
  if (err instanceof DeadlineError) return 'timeout';
  const e = err as { code?: unknown; message?: string };
  return typeof e.code === 'string' ? e.code : (e.message ?? String(err)).slice(0, 80);
}

function answerName(c: ReceivedCommand): string {
  const cmd = c.command;
  return cmd ? `${String(cmd.action)}${cmd.reason ? `/${String(cmd.reason)}` : ''}` : 'not-json';
}

/**
 * This process's event-loop delay until stop(), its p99 in ms. monitorEventLoopDelay records the
 * interval between its timer's runs, its resolution included (an idle loop reads the resolution),
 * so the delay is what exceeds it, as bench/server-probe.mjs computes it.
 */
function loopDelay(): { stop(): number } {
  const resolutionMs = 1;
  const histogram = monitorEventLoopDelay({ resolution: resolutionMs });
  histogram.enable();
  return { stop: () => { histogram.disable(); return Math.max(0, histogram.percentile(99) / 1e6 - resolutionMs); } };
}

/** For each id, at most `concurrency` at a time: `before` (e.g. connect), then an announce, timed to its answer; and the fleet's own load. */
async function measureAnnounces(
  ids: string[], req: { announce: Announce; expectReason: string; concurrency: number; timeoutMs: number },
  before: (id: string, deadline: Promise<never>) => Promise<SimulatedDevice | null>,
): Promise<AnnounceResult> {
  const result: AnnounceResult = {
    requested: ids.length, answered: 0, failures: {}, answers: {}, announceToCommandMs: [],
    startedAt: now(), lastAnswerAt: 0, fleetLoopDelayP99Ms: 0, fleetCpuMs: 0,
  };
  const fail = (why: string) => { result.failures[why] = (result.failures[why] ?? 0) + 1; };
  const loop = loopDelay();
  const cpu = process.cpuUsage();
  const deadline = deadlineAfter(req.timeoutMs);
  await mapLimit(ids, req.concurrency, async (id) => {
    try {
      const device = await before(id, deadline);
      if (!device) return fail('no credentials');
      const { sentAt, answer } = await device.announce(req.announce, deadline);
      device.answerIndex = device.commands.indexOf(answer);
      const name = answerName(answer);
      result.answers[name] = (result.answers[name] ?? 0) + 1;
      if (name !== `none/${req.expectReason}`) return fail(`answer ${name}`);
      result.answered++;
      result.announceToCommandMs.push(answer.at - sentAt);
      result.lastAnswerAt = Math.max(result.lastAnswerAt, answer.at);
    } catch (err) {
      fail(failureName(err));
    }
  });
  result.fleetLoopDelayP99Ms = loop.stop();
  const used = process.cpuUsage(cpu);
  result.fleetCpuMs = (used.user + used.system) / 1000;
  return result;
}

/** New devices connect, subscribe and announce. */
async function connectAll(req: Extract<FleetMessage, { op: 'connect' }>): Promise<ConnectResult> {
  const connectMs: number[] = [];
  const result = await measureAnnounces(req.ids, req, async (id, deadline) => {
    const secureContext = contexts.get(id);
    if (!secureContext) return null;
    const device = new SimulatedDevice(id, secureContext);
    fleet.set(id, device);
    connectMs.push(await Promise.race([device.connect(req.brokerPort), deadline]));
    return device;
  });
  if (req.disconnectAfter) {
    await Promise.all(req.ids.map(async (id) => { await fleet.get(id)?.end(); fleet.delete(id); }));
  }
  return { ...result, connectMs };
}

/** New devices connect and subscribe, `concurrency` at a time, and nothing else (an anchor broker). */
async function connectOnly(req: Extract<FleetMessage, { op: 'connect-only' }>): Promise<ConnectOnlyResult> {
  const result: ConnectOnlyResult = { requested: req.ids.length, connected: 0, failures: {}, connectMs: [], startedAt: now(), lastConnectedAt: 0, fleetLoopDelayP99Ms: 0 };
  const loop = loopDelay();
  const deadline = deadlineAfter(req.timeoutMs);
  await mapLimit(req.ids, req.concurrency, async (id) => {
    const secureContext = contexts.get(id);
    if (!secureContext) { result.failures['no credentials'] = (result.failures['no credentials'] ?? 0) + 1; return; }
    const device = new SimulatedDevice(id, secureContext);
    fleet.set(id, device);
    const started = now();
    try {
      await Promise.race([device.connect(req.brokerPort), deadline]);
      result.connected++;
      result.connectMs.push(now() - started);
      result.lastConnectedAt = Math.max(result.lastConnectedAt, now());
    } catch (err) {
      const why = failureName(err);
      result.failures[why] = (result.failures[why] ?? 0) + 1;
    }
  });
  result.fleetLoopDelayP99Ms = loop.stop();
  return result;
}

/** Waits until every online device has a command; when the first and the last arrived. */
async function awaitCommands(req: Extract<FleetMessage, { op: 'await-commands' }>): Promise<CommandsResult> {
  const online = [...fleet.values()].filter((d) => d.online);
  let waiting = online.filter((d) => d.commands.length === 0).length;
  if (waiting > 0) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, req.timeoutMs);
      function done() { clearTimeout(timer); commandEvents.off('command', onCommand); resolve(); }
      function onCommand(device: SimulatedDevice) { if (device.commands.length === 1 && --waiting === 0) done(); }
      commandEvents.on('command', onCommand);
    });
  }
  const firsts = online.map((d) => d.commands[0]?.at).filter((t): t is number => t !== undefined);
  return { online: online.length, received: firsts.length, firstAt: Math.min(...firsts), lastAt: Math.max(...firsts) };
}

/** Every online device announces again: the server's answer time without TLS handshakes competing. */
async function announceAgain(req: Extract<FleetMessage, { op: 'announce' }>): Promise<AnnounceResult> {
  const online = [...fleet.values()].filter((d) => d.online);
  return measureAnnounces(online.map((d) => d.id), req, async (id) => fleet.get(id)!);
}

function checkUpdate(deviceId: string, cmd: Record<string, unknown> | null, expected: ExpectedUpdate): boolean {
  const keys = cmd && Object.keys(cmd).sort().join();
  return cmd !== null
    && (keys === UPDATE_KEYS || (keys === SIGNED_UPDATE_KEYS && cmd.deviceId === deviceId && Number.isInteger(cmd.expires) && typeof cmd.sig === 'string'))
    && cmd.action === 'update' && typeof cmd.updateId === 'string' && UPDATE_ID.test(cmd.updateId)
    && cmd.type === expected.type && cmd.version === expected.version && cmd.url === expected.url
    && cmd.sha256 === expected.sha256 && cmd.size === expected.size;
}

/** Waits until every online device has received a command since its latest announce was answered, then checks them all. */
async function awaitUpdates(req: Extract<FleetMessage, { op: 'await-updates' }>): Promise<UpdatesResult> {
  const online = [...fleet.values()].filter((d) => d.online && d.answerIndex >= 0);
  let waiting = online.filter((d) => d.commandsSinceAnswer().length === 0).length;
  if (waiting > 0) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, req.timeoutMs);
      function done() {
        clearTimeout(timer);
        commandEvents.off('command', onCommand);
        resolve();
      }
      function onCommand(device: SimulatedDevice) {
        if (device.answerIndex >= 0 && device.commandsSinceAnswer().length === 1 && --waiting === 0) done();
      }
      commandEvents.on('command', onCommand);
    });
  }
  const result: UpdatesResult = { online: online.length, received: 0, wellFormed: 0, distinctUpdateIds: 0, duplicates: 0, malformedExamples: [], firstAt: Infinity, lastAt: 0 };
  const updateIds = new Set<string>();
  for (const device of online) {
    const [first, ...more] = device.commandsSinceAnswer();
    if (!first) continue;
    if (more.length) result.duplicates++;
    if (first.command?.action === 'update') result.received++;
    if (checkUpdate(device.id, first.command, req.expected)) result.wellFormed++;
    else if (result.malformedExamples.length < 5) result.malformedExamples.push(`${device.id}: ${first.raw}`);
    if (typeof first.command?.updateId === 'string') updateIds.add(first.command.updateId);
    result.firstAt = Math.min(result.firstAt, first.at);
    result.lastAt = Math.max(result.lastAt, first.at);
  }
  result.distinctUpdateIds = updateIds.size;
  return result;
}

/** Every device that got an update reports accepted, then succeeded with the new version (no download: the server's side is measured). */
async function reportSuccess(req: Extract<FleetMessage, { op: 'report-success' }>): Promise<ReportResult> {
  const result: ReportResult = { reported: 0, failed: 0, startedAt: now(), doneAt: 0 };
  const deadline = deadlineAfter(req.timeoutMs);
  await Promise.all([...fleet.values()].map(async (device) => {
    const update = device.commandsSinceAnswer().find((c) => c.command?.action === 'update')?.command;
    if (!device.online || !update) return;
    try {
      await Promise.race([device.report({ updateId: update.updateId, state: 'accepted' }), deadline]);
      await Promise.race([device.report({ updateId: update.updateId, state: 'succeeded', version: req.version }), deadline]);
      result.reported++;
    } catch {
      result.failed++;
    }
  }));
  result.doneAt = now();
  return result;
}

/** Auto-complete (off until asked): every `update` command is answered accepted → succeeded at once (bench/staged-rollout.ts). */
let autoComplete: { version: string; records: Map<string, AutoCompleteRecord>; failed: number } | null = null;
commandEvents.on('command', (device: SimulatedDevice) => {
  const received = device.commands[device.commands.length - 1];
  const updateId = received?.command?.updateId;
  if (!autoComplete || received.command?.action !== 'update' || typeof updateId !== 'string') return;
  const state = autoComplete;
  const record: AutoCompleteRecord = { id: device.id, commandAt: received.at, succeededAt: 0 };
  state.records.set(device.id, record);
  void (async () => {
    try {
      await device.report({ updateId, state: 'accepted' });
      await device.report({ updateId, state: 'succeeded', version: state.version });
      record.succeededAt = now();
    } catch {
      state.failed++;
    }
  })();
});

function autoCompleteStats(): AutoCompleteStats {
  return { records: [...(autoComplete?.records.values() ?? [])], failed: autoComplete?.failed ?? 0 };
}

async function handle(req: FleetMessage): Promise<FleetResult> {
  switch (req.op) {
    case 'connect': return connectAll(req);
    case 'connect-only': return connectOnly(req);
    case 'await-commands': return awaitCommands(req);
    case 'announce': return announceAgain(req);
    case 'await-updates': return awaitUpdates(req);
    case 'report-success': return reportSuccess(req);
    case 'auto-complete':
      autoComplete = { version: req.version, records: new Map(), failed: 0 };
      return {};
    case 'auto-complete-stats': return autoCompleteStats();
    case 'clock': return { now: now() };
    case 'disconnect':
      await Promise.all(req.ids.map(async (id) => { await fleet.get(id)?.end(); fleet.delete(id); }));
      return {};
    case 'close':
      await Promise.all([...fleet.values()].map((d) => d.end()));
      fleet.clear();
      return {};
  }
}

process.on('message', (req: FleetMessage) => {
  handle(req).then(
    (result) => process.send!({ seq: req.seq, ok: true, result } satisfies FleetResponse, () => { if (req.op === 'close') process.exit(0); }),
    (err: Error) => process.send!({ seq: req.seq, ok: false, error: err.stack ?? err.message } satisfies FleetResponse),
  );
});
// The benchmark going away takes the fleet with it.
process.on('disconnect', () => process.exit(0));
