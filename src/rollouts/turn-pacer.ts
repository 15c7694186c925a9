// Bursts of rollout work spread over turns of the event loop. A fan-out resumes thousands of
// continuations at once: every send waiting on a commit, every attempt whose row a commit wrote.
// Run in one microtask drain they hold the loop for the whole burst (a 113 ms task for 1,000
// devices in `npm run bench`, about a second for 5,000 on PGlite), and the messages of every other
// device wait behind it. The pacer runs such work while this turn of the loop has spent less than
// `budgetMs` on it (a send's synchronous part, signing and writing the packet, runs inside `run`,
// so it is measured); the rest runs on later turns, in order, after the loop has read its sockets.
// One pacer is shared by everything it paces, so they share one budget per turn. A count per turn
// (the first version, 100 sends) let a turn run 100-120 ms on the loaded 2-core machine, where
// signing alone took ~0.1 ms a command (bench/README.md, "Loop delay during a fan-out"). The
// budget is 2 ms because each send's socket write and continuations run after the measured part:
// with 5 ms the loop's delay in a 1,000-device fan-out was 34-36 ms p99, with 2 ms 22-25 ms.
// Work that comes alone never waits.
import { Fifo } from '../fifo.js';

export class TurnPacer {
  private readonly waiting = new Fifo<{ run: () => void; resumesLoop: boolean }>();
  private turnStartedAt: number | null = null;
  private scheduled = false;
  /** A loop was just resumed in its turn: it may go on while the budget lasts, ahead of what waits. */
  private loopResumed = false;
  private readonly budgetMs: number;
  private readonly now: () => number;

  constructor(opts: { budgetMs?: number; now?: () => number } = {}) {
    this.budgetMs = opts.budgetMs ?? 2;
    this.now = opts.now ?? (() => performance.now());
  }

  /** Runs `work` now if this turn has time left and nothing waits, else on a later turn; FIFO. */
  run<T>(work: () => Promise<T> | T): Promise<T> {
    if (this.waiting.length === 0 && this.hasBudget()) return call(work);
    return this.later(work, false);
  }

  /**
   * For a loop over many items, before each step: null (go on) while this turn has time left and
   * nothing waits, else a promise that resolves on a later turn, after the work queued before it.
   */
  turn(): Promise<void> | null {
    if ((this.waiting.length === 0 || this.loopResumed) && this.hasBudget()) return null;
    this.loopResumed = false;
    return this.later(() => undefined, true);
  }

  private later<T>(work: () => Promise<T> | T, resumesLoop: boolean): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({ run: () => { call(work).then(resolve, reject); }, resumesLoop });
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
    this.loopResumed = false;
    while (this.waiting.length > 0 && this.hasBudget()) {
      const item = this.waiting.take();
      item.run();
      // The loop continues in the microtasks after this drain: it gets what is left of the budget
      // (one step a turn would make a 10,000-member loop take 10,000 turns).
      if (item.resumesLoop) { this.loopResumed = true; break; }
    }
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
