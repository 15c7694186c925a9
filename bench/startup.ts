// Start-up and memory at rest on the embedded default (PGlite): first start on an empty data
// folder, then a restart on it; time from spawn to /healthz answering 200, VmRSS once idle (after
// full garbage collections, server-probe.mjs) and the peak (VmHWM).
//
//   npx tsx bench/startup.ts [--restarts 2]     (also part of `npm run bench -- --compare`)
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensurePki } from '../certs/pki.js';
import { runsCompiled } from '../bin/entry.js';
import { ServerProcess } from './server-process.js';

export interface StartSample {
  kind: 'first start' | 'restart'; seconds: number; idleRssBytes: number; peakRssBytes: number; heapUsedBytes: number; externalBytes: number;
  /** False when the server ran the sources through tsx (dist/ older than them), which starts slower and holds more. */
  compiled: boolean;
}

/** Said of a sample that did not run the compiled build. */
export const FROM_SOURCES = 'the sources through tsx (dist/ is older than them: npm run build), not the compiled service';

export async function measureStartup(opts: { repoRoot: string; workDir: string; restarts: number; serverEnv?: Record<string, string>; serverNodeArgs?: string[] }): Promise<StartSample[]> {
  const dir = await mkdtemp(path.join(opts.workDir, 'startup-'));
  const certsDir = path.join(dir, 'certs');
  const { paths } = await ensurePki({ dir: certsDir, hostnames: ['127.0.0.1'] });
  const caPem = await readFile(paths.caCert, 'utf8');
  const samples: StartSample[] = [];
  try {
    for (let i = 0; i <= opts.restarts; i++) {
      // Checked at each start: a source saved during a long bench makes the next start run the sources.
      const compiled = runsCompiled();
      const started = performance.now();
      const server = await ServerProcess.start({
        repoRoot: opts.repoRoot, dataDir: path.join(dir, 'data'), certsDir, caPem, adminToken: `bench-startup-token-${process.pid}`,
        env: opts.serverEnv, nodeArgs: opts.serverNodeArgs,
      });
      const seconds = (performance.now() - started) / 1000;
      try {
        await sleep(2_000);
        const { memory } = await server.probe();
        samples.push({ kind: i === 0 ? 'first start' : 'restart', seconds, idleRssBytes: memory.rss, peakRssBytes: server.peakRssBytes(), heapUsedBytes: memory.heapUsed, externalBytes: memory.external, compiled });
      } finally {
        await server.stop();
      }
    }
    return samples;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function printStartup(samples: StartSample[]): void {
  const mib = (b: number) => `${(b / 1024 / 1024).toFixed(0)} MiB`;
  console.log('\nStart-up on the embedded default (PGlite): spawn → /healthz 200; memory idle after full GC');
  for (const s of samples) {
    console.log(`  ${s.kind.padEnd(11)} ${s.seconds.toFixed(2)} s (target ${s.kind === 'restart' ? '≤ 3' : '≤ 8'} s), idle RSS ${mib(s.idleRssBytes)} (target ≤ 200 MB = 190.7 MiB after a restart; JS heap ${mib(s.heapUsedBytes)}, external ${mib(s.externalBytes)}), peak ${mib(s.peakRssBytes)}${s.compiled ? '' : `; ${FROM_SOURCES}`}`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { restarts: { type: 'string', default: '2' } } });
  const repoRoot = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
  const workDir = await mkdtemp(path.join(os.tmpdir(), 'mqota-bench-startup-'));
  try {
    printStartup(await measureStartup({ repoRoot, workDir, restarts: Number(values.restarts) }));
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}
