// Commands resume in bursts: when a rollout's attempts are committed, every send waiting on that
// commit continues in one microtask drain, and the messages of all other devices wait behind the
// whole burst (a 113 ms task for 1,000 devices in `npm run bench`, about a second for 5,000 on
// PGlite). The pacer lets `perTurn` sends through per turn of the event loop; the others continue
// on the next turn, after the loop has read its sockets. A lone command never waits.
export class CommandPacer {
  private used = 0;

  constructor(private readonly perTurn = 100) {}

  /** Resolves when this send may go. */
  async slot(): Promise<void> {
    while (this.used >= this.perTurn) await new Promise<void>((resolve) => setImmediate(resolve));
    if (this.used++ === 0) setImmediate(() => { this.used = 0; });
  }
}
