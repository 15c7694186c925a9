// Commands resume in bursts: when a rollout's attempts are committed, every send waiting on that
// commit continues in one microtask drain, and the messages of all other devices wait behind the
// whole burst (a 113 ms task for 1,000 devices in `npm run bench`, about a second for 5,000 on
// PGlite). The pacer runs sends while this turn of the event loop has spent less than `budgetMs`
// (a send's synchronous part, signing and writing the packet, runs inside `run`, so it is
// measured); the others run on later turns, in order, after the loop has read its sockets. A count
// per turn (the first version, 100) let a turn run 100-120 ms on the loaded 2-core machine, where
// signing alone took ~0.1 ms a command (bench/README.md, "Loop delay during a fan-out").
// A lone command never waits.
export class CommandPacer {
  private readonly waiting: Array<() => void> = [];
  private turnStartedAt: number | null = null;
  private scheduled = false;
  private readonly budgetMs: number;
  private readonly now: () => number;

  constructor(opts: { budgetMs?: number; now?: () => number } = {}) {
    this.budgetMs = opts.budgetMs ?? 5;
    this.now = opts.now ?? (() => performance.now());
  }

  /** Runs `send` now if this turn has time left and nothing waits, else on a later turn. */
  run<T>(send: () => Promise<T>): Promise<T> {
    if (this.waiting.length === 0 && this.hasBudget()) return call(send);
    return new Promise<T>((resolve, reject) => {
      this.waiting.push(() => { call(send).then(resolve, reject); });
      this.schedule();
    });
  }

  private hasBudget(): boolean {
    const now = this.now();
    if (this.turnStartedAt === null) {
      this.turnStartedAt = now;
      setImmediate(() => { this.turnStartedAt = null; });
    }
    return now - this.turnStartedAt < this.budgetMs;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.drain());
  }

  private drain(): void {
    this.scheduled = false;
    this.turnStartedAt = null;
    while (this.waiting.length > 0 && this.hasBudget()) this.waiting.shift()!();
    if (this.waiting.length > 0) this.schedule();
  }
}

function call<T>(send: () => Promise<T>): Promise<T> {
  try {
    return send();
  } catch (err) {
    return Promise.reject(err);
  }
}
