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
