// The real device program for end-to-end tests: esp32/host/build/mqota-linux-device (built by
// `bash esp32/host/test.sh`), started with a device bundle and a state directory that stands for
// its flash. Every stderr line is kept so that a failing test can show what the device did.
import { spawn, type ChildProcess } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

export const LINUX_DEVICE_BIN = fileURLToPath(new URL('../../esp32/host/build/mqota-linux-device', import.meta.url));

/** Throws, saying how to build it, when the device program is missing: a test must not skip silently. */
export async function requireLinuxDevice(): Promise<string> {
  try {
    await access(LINUX_DEVICE_BIN, constants.X_OK);
  } catch {
    throw new Error(`${LINUX_DEVICE_BIN} is missing: run \`bash esp32/host/test.sh\` first (npm test does)`);
  }
  return LINUX_DEVICE_BIN;
}

export interface LinuxDeviceOptions {
  /** Directory written by `mqota device add`. */
  bundle: string;
  /** Simulated flash; created by the device if missing. */
  state: string;
  /** Factory-flash this image into ota_0 before booting. */
  install?: string;
  /** More command-line options (`--self-test-timeout-ms`, `--max-download-rate`, ...). */
  args?: string[];
  /** Added to the environment (`MQOTA_SIM_CRASH_BEFORE_CONFIRM`). */
  env?: Record<string, string>;
}

export interface DeviceExit { code: number | null; signal: NodeJS.Signals | null }

/**
 * One run of the device program. A reboot re-executes the same process (same pid), so `exited`
 * settles only when the device really stops: a signal, a simulated crash, an error.
 */
export class LinuxDevice {
  readonly lines: string[] = [];
  readonly exited: Promise<DeviceExit>;
  exit: DeviceExit | undefined;
  private readonly child: ChildProcess;
  private readonly waiters = new Set<() => void>();

  constructor(opts: LinuxDeviceOptions) {
    const args = ['--bundle', opts.bundle, '--state', opts.state, ...(opts.install ? ['--install', opts.install] : []), ...(opts.args ?? [])];
    this.child = spawn(LINUX_DEVICE_BIN, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...opts.env } });
    let partial = '';
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop()!;
      this.lines.push(...parts);
      for (const wake of this.waiters) wake();
    });
    this.exited = new Promise((resolve) => {
      this.child.once('close', (code, signal) => {
        if (partial) this.lines.push(partial);
        this.exit = { code, signal };
        for (const wake of this.waiters) wake();
        resolve(this.exit);
      });
    });
  }

  get pid(): number | undefined { return this.child.pid; }

  /** Resolves with the first stderr line (already seen or to come) matching `pattern`. */
  waitForLine(pattern: RegExp, timeoutMs = 30_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const line = this.lines.find((l) => pattern.test(l));
        if (line !== undefined) done(() => resolve(line));
        else if (this.exit) done(() => reject(new Error(`device exited (${describeExit(this.exit!)}) without logging ${pattern}\n${this.log()}`)));
      };
      const timer = setTimeout(() => done(() => reject(new Error(`device logged no line matching ${pattern} within ${timeoutMs} ms\n${this.log()}`))), timeoutMs);
      const done = (settle: () => void) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        settle();
      };
      this.waiters.add(check);
      check();
    });
  }

  /** SIGTERM (a clean shutdown, exit status 0), SIGKILL (power loss) or SIGABRT (a crash: the next boot's reset reason is `panic`); SIGKILL anyway after timeoutMs (generous: a clean stop on a loaded machine is slow). */
  async stop(signal: 'SIGTERM' | 'SIGKILL' | 'SIGABRT' = 'SIGTERM', timeoutMs = 30_000): Promise<DeviceExit> {
    if (this.exit) return this.exit;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The device's stderr, for failure messages. */
  log(lastLines = 60): string {
    const shown = this.lines.slice(-lastLines);
    const cut = this.lines.length - shown.length;
    return `--- device stderr${cut ? ` (last ${shown.length} of ${this.lines.length} lines)` : ''}${this.exit ? `, ${describeExit(this.exit)}` : ''}:\n${shown.join('\n')}`;
  }
}

function describeExit(e: DeviceExit): string {
  return e.signal ? `killed by ${e.signal}` : `exit status ${e.code}`;
}
