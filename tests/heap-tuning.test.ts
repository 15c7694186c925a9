// The heap setting mqota applies at start (src/heap-tuning.ts), and the operator's way around it.
// Its effect is measured where it shows, in `npm run bench`: full collections per phase.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { START_NODE_ARGS, tuneHeap } from '../src/heap-tuning.js';

test('an operator who sets --heap-growing-percent on the command line keeps it; 0 leaves V8 alone', () => {
  assert.equal(tuneHeap(100, ['--heap-growing-percent=50']), 'command line');
  assert.equal(tuneHeap(100, ['--inspect', '--heap_growing_percent=50']), 'command line');
  assert.equal(tuneHeap(100, ['--heap-growing-percent-typo=50']), 'mqota');
  assert.equal(tuneHeap(100, []), 'mqota');
  assert.equal(tuneHeap(0, []), 'v8');
});


test('npm start, the container and the bench\'s server all give node the young generation\'s size and one GC helper', async () => {
  const { readFile } = await import('node:fs/promises');
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };
  const dockerfile = await readFile(new URL('../Dockerfile', import.meta.url), 'utf8');
  for (const arg of START_NODE_ARGS) {
    assert.ok(pkg.scripts.start!.split(' ').includes(arg), `npm start: ${pkg.scripts.start}`);
    assert.match(dockerfile, new RegExp(`^CMD \\[.*"${arg}"`, 'm'));
  }
  // And V8 takes it: after the same allocations, 16 MiB of new space by default, 4 MiB so.
  const script = "let a = []; for (let i = 0; i < 3e5; i++) a.push({ i }); a = null; console.log(require('v8').getHeapSpaceStatistics().find((x) => x.space_name === 'new_space').space_size)";
  const { stdout } = await promisify(execFile)(process.execPath, [...START_NODE_ARGS, '-e', script]);
  assert.ok(Number(stdout) <= 4 * 1024 * 1024, `new space ${stdout.trim()} bytes`);
  // And Node starts fewer of V8's platform threads: 1 helper instead of 4.
  if (process.platform === 'linux') {
    const threads = async (args: readonly string[]) => Number((await promisify(execFile)(process.execPath, [...args, '-e', "console.log(require('fs').readdirSync('/proc/self/task').length)"])).stdout);
    assert.equal(await threads([]) - await threads(START_NODE_ARGS), 3);
  }
});
