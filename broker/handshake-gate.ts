// Admission control for TLS handshakes. A server handshake is ECDSA and certificate work on the
// event loop (a connecting device costs the server ≈ 2.6 ms of CPU in all, npm run bench). When
// thousands of devices reconnect at once (after an outage or a server restart), unbounded
// handshakes put that work in front of every announce and status message of the devices already
// online. The gate lets a window of handshakes run; the others wait as accepted TCP sockets that
// nothing reads yet, which costs no CPU (the device has sent its ClientHello and waits, as it
// would on a busy server).
//
// The window is steered like a TCP congestion window, by two signals:
// - the event-loop delay, as loss: the window halves when the loop runs late;
// - the handshakes' own latency, as TCP Vegas uses round-trip times. A handshake over a real
//   network spends most of its time on round trips and the device's own ECDSA, so many can be in
//   flight at no cost to the server, and a fixed small window would be wrong. But when handshakes
//   take longer than the fastest recent ones, the extra time is spent waiting inside this host
//   (its CPU), and a wider window only makes every message on the loop wait longer: the window
//   shrinks while handshakes take over twice the base latency, and grows by a quarter, when full,
//   only while they take under 1.25 times it. On the benchmark's shared 2 cores the window stays
//   at 4-7 of the 64 handshakes the fleet offers (`npm run bench` prints it for the connect
//   phase), with more devices connected per second and a lower announce latency than letting
//   them all in.

import { monitorEventLoopDelay, performance, type IntervalHistogram } from 'node:perf_hooks';
import type net from 'node:net';
import { Fifo } from '../src/fifo.js';

export interface HandshakeGateOptions {
  /** Bounds of the window (handshakes in progress at once). */
  minWindow: number;
  maxWindow: number;
  /** Event-loop delay the gate steers towards; above it the window halves. */
  targetDelayMs: number;
  /** How often the window is adjusted. */
  intervalMs: number;
  /** Sockets waiting beyond this are closed at once (a flood, not a fleet). */
  maxQueued: number;
}

export const DEFAULT_HANDSHAKE_GATE: HandshakeGateOptions = {
  minWindow: 4,
  maxWindow: 512,
  targetDelayMs: 5,
  intervalMs: 100,
  maxQueued: 20_000,
};

/** The delay histogram's timer period; its samples include it, so it is subtracted. */
const SAMPLE_MS = 5;
/** Handshakes slower than this many times the base latency: the window shrinks by a quarter. */
const SHRINK_ABOVE = 2;
/** Faster than this many times the base latency: a full window may grow by a quarter. */
const GROW_BELOW = 1.25;
/** Per interval, the base latency rises by this factor unless a faster interval renews it (doubles in ~7 s at 100 ms). */
const BASE_LATENCY_DRIFT = 1.01;

/** How late the event loop runs; the gate reads it once per interval. */
export interface LoopDelay {
  /** The 90th percentile of the loop's lateness since the last call, in ms; starts a new measurement. */
  takeLateMs(): number;
  stop(): void;
}

/** The event-loop delay as `monitorEventLoopDelay` measures it. */
export function measuredLoopDelay(): LoopDelay {
  const histogram: IntervalHistogram = monitorEventLoopDelay({ resolution: SAMPLE_MS });
  histogram.enable();
  return {
    takeLateMs() {
      // The 90th percentile of ~20 samples: a loop that keeps running late, not one garbage
      // collection or database batch, which a narrower window would not shorten anyway.
      const lateMs = histogram.count > 0 ? histogram.percentile(90) / 1e6 - SAMPLE_MS : 0;
      histogram.reset();
      return lateMs;
    },
    stop: () => histogram.disable(),
  };
}

/** What the gate reads time from; tests pass a fake one so nothing depends on the machine's speed. */
export interface HandshakeGateClock {
  /** Milliseconds from an arbitrary origin, never decreasing (default performance.now()). */
  now: () => number;
  loopDelay: LoopDelay;
}

export interface HandshakeStats {
  inProgress: number;
  queued: number;
  window: number;
  /** Sockets closed unhandled because the queue was full, since start. */
  refused: number;
}

export class HandshakeGate {
  readonly #opts: HandshakeGateOptions;
  readonly #startHandshake: (socket: net.Socket) => void;
  readonly #onRefused: (socket: net.Socket) => void;
  /** Handshakes running, with when each started (clock.now()). */
  readonly #inProgress = new Map<net.Socket, number>();
  readonly #queue = new Fifo<net.Socket>();
  #window: number;
  #fullSinceTick = false;
  #refused = 0;
  /** Completed handshakes this interval, and their summed duration. */
  #completed = 0;
  #completedMs = 0;
  /** The lowest interval mean duration seen, forgotten slowly (devices and networks change). */
  #baseLatencyMs = Infinity;
  readonly #onClose: (this: net.Socket) => void;
  readonly #now: () => number;
  readonly #delay: LoopDelay;
  readonly #timer: NodeJS.Timeout;

  /** The window is adjusted every `intervalMs` by a `setInterval` timer (node:test mock timers drive it in tests). */
  constructor(
    startHandshake: (socket: net.Socket) => void,
    onRefused: (socket: net.Socket) => void,
    options: Partial<HandshakeGateOptions> = {},
    clock: Partial<HandshakeGateClock> = {},
  ) {
    this.#opts = { ...DEFAULT_HANDSHAKE_GATE, ...options };
    if (this.#opts.minWindow < 1 || this.#opts.maxWindow < this.#opts.minWindow) {
      throw new Error(`handshake window bounds must satisfy 1 <= min <= max (got ${this.#opts.minWindow}..${this.#opts.maxWindow})`);
    }
    this.#startHandshake = startHandshake;
    this.#onRefused = onRefused;
    const release = (socket: net.Socket) => this.release(socket);
    this.#onClose = function (this: net.Socket) {
      release(this);
    };
    this.#window = Math.min(this.#opts.maxWindow, Math.max(this.#opts.minWindow, 16));
    this.#now = clock.now ?? (() => performance.now());
    this.#delay = clock.loopDelay ?? measuredLoopDelay();
    this.#timer = setInterval(() => this.#adjust(), this.#opts.intervalMs);
    this.#timer.unref();
  }

  /** A newly accepted socket, not reading yet: start its handshake now or queue it. */
  admit(socket: net.Socket): void {
    if (this.#inProgress.size < this.#window) {
      this.#start(socket);
      return;
    }
    if (this.#queue.length >= this.#opts.maxQueued) {
      this.#refused++;
      this.#onRefused(socket);
      return;
    }
    this.#fullSinceTick = true;
    this.#queue.push(socket);
  }

  /**
   * The handshake of `socket` ended: `completed` when it succeeded (its duration then steers the
   * window), otherwise failed or closed. Idempotent.
   */
  release(socket: net.Socket, completed = false): void {
    const startedAt = this.#inProgress.get(socket);
    if (startedAt === undefined) return;
    this.#inProgress.delete(socket);
    if (completed) {
      this.#completed++;
      this.#completedMs += this.#now() - startedAt;
    }
    this.#pump();
  }

  stats(): HandshakeStats {
    return { inProgress: this.#inProgress.size, queued: this.#queue.length, window: this.#window, refused: this.#refused };
  }

  close(): void {
    clearInterval(this.#timer);
    this.#delay.stop();
    this.#queue.clear();
  }

  #start(socket: net.Socket): void {
    this.#inProgress.set(socket, this.#now());
    if (this.#inProgress.size >= this.#window) this.#fullSinceTick = true;
    // Whatever ends the handshake, the socket closes eventually: the backstop that keeps a slot
    // from leaking. One listener function for all sockets; it stays for the socket's life.
    socket.on('close', this.#onClose);
    this.#startHandshake(socket);
  }

  #pump(): void {
    while (this.#inProgress.size < this.#window && this.#queue.length > 0) {
      const next = this.#queue.take();
      // A device that gave up while queued: no handshake to run.
      if (next && !next.destroyed) this.#start(next);
    }
  }

  /**
   * When no handshake finished this interval: how long the running ones have taken so far, a
   * lower bound of their latency (0 when none runs or no base is known yet).
   */
  #meanAgeMs(): number {
    if (this.#inProgress.size === 0 || !Number.isFinite(this.#baseLatencyMs)) return 0;
    const now = this.#now();
    let sum = 0;
    for (const startedAt of this.#inProgress.values()) sum += now - startedAt;
    return sum / this.#inProgress.size;
  }

  #adjust(): void {
    const lateMs = this.#delay.takeLateMs();
    const meanMs = this.#completed > 0 ? this.#completedMs / this.#completed : null;
    this.#completed = 0;
    this.#completedMs = 0;
    if (meanMs !== null) this.#baseLatencyMs = Math.min(this.#baseLatencyMs * BASE_LATENCY_DRIFT, meanMs);
    const slowdown = (meanMs ?? this.#meanAgeMs()) / this.#baseLatencyMs;
    if (lateMs > this.#opts.targetDelayMs) {
      this.#window = Math.max(this.#opts.minWindow, Math.floor(this.#window / 2));
    } else if (slowdown > SHRINK_ABOVE) {
      this.#window = Math.max(this.#opts.minWindow, this.#window - Math.max(1, this.#window >> 2));
    } else if (this.#fullSinceTick && slowdown < GROW_BELOW) {
      // Grow only when the window was the limit: an idle gate learns nothing about the load.
      this.#window = Math.min(this.#opts.maxWindow, this.#window + Math.max(1, this.#window >> 2));
      this.#pump();
    }
    this.#fullSinceTick = this.#inProgress.size >= this.#window && this.#queue.length > 0;
  }
}
