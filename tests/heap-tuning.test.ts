// The heap setting mqota applies at start (src/heap-tuning.ts), and the operator's way around it.
// Its effect is measured where it shows, in `npm run bench`: full collections per phase.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { accountExternalMemory, EXTERNAL_MEMORY_FLAG, START_NODE_ARGS, tuneHeap } from '../src/heap-tuning.js';

test('an operator who sets --heap-growing-percent on the command line keeps it; 0 leaves V8 alone', () => {
  assert.equal(tuneHeap(100, ['--heap-growing-percent=50']), 'command line');
  assert.equal(tuneHeap(100, ['--inspect', '--heap_growing_percent=50']), 'command line');
  assert.equal(tuneHeap(100, ['--heap-growing-percent-typo=50']), 'mqota');
  assert.equal(tuneHeap(100, []), 'mqota');
  assert.equal(tuneHeap(0, []), 'v8');
});

test('external memory counts in V8\'s global limit where this V8 has the switch, not with MQOTA_HEAP_GROWING_PERCENT=0 nor over the operator\'s own flag', async () => {
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  // Node 20 and 22 (V8 11, 12) lack the flag; 0 means V8's own heuristics, so nothing is set.
  assert.equal(accountExternalMemory(100, '11.3.244.8-node.38', []), 'unsupported');
  assert.equal(accountExternalMemory(100, '12.4.254.21-node.57', []), 'unsupported');
  assert.equal(accountExternalMemory(0, '13.6.233.17-node.63', []), 'v8');
  // The operator's own setting on the command line, either way, is kept.
  assert.equal(accountExternalMemory(100, '13.6.233.17-node.63', ['--no-external-memory-accounted-in-global-limit']), 'command line');
  assert.equal(accountExternalMemory(100, '13.6.233.17-node.63', ['--external_memory_accounted_in_global_limit']), 'command line');
  // On this runtime it is applied exactly when its V8 knows the flag (Node 24: yes; Node 20: no).
  const known = (await promisify(execFile)(process.execPath, ['--v8-options'], { maxBuffer: 16 * 1024 * 1024 })).stdout.includes(EXTERNAL_MEMORY_FLAG);
  assert.equal(accountExternalMemory(100, process.versions.v8, []), known ? 'mqota' : 'unsupported');
});

test('npm start, the container and the bench\'s server all give node the young generation\'s size and one GC helper', async () => {
  const { readFile } = await import('node:fs/promises');
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };
  const dockerfile = await readFile(new URL('../Dockerfile', import.meta.url), 'utf8');
  const launcher = await readFile(new URL('../bin/start.sh', import.meta.url), 'utf8');
  // npm start and the container both run the launcher, and it gives node these flags.
  assert.equal(pkg.scripts.start, 'sh bin/start.sh');
  assert.match(dockerfile, /^CMD \["sh", "bin\/start\.sh"\]$/m);
  const nodeLine = launcher.split('\n').find((l) => l.startsWith('exec node '));
  for (const arg of START_NODE_ARGS) assert.ok(nodeLine?.split(' ').includes(arg), `bin/start.sh: ${nodeLine}`);
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

test('the launcher preloads jemalloc when it is installed, and not when told MQOTA_ALLOCATOR=glibc or given an LD_PRELOAD', { skip: process.platform !== 'linux' }, async () => {
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const { mkdtemp, writeFile, copyFile, rm } = await import('node:fs/promises');
  const os = await import('node:os');
  const path = await import('node:path');
  // The launcher with a stand-in start.js that prints what the allocator setting came to.
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mqota-launcher-'));
  try {
    for (const f of ['start.sh', 'jemalloc.sh']) await copyFile(new URL(`../bin/${f}`, import.meta.url), path.join(dir, f));
    await writeFile(path.join(dir, 'start.js'), "console.log(JSON.stringify({ preload: process.env.LD_PRELOAD ?? '', conf: process.env.MALLOC_CONF ?? '', args: process.execArgv }))");
    const run = async (env: Record<string, string>) => JSON.parse((await promisify(execFile)('sh', [path.join(dir, 'start.sh')], { env: { PATH: process.env.PATH!, ...env } })).stdout) as { preload: string; conf: string; args: string[] };
    const [installed = '', conf = ''] = (await promisify(execFile)('sh', [path.join(dir, 'jemalloc.sh')])).stdout.trim().split('\n');
    const chosen = await run({});
    assert.deepEqual([chosen.preload, chosen.conf], [installed, conf]); // both '' where libjemalloc2 is not installed
    if (installed) assert.match(conf, /background_thread:true/);
    assert.deepEqual(chosen.args, [...START_NODE_ARGS]);
    assert.deepEqual(await run({ MQOTA_ALLOCATOR: 'glibc' }), { preload: '', conf: '', args: [...START_NODE_ARGS] });
    assert.equal((await run({ LD_PRELOAD: '/nonexistent-but-kept.so' })).preload, '/nonexistent-but-kept.so');
    if (installed) assert.equal((await run({ MALLOC_CONF: 'narenas:1' })).conf, 'narenas:1');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
