// The handshake gate on a fake clock: node:test mock timers drive its adjustment interval and the
// handshakes' durations, and the event-loop delay is a value the test sets. Every window below is
// the one the rules give, whatever the speed of the machine running the test.
import { afterEach, beforeEach, describe, mock, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { HandshakeGate, measuredLoopDelay, type HandshakeGateOptions, type LoopDelay } from '../broker/handshake-gate.js';

/** An event-loop delay the test sets: `late` ms in every interval until changed. */
function fakeLoopDelay(): LoopDelay & { late: number } {
  return { late: 0, takeLateMs() { return this.late; }, stop() {} };
}

/** A clock for the gate that reads the mocked Date, so handshake durations follow mock.timers. */
function fakeClock() {
  return { now: () => Date.now(), loopDelay: fakeLoopDelay() };
}

/**
 * Advances the mocked time one millisecond at a time: Node 20's tick(n) runs every timer due
 * within n at the final time and leaves timers set by those callbacks for a later tick.
 */
function advance(ms: number): void {
  for (let i = 0; i < ms; i++) mock.timers.tick(1);
}

function gateWith(options: Partial<HandshakeGateOptions>, clock = fakeClock()) {
  const started: net.Socket[] = [];
  const refused: net.Socket[] = [];
  const gate = new HandshakeGate((s) => started.push(s), (s) => refused.push(s), options, clock);
  return { gate, started, refused, clock };
}

test('the gate runs a window of handshakes, queues the rest in order, skips the dead and refuses a flood', () => {
  const { gate, started, refused } = gateWith({ minWindow: 2, maxWindow: 2, maxQueued: 2 });
  try {
    const sockets = Array.from({ length: 5 }, () => new net.Socket());
    for (const s of sockets) gate.admit(s);
    assert.deepEqual(started, sockets.slice(0, 2));
    assert.deepEqual(refused, [sockets[4]]);
    assert.deepEqual(gate.stats(), { inProgress: 2, queued: 2, window: 2, refused: 1 });

    sockets[2].destroy(); // gave up while waiting
    gate.release(sockets[0]);
    assert.deepEqual(started, [sockets[0], sockets[1], sockets[3]]);
    gate.release(sockets[0]); // a second release of the same socket frees nothing
    assert.equal(gate.stats().inProgress, 2);
    assert.equal(gate.stats().queued, 0);
  } finally {
    gate.close();
  }
});

test('a socket that closes mid-handshake gives its slot back', async () => {
  const { gate, started } = gateWith({ minWindow: 1, maxWindow: 1 });
  try {
    const [a, b] = [new net.Socket(), new net.Socket()];
    gate.admit(a);
    gate.admit(b);
    assert.deepEqual(started, [a]);
    const closed = new Promise((resolve) => a.once('close', resolve));
    a.destroy();
    await closed; // the gate's own 'close' listener ran before this one
    assert.deepEqual(started, [a, b]);
  } finally {
    gate.close();
  }
});

test('the real event-loop delay measure sees a loop kept busy', async () => {
  const delay = measuredLoopDelay();
  try {
    delay.takeLateMs();
    for (let i = 0; i < 10; i++) {
      // Busy for 30 ms, then one turn of the loop: every sample taken meanwhile is at least that late.
      const until = performance.now() + 30;
      while (performance.now() < until) { /* what a burst of ECDSA work does to the loop */ }
      await sleep(1);
    }
    const late = delay.takeLateMs();
    assert.ok(late >= 20, `the loop was late by ${late} ms, it was blocked 30 ms at a time`);
  } finally {
    delay.stop();
  }
});

describe('on mocked timers', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: 0 }));
  afterEach(() => mock.timers.reset());

  test('the window halves while the event loop runs late and grows back by quarters while it keeps up', () => {
    const { gate, clock } = gateWith({ minWindow: 2, maxWindow: 64, targetDelayMs: 10, intervalMs: 50 });
    try {
      for (let i = 0; i < 200; i++) gate.admit(new net.Socket()); // full, with a queue; none completes
      const windows = () => { advance(50); return gate.stats().window; };
      assert.equal(gate.stats().window, 16);
      clock.loopDelay.late = 30; // above the 10 ms target at every adjustment
      assert.deepEqual([windows(), windows(), windows(), windows()], [8, 4, 2, 2]);
      clock.loopDelay.late = 0; // the loop keeps up and the window is the limit: it grows
      assert.deepEqual([windows(), windows(), windows(), windows(), windows(), windows(), windows()], [3, 4, 5, 6, 7, 8, 10]);
      clock.loopDelay.late = 11;
      assert.equal(windows(), 5);
    } finally {
      gate.close();
    }
  });

  test('an idle gate does not grow: only a window that was the limit learns about the load', () => {
    const { gate } = gateWith({ minWindow: 2, maxWindow: 64, intervalMs: 50 });
    try {
      gate.admit(new net.Socket());
      advance(500);
      assert.equal(gate.stats().window, 16);
    } finally {
      gate.close();
    }
  });
});

/**
 * A gate whose handshakes complete by themselves, on the mocked clock, after
 * `durationMs(inProgress)`: a constant for handshakes bound by the network, growing with the
 * number in flight for ones bound by this host.
 */
function selfCompletingGate(durationMs: (inProgress: number) => number, options: Partial<HandshakeGateOptions>) {
  let gate!: HandshakeGate;
  gate = new HandshakeGate((s) => {
    setTimeout(() => gate.release(s, true), durationMs(gate.stats().inProgress));
  }, () => undefined, { minWindow: 2, maxWindow: 64, targetDelayMs: 1_000, intervalMs: 50, ...options }, fakeClock());
  for (let i = 0; i < 5_000; i++) gate.admit(new net.Socket());
  return gate;
}

describe('handshakes that complete on mocked timers', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: 0 }));
  afterEach(() => mock.timers.reset());

  test('handshakes bound by the network (same duration however many run) let the window grow to its maximum', () => {
    const gate = selfCompletingGate(() => 30, {});
    try {
      advance(1_500);
      assert.equal(gate.stats().window, 64);
      assert.ok(gate.stats().inProgress > 16, 'the wider window is used');
    } finally {
      gate.close();
    }
  });

  test('handshakes that get slower as more run (bound by this host) stop the window growing', () => {
    // 5 ms of this host's time per handshake in flight: at the initial window of 16, 80 ms each.
    const gate = selfCompletingGate((n) => 5 * n, {});
    try {
      const seen: number[] = [];
      for (let t = 0; t < 30; t++) { advance(50); seen.push(gate.stats().window); }
      assert.ok(Math.max(...seen) <= 25, `windows ${seen}: latency grew with it, so it should have stopped near 16`);
      assert.ok(Math.min(...seen) >= 2, `windows ${seen}`);
    } finally {
      gate.close();
    }
  });

  test('handshakes that become much slower than the base latency shrink the window', () => {
    let durationMs = 20;
    const gate = selfCompletingGate(() => durationMs, { maxWindow: 32 });
    try {
      advance(800);
      assert.equal(gate.stats().window, 32, 'grown while handshakes were fast');
      durationMs = 100; // five times the base: waiting inside this host
      advance(800);
      const { window } = gate.stats();
      assert.ok(window < 16, `window ${window} should have shrunk by quarters from 32`);
    } finally {
      gate.close();
    }
  });
});
