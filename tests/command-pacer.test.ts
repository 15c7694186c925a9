// The command pacer (src/rollouts/command-pacer.ts): a burst of sends is spread over turns of the
// event loop, a lone send does not wait.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CommandPacer } from '../src/rollouts/command-pacer.js';

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

test('a burst goes out perTurn at a time, one turn of the event loop apart, in order', async () => {
  const pacer = new CommandPacer(100);
  const sent: number[] = [];
  const all = Array.from({ length: 250 }, (_, i) => pacer.slot().then(() => { sent.push(i); }));
  await Promise.resolve();
  await Promise.resolve();
  assert.equal(sent.length, 100, 'the first turn');
  let turns = 0;
  while (sent.length < 250 && turns < 10) { await nextTurn(); turns++; }
  assert.equal(sent.length, 250);
  assert.ok(turns >= 2, `${turns} more turns for the other 150`);
  assert.deepEqual(sent, [...sent].sort((a, b) => a - b));
  await Promise.all(all);
});

test('a lone send, or a few per turn, never waits', async () => {
  const pacer = new CommandPacer(100);
  for (let turn = 0; turn < 3; turn++) {
    let done = 0;
    for (let i = 0; i < 10; i++) void pacer.slot().then(() => { done++; });
    await Promise.resolve();
    await Promise.resolve();
    assert.equal(done, 10);
    await nextTurn();
  }
});
