// The heap setting mqota applies at start (src/heap-tuning.ts), and the operator's way around it.
// Its effect is measured where it shows, in `npm run bench`: full collections per phase.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tuneHeap } from '../src/heap-tuning.js';

test('an operator who sets --heap-growing-percent on the command line keeps it; 0 leaves V8 alone', () => {
  assert.equal(tuneHeap(100, ['--heap-growing-percent=50']), 'command line');
  assert.equal(tuneHeap(100, ['--inspect', '--heap_growing_percent=50']), 'command line');
  assert.equal(tuneHeap(100, ['--heap-growing-percent-typo=50']), 'mqota');
  assert.equal(tuneHeap(100, []), 'mqota');
  assert.equal(tuneHeap(0, []), 'v8');
});

