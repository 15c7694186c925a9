import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { HandshakeGate } from '../broker/handshake-gate.js';

function gateWith(options: ConstructorParameters<typeof HandshakeGate>[2]) {
  const started: net.Socket[] = [];
  const refused: net.Socket[] = [];
  const gate = new HandshakeGate((s) => started.push(s), (s) => refused.push(s), options);
  return { gate, started, refused };
}

function blockEventLoop(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // busy: what a burst of ECDSA work does to the loop
  }
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
    a.destroy();
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(started, [a, b]);
  } finally {
    gate.close();
  }
});

test('the window halves while the event loop runs late and grows back while it keeps up', async () => {
  const { gate } = gateWith({ minWindow: 2, maxWindow: 64, targetDelayMs: 10, intervalMs: 50 });
  try {
    const initial = gate.stats().window;
    for (let i = 0; i < 200; i++) gate.admit(new net.Socket()); // full, with a queue
    // Half a second of a loop that never catches up: every adjustment sees it late.
    const until = Date.now() + 500;
    while (Date.now() < until) {
      blockEventLoop(30);
      await new Promise((resolve) => setImmediate(resolve));
    }
    const narrowed = gate.stats().window;
    assert.ok(initial > 2);
    assert.equal(narrowed, 2, `window ${narrowed} should have halved from ${initial} down to its minimum`);

    await sleep(600); // the loop is idle, the window full: it grows
    const widened = gate.stats().window;
    assert.ok(widened > narrowed, `window ${widened} should grow past ${narrowed}`);
    assert.ok(widened <= 64);
  } finally {
    gate.close();
  }
});

/**
 * A gate whose handshakes complete by themselves after `durationMs(inProgress)`: a constant for
 * handshakes bound by the network, growing with the number in flight for ones bound by this host.
 */
function selfCompletingGate(durationMs: (inProgress: number) => number, options: ConstructorParameters<typeof HandshakeGate>[2]) {
  let gate!: HandshakeGate;
  const timers = new Set<NodeJS.Timeout>();
  gate = new HandshakeGate((s) => {
    const t = setTimeout(() => { timers.delete(t); gate.release(s, true); }, durationMs(gate.stats().inProgress));
    timers.add(t);
  }, () => undefined, { minWindow: 2, maxWindow: 64, targetDelayMs: 1_000, intervalMs: 50, ...options });
  for (let i = 0; i < 5_000; i++) gate.admit(new net.Socket());
  return { gate, close: () => { for (const t of timers) clearTimeout(t); gate.close(); } };
}

test('handshakes bound by the network (same duration however many run) let the window grow to its maximum', async () => {
  const { gate, close } = selfCompletingGate(() => 30, {});
  try {
    await sleep(1_500);
    assert.equal(gate.stats().window, 64);
  } finally {
    close();
  }
});

test('handshakes that get slower as more run (bound by this host) stop the window growing', async () => {
  // 5 ms of this host's time per handshake in flight: at the initial window of 16, 80 ms each.
  const { gate, close } = selfCompletingGate((n) => 5 * n, {});
  try {
    await sleep(1_500);
    const { window } = gate.stats();
    assert.ok(window <= 25, `window ${window}: latency grew with it, so it should have stopped near 16`);
  } finally {
    close();
  }
});

test('handshakes that become much slower than the base latency shrink the window', async () => {
  let durationMs = 20;
  const { gate, close } = selfCompletingGate(() => durationMs, { maxWindow: 32 });
  try {
    await sleep(800);
    assert.equal(gate.stats().window, 32, 'grown while handshakes were fast');
    durationMs = 100; // five times the base: waiting inside this host
    await sleep(800);
    const { window } = gate.stats();
    assert.ok(window < 16, `window ${window} should have shrunk by quarters from 32`);
  } finally {
    close();
  }
});
