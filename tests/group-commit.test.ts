// The group commit's rules, driven by a fake clock and a sink that records batches: no timing
// decides any assertion. A write lands at once, writes within the floor share one commit, flush()
// skips the floor, a failing commit is retried until it succeeds (nothing dropped, order kept),
// and past the backlog bound room() waits until the backlog has landed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { GroupCommit, type BatchSink } from '../src/db/group-commit.js';

const log = pino({ level: 'silent' });

/** A clock and timers that move only when the test says so. */
function fakeTime() {
  let now = 0;
  let timers: Array<{ at: number; fn: () => void }> = [];
  return {
    now: () => now,
    setTimer: (fn: () => void, ms: number) => { const t = { at: now + ms, fn }; timers.push(t); return t; },
    clearTimer: (t: unknown) => { timers = timers.filter((x) => x !== t); },
    async advance(ms: number) {
      now += ms;
      const due = timers.filter((t) => t.at <= now);
      timers = timers.filter((t) => t.at > now);
      for (const t of due) t.fn();
      await settle();
    },
  };
}

/** Lets promise callbacks and setImmediate callbacks run. */
async function settle() {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

function recordingSink(fail: () => boolean = () => false): BatchSink<string[]> & { committed: string[][] } {
  const committed: string[][] = [];
  return {
    committed,
    create: () => [],
    rows: (b) => b.length,
    commit: async (b) => {
      if (fail()) throw new Error('connection refused');
      committed.push([...b]);
    },
  };
}

test('a write lands at once; writes within the floor share the next commit', async () => {
  const time = fakeTime();
  const sink = recordingSink();
  const q = new GroupCommit(sink, log, { minIntervalMs: 25, floorFromRows: 1, ...time });
  const first = q.add((b) => b.push('a'));
  await settle();
  await first;
  assert.deepEqual(sink.committed, [['a']]);

  let landed = false;
  const burst = Promise.all([q.add((b) => b.push('b')), q.add((b) => b.push('c'))]).then(() => { landed = true; });
  await settle();
  assert.equal(landed, false, 'the floor holds the second batch');
  assert.deepEqual(sink.committed, [['a']]);
  await time.advance(25);
  await burst;
  assert.deepEqual(sink.committed, [['a'], ['b', 'c']]);
  assert.equal(q.commits, 2);
});

test('the floor holds a batch only after one that showed load: a device alone is not kept waiting', async () => {
  const time = fakeTime();
  const sink = recordingSink();
  const q = new GroupCommit(sink, log, { minIntervalMs: 25, floorFromRows: 3, ...time });
  await q.add((b) => b.push('a'));
  await q.add((b) => b.push('b')); // right after a batch of one: no floor
  assert.deepEqual(sink.committed, [['a'], ['b']]);
  const big = q.add((b) => b.push('c', 'd', 'e'));
  await big;
  let landed = false;
  const after = q.add((b) => b.push('f')).then(() => { landed = true; });
  await settle();
  assert.equal(landed, false, 'after a batch of three the floor applies');
  await time.advance(25);
  await after;
  assert.deepEqual(sink.committed, [['a'], ['b'], ['c', 'd', 'e'], ['f']]);
});

test('flush() starts what is gathering without waiting for the floor', async () => {
  const time = fakeTime();
  const sink = recordingSink();
  const q = new GroupCommit(sink, log, { minIntervalMs: 60_000, floorFromRows: 1, ...time });
  await settle();
  await Promise.all([q.add((b) => b.push('a')), settle()]);
  const queued = q.add((b) => b.push('b'));
  await settle();
  assert.deepEqual(sink.committed, [['a']]);
  await q.flush();
  await queued;
  assert.deepEqual(sink.committed, [['a'], ['b']]);
});

test('a failing commit is retried with back-off until the database answers; nothing is dropped and order is kept', async () => {
  const time = fakeTime();
  let down = true;
  const sink = recordingSink(() => down);
  const q = new GroupCommit(sink, log, { minIntervalMs: 0, retryDelayMs: { initial: 50, max: 400 }, ...time });
  const first = q.add((b) => b.push('a'));
  await settle();
  assert.equal(q.health().ok, false);
  assert.match(q.health().reason!, /failing since .*connection refused/);
  const second = q.add((b) => b.push('b')); // gathers while the first is retried
  for (let i = 0; i < 30; i++) await time.advance(400); // far beyond any give-up limit the old queue had
  assert.deepEqual(sink.committed, []);
  assert.ok(q.failures >= 10, `retried ${q.failures} times`);
  assert.equal(q.backlogRows, 2);
  down = false;
  await time.advance(400);
  await Promise.all([first, second]);
  await settle();
  assert.deepEqual(sink.committed, [['a'], ['b']]);
  assert.equal(q.health().ok, true);
  assert.equal(q.backlogRows, 0);
});

test('past the backlog bound room() waits, and resolves once the backlog has landed', async () => {
  const time = fakeTime();
  let down = true;
  const sink = recordingSink(() => down);
  const q = new GroupCommit(sink, log, { minIntervalMs: 0, maxBacklogRows: 3, retryDelayMs: { initial: 10, max: 10 }, ...time });
  await q.room(); // empty: room at once
  void q.add((b) => b.push('a', 'b'));
  await settle();
  await q.room(); // 2 of 3
  void q.add((b) => b.push('c'));
  let admitted = false;
  const waiting = q.room().then(() => { admitted = true; });
  await time.advance(10);
  assert.equal(admitted, false);
  assert.equal(q.saturated, true);
  assert.match(q.health().reason!, /failing/);
  down = false;
  await time.advance(10);
  await time.advance(10);
  await waiting;
  assert.equal(admitted, true);
  assert.deepEqual(sink.committed.flat(), ['a', 'b', 'c']);
});
