// The throwaway PostgreSQL cluster of the tests and benchmarks (support/postgres-cluster.ts) must
// not outlive the process that started it, also when that process is killed and runs no exit
// hook: a crashed or timed-out test file would otherwise leave a postmaster on its port.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { collectLines } from './support/child-process.js';
import { eventually } from './support/eventually.js';
import { accepts } from './support/postgres-cluster.js';

const STARTER = `
import { startPostgresCluster } from './tests/support/postgres-cluster.ts';
const cluster = await startPostgresCluster({ fsync: false });
console.log('URL ' + cluster.adminUrl);
console.log('DIR ' + cluster.dir);
setInterval(() => {}, 60_000);
`;

test('a killed process takes its throwaway PostgreSQL cluster with it', { timeout: 120_000 }, async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', STARTER], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  let url: string | undefined;
  let dir: string | undefined;
  try {
    collectLines(child.stdout!, (line) => {
      if (line.startsWith('URL ')) url = line.slice(4);
      if (line.startsWith('DIR ')) dir = line.slice(4);
    });
    await eventually(() => (url && dir) ?? (child.exitCode !== null ? Promise.reject(new Error('the starter exited')) : null), 60_000, 'the cluster to start');
    assert.equal(await accepts(url!), true, 'the cluster serves while its owner runs');

    child.kill('SIGKILL'); // no exit hook runs
    await exited;
    await eventually(async () => !(await accepts(url!)), 60_000, 'the postmaster to shut down after its owner was killed');
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    // The killed owner could not delete its cluster's folder; the postmaster is gone by now.
    if (dir) await rm(dir, { recursive: true, force: true });
  }
});
