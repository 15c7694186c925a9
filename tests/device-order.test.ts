// oneAtATimePerDevice (src/device-link/device-order.ts): one device's messages run one after
// another in arrival order, different devices side by side, and a message whose predecessor
// failed is not run. Driven by promises the test resolves itself: nothing waits for time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DeviceMessage } from '../broker/index.js';
import { oneAtATimePerDevice } from '../src/device-link/device-order.js';

/** A handler whose calls the test finishes one by one. */
function controlledHandler() {
  const started: string[] = [];
  const finish = new Map<string, { resolve: () => void; reject: (err: Error) => void }>();
  const handler = (m: DeviceMessage) => new Promise<void>((resolve, reject) => {
    const name = m.payload.toString();
    started.push(name);
    finish.set(name, { resolve, reject });
  });
  return { started, finish: (name: string) => finish.get(name)!, handler };
}

const message = (deviceId: string, name: string): DeviceMessage => ({ deviceId, kind: 'status', payload: Buffer.from(name) });
/** A marker after every pending promise reaction: what has not started by then was held back, not slow. */
const afterPendingReactions = () => new Promise((resolve) => setImmediate(resolve));

test('a device\'s next message starts only once the one before it finished, in arrival order', async () => {
  const c = controlledHandler();
  const handle = oneAtATimePerDevice(c.handler);
  const done: string[] = [];
  const runs = ['a1', 'a2', 'a3'].map((name) => handle(message('a', name)).then(() => { done.push(name); }));
  assert.deepEqual(c.started, ['a1'], 'the first message of a device at rest starts at once');
  await afterPendingReactions();
  assert.deepEqual(c.started, ['a1'], 'a2 waits for a1');
  c.finish('a1').resolve();
  await runs[0]; // a1's end starts a2 before it reaches this
  assert.deepEqual(c.started, ['a1', 'a2']);
  c.finish('a2').resolve();
  await runs[1];
  assert.deepEqual(c.started, ['a1', 'a2', 'a3']);
  c.finish('a3').resolve();
  await Promise.all(runs);
  assert.deepEqual(c.started, ['a1', 'a2', 'a3']);
  assert.deepEqual(done, ['a1', 'a2', 'a3']);
});

test('different devices are handled side by side', async () => {
  const c = controlledHandler();
  const handle = oneAtATimePerDevice(c.handler);
  const runs = [handle(message('a', 'a1')), handle(message('b', 'b1')), handle(message('a', 'a2'))];
  assert.deepEqual(c.started, ['a1', 'b1']);
  c.finish('b1').resolve();
  await runs[1];
  assert.deepEqual(c.started, ['a1', 'b1'], 'b finishing does not start a\'s next message');
  c.finish('a1').resolve();
  await runs[0];
  c.finish('a2').resolve();
  await Promise.all(runs);
  assert.deepEqual(c.started, ['a1', 'b1', 'a2']);
});

test('a message behind one that failed is not handled, and the device\'s next message afterwards is', async () => {
  const c = controlledHandler();
  const handle = oneAtATimePerDevice(c.handler);
  const first = handle(message('a', 'a1'));
  const second = handle(message('a', 'a2'));
  c.finish('a1').reject(new Error('commit failed'));
  await assert.rejects(first, /commit failed/);
  await assert.rejects(second, /commit failed/);
  assert.deepEqual(c.started, ['a1'], 'a2 was not handled: the device sends both again, in order');
  const later = handle(message('a', 'a1 again'));
  assert.deepEqual(c.started, ['a1', 'a1 again'], 'the device at rest again: handled at once');
  c.finish('a1 again').resolve();
  await later;
});
