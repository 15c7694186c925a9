// The benchmark's handle on the fleet process: fork, typed requests over IPC, clock offset, stop.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { now } from './clock.js';
import type { AnnounceResult, AutoCompleteStats, CommandsResult, ConnectOnlyResult, ConnectResult, FleetRequest, FleetResponse, FleetResult, ReportResult, UpdatesResult } from './fleet-protocol.js';

const FLEET_SCRIPT = fileURLToPath(new URL('./fleet.ts', import.meta.url));
/** Slack on top of a request's own timeout before the fleet is considered stuck. */
const IPC_SLACK_MS = 15_000;

type Result<R extends FleetRequest['op']> =
  R extends 'connect' ? ConnectResult : R extends 'connect-only' ? ConnectOnlyResult : R extends 'await-commands' ? CommandsResult : R extends 'announce' ? AnnounceResult : R extends 'await-updates' ? UpdatesResult : R extends 'report-success' ? ReportResult : R extends 'auto-complete-stats' ? AutoCompleteStats : R extends 'clock' ? { now: number } : Record<string, never>;

export class FleetProcess {
  private seq = 0;
  private readonly pending = new Map<number, { resolve: (r: FleetResult) => void; reject: (e: Error) => void }>();
  private readonly exited: Promise<void>;

  private constructor(private readonly child: ChildProcess) {
    child.on('message', (m: FleetResponse) => {
      const waiter = this.pending.get(m.seq);
      if (!waiter) return;
      this.pending.delete(m.seq);
      if (m.ok) waiter.resolve(m.result);
      else waiter.reject(new Error(`fleet: ${m.error}`));
    });
    this.exited = new Promise((resolve) => child.once('exit', (code) => {
      for (const w of this.pending.values()) w.reject(new Error(`fleet process exited (${code})`));
      this.pending.clear();
      resolve();
    }));
  }

  static start(credentialsFile: string): FleetProcess {
    return new FleetProcess(fork(FLEET_SCRIPT, [credentialsFile], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  }

  get pid(): number {
    return this.child.pid!;
  }

  request<R extends FleetRequest>(req: R): Promise<Result<R['op']>> {
    const seq = ++this.seq;
    const timeoutMs = ('timeoutMs' in req ? req.timeoutMs : 0) + IPC_SLACK_MS;
    return new Promise<Result<R['op']>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(seq);
        reject(new Error(`fleet did not answer ${req.op} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(seq, {
        resolve: (r) => { clearTimeout(timer); resolve(r as Result<R['op']>); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      this.child.send({ ...req, seq });
    });
  }

  /**
   * How far the fleet's clock is ahead of ours, in ms: the fleet's reading minus the midpoint of
   * the request's round trip, from the fastest of a few round trips. Both clocks start from the
   * wall clock, so this is normally a fraction of a millisecond; it is measured, not assumed.
   */
  async clockOffsetMs(): Promise<{ offsetMs: number; roundTripMs: number }> {
    let best = { offsetMs: 0, roundTripMs: Infinity };
    for (let i = 0; i < 7; i++) {
      const sent = now();
      const { now: fleetNow } = await this.request({ op: 'clock' });
      const received = now();
      if (received - sent < best.roundTripMs) best = { offsetMs: fleetNow - (sent + received) / 2, roundTripMs: received - sent };
    }
    return best;
  }

  /** Disconnects every device and ends the process (killed if it does not go by itself). */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null && this.child.connected) {
      await this.request({ op: 'close' }).catch(() => undefined);
    }
    const gone = await Promise.race([this.exited.then(() => true), sleep(5_000, false)]);
    if (!gone) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }
}
