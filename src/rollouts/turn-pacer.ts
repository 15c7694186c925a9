// Bursts of rollout work spread over turns of the event loop. A fan-out resumes thousands of
// continuations at once: every send waiting on a commit, every attempt whose row a commit wrote.
// Run in one microtask drain they hold the loop for the whole burst (a 113 ms task for 1,000
// devices in `npm run bench`, about a second for 5,000 on PGlite), and the messages of every other
// device wait behind it. The pacer runs such work while this turn of the loop has spent less than
// `budgetMs` on it (a send's synchronous part, signing and writing the packet, runs inside `run`,
// so it is measured); the rest runs on later turns, in order, after the loop has read its sockets.
// One pacer is shared by everything it paces, so they share one budget per turn. A count per turn
// (the first version, 100 sends) let a turn run 100-120 ms on the loaded 2-core machine, where
// signing alone took ~0.1 ms a command (bench/README.md, "Loop delay during a fan-out").
// Work that comes alone never waits.
export class TurnPacer {
  private readonly waiting: Array<() => void> = [];
  private turnStartedAt: number | null = null;
  private scheduled = false;
  private readonly budgetMs: number;
  private readonly now: () => number;

  constructor(opts: { budgetMs?: number; now?: () => number } = {}) {
    this.budgetMs = opts.budgetMs ?? 2;
    this.now = opts.now ?? (() => performance.now());
  }

  /** Runs `work` now if this turn has time left and nothing waits, else on a later turn; FIFO. */
  run<T>(work: () => Promise<T> | T): Promise<T> {
    if (this.waiting.length === 0 && this.hasBudget()) return call(work);
    return new Promise<T>((resolve, reject) => {
      this.waiting.push(() => { call(work).then(resolve, reject); });
      this.schedule();
    });
  }

  /**
   * For a loop over many items: resolves at once while this turn has time left and nothing waits,
   * else on a later turn (after the work queued before it).
   */
  turn(): Promise<void> | null {
    if (this.waiting.length === 0 && this.hasBudget()) return null;
    return this.run(() => undefined);
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

function call<T>(work: () => Promise<T> | T): Promise<T> {
  try {
    return Promise.resolve(work());
  } catch (err) {
    return Promise.reject(err);
  }
}
