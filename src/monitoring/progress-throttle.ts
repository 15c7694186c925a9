// Rate limit for rollout progress publications: at most one per interval per rollout, on the
// trailing edge (a burst of changes ends with a publication of the state after the burst), and
// at once when asked (a final state). Publications of one rollout never overlap, so an older
// summary can never land after a newer one.

interface Entry {
  timer: NodeJS.Timeout | null;
  /** When the last publication started (-Infinity: never, so the first one need not wait whatever the clock reads). */
  lastAt: number;
  /** The publications of this rollout, one after the other. */
  chain: Promise<void>;
}

export class ProgressThrottle {
  private readonly entries = new Map<string, Entry>();
  private closed = false;

  constructor(private readonly opts: {
    intervalMs: number;
    publish: (rolloutId: string) => Promise<void>;
    onError: (err: unknown, rolloutId: string) => void;
  }) {}

  /** Something changed: publish within intervalMs, and not sooner than intervalMs after the last one. */
  changed(rolloutId: string): void {
    if (this.closed) return;
    const entry = this.entry(rolloutId);
    if (entry.timer) return; // the pending publication will read the newest state
    const wait = Math.max(0, entry.lastAt + this.opts.intervalMs - Date.now());
    entry.timer = setTimeout(() => {
      entry.timer = null;
      this.enqueue(rolloutId, entry, false);
    }, wait);
  }

  /** Publish now, replacing a pending publication; `last`: nothing more is expected, forget the rollout afterwards. */
  now(rolloutId: string, last = false): void {
    if (this.closed) return;
    const entry = this.entry(rolloutId);
    if (entry.timer) clearTimeout(entry.timer);
    entry.timer = null;
    this.enqueue(rolloutId, entry, last);
  }

  /** Stops timers and waits for publications under way. */
  async close(): Promise<void> {
    this.closed = true;
    for (const entry of this.entries.values()) if (entry.timer) clearTimeout(entry.timer);
    await Promise.all([...this.entries.values()].map((e) => e.chain));
    this.entries.clear();
  }

  private entry(rolloutId: string): Entry {
    let entry = this.entries.get(rolloutId);
    if (!entry) this.entries.set(rolloutId, (entry = { timer: null, lastAt: Number.NEGATIVE_INFINITY, chain: Promise.resolve() }));
    return entry;
  }

  private enqueue(rolloutId: string, entry: Entry, last: boolean): void {
    const run = entry.chain.then(async () => {
      entry.lastAt = Date.now();
      try {
        await this.opts.publish(rolloutId);
      } catch (err) {
        this.opts.onError(err, rolloutId);
      }
      // A finished rollout's entry goes, unless a late change (an attempt in flight at cancel) already queued more.
      if (last && entry.chain === run && !entry.timer && this.entries.get(rolloutId) === entry) this.entries.delete(rolloutId);
    });
    entry.chain = run;
  }

  /** Rollouts with state kept here (tests). */
  get size(): number {
    return this.entries.size;
  }
}
