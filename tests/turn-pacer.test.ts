// The turn pacer (src/rollouts/turn-pacer.ts): a burst of sends is spread over turns of the
// event loop by the time its sends take (an injected clock), a lone send does not wait.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TurnPacer } from '../src/rollouts/turn-pacer.js';

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A clock that only moves when a send says it took time. */
function manualClock() {
  let t = 0;
  return { now: () => t, spend: (ms: number) => { t += ms; } };
}

test('a burst runs while the turn has time left; the rest on later turns, in order', async () => {
  const clock = manualClock();
  const pacer = new TurnPacer({ budgetMs: 5, now: clock.now });
  const sent: number[] = [];
  // Each send takes 1 ms of the (manual) clock: five fit in a turn's 5 ms.
  const all = Array.from({ length: 23 }, (_, i) => pacer.run(async () => { clock.spend(1); sent.push(i); }));
  assert.equal(sent.length, 5, 'the first turn');
  let turns = 0;
  const perTurn: number[] = [];
  while (sent.length < 23 && turns < 20) {
    const before = sent.length;
    await nextTurn();
    turns++;
    perTurn.push(sent.length - before);
  }
  assert.equal(sent.length, 23);
  assert.ok(perTurn.every((n) => n <= 5), `no later turn ran more than its budget: ${perTurn}`);
  assert.ok(turns >= 4, `${turns} more turns for the other 18`);
  assert.deepEqual(sent, [...sent].sort((a, b) => a - b));
  await Promise.all(all);
});

test('a lone send, or a few quick ones per turn, run at once', async () => {
  const clock = manualClock();
  const pacer = new TurnPacer({ budgetMs: 5, now: clock.now });
  for (let turn = 0; turn < 3; turn++) {
    let done = 0;
    for (let i = 0; i < 10; i++) void pacer.run(async () => { done++; });
    assert.equal(done, 10);
    clock.spend(100); // time passing between turns does not count against the next one
    await nextTurn();
  }
});

test('a send that throws is rejected, and the sends behind it still go', async () => {
  const clock = manualClock();
  const pacer = new TurnPacer({ budgetMs: 1, now: clock.now });
  const first = pacer.run(async () => { clock.spend(2); });
  const failing = pacer.run((): Promise<void> => { throw new Error('no key'); });
  const after = pacer.run(async () => 'sent');
  await first;
  await assert.rejects(failing, /no key/);
  assert.equal(await after, 'sent');
});

test('a loop waiting in turn() gets the rest of a turn\'s budget when it resumes, before the work queued after it', async () => {
  const clock = manualClock();
  const pacer = new TurnPacer({ budgetMs: 5, now: clock.now });
  void pacer.run(async () => { clock.spend(6); }); // this turn's budget is spent: the loop waits for a later one
  const steps: number[] = [];
  let turn = 0;
  const loop = (async () => {
    for (let i = 0; i < 12; i++) {
      const later = pacer.turn();
      if (later) await later;
      clock.spend(1);
      steps.push(turn);
    }
  })();
  // Work queued behind the waiting loop (as commands resumed by a commit, behind dispatchReady).
  const sends = Array.from({ length: 10 }, () => pacer.run(async () => { clock.spend(1); }));
  while (steps.length < 12 && turn < 100) { await nextTurn(); turn++; }
  await Promise.all([loop, ...sends]);
  const perTurn = [...new Set(steps)].map((t) => steps.filter((x) => x === t).length);
  assert.ok(perTurn.every((n) => n <= 5), `no turn ran more than its budget: ${perTurn}`);
  assert.equal(perTurn[0], 5, `the loop resumed with the whole turn's budget, not one step: ${perTurn}`);
});
