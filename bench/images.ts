// Images over HTTPS, nginx beside mqota: the same 1.5 MB file, the same server certificate, the
// same `wrk -t1 -c100 -d10s` with a bearer token, which mqota checks on every request (its image
// route's token path; nginx compares the header). Runs alternate (nginx, mqota, nginx, ...) so
// both see the same machine; each run's ratio is mqota / the nginx run before it.
//
//   npx tsx bench/images.ts [--runs 3] [--seconds 10] [--connections 100] [--nginx-workers auto]
//   (also part of `npm run bench -- --compare`)
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ensurePki } from '../certs/pki.js';
import { ApiClient } from '../src/cli/api-client.js';
import { buildEspAppImage } from '../src/firmware/test-image.js';
import { findBinary, startNginx, versionOf } from './anchors.js';
import { treeCpuMs } from './machine.js';
import { ServerProcess } from './server-process.js';

export interface WrkResult {
  requestsPerSecond: number;
  bytesPerSecond: number;
  /** Responses other than 2xx/3xx, and socket errors: must be 0 for the figure to count. */
  errors: number;
  /** Requests wrk gave up on after its 2 s timeout (still being sent: a slow server, not a failure). */
  timeouts: number;
  latencyP99Ms: number | null;
  /** CPU the server used during the run, % of one core. */
  serverCpuPercent: number;
}

export interface ImageComparison {
  skipped: string | null;
  nginxVersion: string;
  imageBytes: number;
  nginxWorkers: number | 'auto';
  /** ratio: mqota's bytes/s over nginx's; cpuRatio: the same per CPU-second each server used (steadier on a busy machine). */
  runs: { nginx: WrkResult; mqota: WrkResult; ratio: number; cpuRatio: number }[];
}

const IMAGE_PAYLOAD_BYTES = 1_500_000;

export async function compareImages(opts: {
  repoRoot: string; workDir: string; runs: number; seconds: number; connections: number; nginxWorkers: number | 'auto';
  serverEnv?: Record<string, string>; serverNodeArgs?: string[]; cpuProfileDir?: string;
}): Promise<ImageComparison> {
  const nginxBin = findBinary('nginx');
  const wrkBin = findBinary('wrk');
  const empty = { nginxVersion: '', imageBytes: 0, nginxWorkers: opts.nginxWorkers, runs: [] };
  if (!nginxBin || !wrkBin) return { ...empty, skipped: `images: ${[!nginxBin && 'nginx', !wrkBin && 'wrk'].filter(Boolean).join(' and ')} not installed (apt-get install nginx-light wrk)` };
  const dir = await mkdtemp(path.join(opts.workDir, 'images-'));
  const certsDir = path.join(dir, 'certs');
  const { paths } = await ensurePki({ dir: certsDir, hostnames: ['127.0.0.1'] });
  const caPem = await readFile(paths.caCert, 'utf8');
  const token = `bench-images-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const image = buildEspAppImage({ projectName: 'bench-image', version: '1.0.0', payloadBytes: IMAGE_PAYLOAD_BYTES });
  const file = path.join(dir, 'image.bin');
  await writeFile(file, image);

  const server = await ServerProcess.start({
    repoRoot: opts.repoRoot, dataDir: path.join(dir, 'data'), certsDir, caPem, adminToken: token,
    env: opts.serverEnv, nodeArgs: opts.serverNodeArgs, cpuProfileDir: opts.cpuProfileDir,
  });
  let nginx: Awaited<ReturnType<typeof startNginx>> | null = null;
  try {
    const api = new ApiClient({ baseUrl: server.publicUrl, token, caPem });
    const fw = await api.uploadFirmware<{ sha256: string; size: number }>(file, {});
    await api.close();
    const name = `${fw.sha256}.bin`;
    await mkdir(path.join(dir, 'www', 'firmware'), { recursive: true });
    await writeFile(path.join(dir, 'www', 'firmware', name), image);
    nginx = await startNginx({ binary: nginxBin, workDir: dir, certsDir, root: path.join(dir, 'www'), token, workers: opts.nginxWorkers });

    const wrk = (url: string, cpuMs: () => number) => runWrk(wrkBin, url, token, opts, cpuMs);
    const nginxUrl = `https://127.0.0.1:${nginx.port}/firmware/${name}`;
    const mqotaUrl = `${server.publicUrl}/firmware/${name}`;
    const nginxPids = () => treeCpuMs(nginx!.pid); // master and workers
    // One short warm-up each: TLS session state, JIT, mqota's first reads.
    await runWrk(wrkBin, nginxUrl, token, { ...opts, seconds: 2 }, nginxPids);
    await runWrk(wrkBin, mqotaUrl, token, { ...opts, seconds: 2 }, () => server.cpuMs());
    const runs: ImageComparison['runs'] = [];
    for (let i = 0; i < opts.runs; i++) {
      const n = await wrk(nginxUrl, nginxPids);
      const m = await wrk(mqotaUrl, () => server.cpuMs());
      const perCpu = (r: WrkResult) => (r.serverCpuPercent ? r.bytesPerSecond / r.serverCpuPercent : 0);
      runs.push({ nginx: n, mqota: m, ratio: n.bytesPerSecond ? m.bytesPerSecond / n.bytesPerSecond : 0, cpuRatio: perCpu(n) ? perCpu(m) / perCpu(n) : 0 });
    }
    console.log(`  mqota peak RSS ${(server.peakRssBytes() / 1024 / 1024).toFixed(0)} MiB`);
    return { skipped: null, nginxVersion: versionOf(nginxBin, ['-v']), imageBytes: image.length, nginxWorkers: opts.nginxWorkers, runs };
  } finally {
    await nginx?.stop();
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}


async function runWrk(bin: string, url: string, token: string, opts: { seconds: number; connections: number }, cpuMs: () => number): Promise<WrkResult> {
  const cpuBefore = cpuMs();
  const started = performance.now();
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn(bin, ['-t1', `-c${opts.connections}`, `-d${opts.seconds}s`, '--latency', '-H', `Authorization: Bearer ${token}`, url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (d) => { text += d; });
    child.stderr.on('data', (d) => { text += d; });
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`wrk exited ${code}: ${text}`))));
  });
  const elapsed = performance.now() - started;
  const serverCpuPercent = ((cpuMs() - cpuBefore) / elapsed) * 100;
  const num = (re: RegExp) => { const m = re.exec(out); return m ? Number(m[1]) : 0; };
  const unit = (n: number, u: string) => n * ({ '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[u.replace(/B$/, '')] ?? 1);
  const transfer = /Transfer\/sec:\s+([\d.]+)([KMG]?B)/.exec(out);
  const p99 = /^\s+99%\s+([\d.]+)(us|ms|s)/m.exec(out);
  const errors = num(/Non-2xx or 3xx responses:\s+(\d+)/) + [...out.matchAll(/(connect|read|write) (\d+)/g)].reduce((s, m) => s + Number(m[2]), 0);
  return {
    requestsPerSecond: num(/Requests\/sec:\s+([\d.]+)/),
    bytesPerSecond: transfer ? unit(Number(transfer[1]), transfer[2]) : 0,
    errors,
    timeouts: num(/timeout (\d+)/),
    latencyP99Ms: p99 ? Number(p99[1]) * ({ us: 0.001, ms: 1, s: 1000 }[p99[2]] ?? 1) : null,
    serverCpuPercent: Math.round(serverCpuPercent),
  };
}

export function printImageComparison(c: ImageComparison): void {
  console.log('\nImages: 1.5 MB over HTTPS, wrk -t1 -c100, bearer token checked');
  if (c.skipped) { console.log(`  skipped: ${c.skipped}`); return; }
  const mb = (b: number) => `${(b / 1024 / 1024).toFixed(0)} MB/s`;
  const line = (r: WrkResult) => `${mb(r.bytesPerSecond)} (${r.requestsPerSecond.toFixed(0)} req/s, p99 ${r.latencyP99Ms} ms, server CPU ${r.serverCpuPercent} %, ${(r.bytesPerSecond / 1024 / 1024 / (r.serverCpuPercent / 100)).toFixed(0)} MB per CPU-second${r.errors ? `, ${r.errors} ERRORS` : ''}${r.timeouts ? `, ${r.timeouts} wrk timeouts` : ''})`;
  console.log(`  ${c.nginxVersion}, worker_processes ${c.nginxWorkers}; image ${c.imageBytes} bytes`);
  for (const [i, r] of c.runs.entries()) {
    console.log(`  run ${i + 1}: nginx ${line(r.nginx)}\n         mqota ${line(r.mqota)}\n         mqota / nginx ${r.ratio.toFixed(2)}× throughput, ${r.cpuRatio.toFixed(2)}× per CPU-second`);
  }
  const spread = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return `median ${s[Math.floor(s.length / 2)].toFixed(2)}×, spread ${s[0].toFixed(2)}–${s[s.length - 1].toFixed(2)}×`; };
  if (c.runs.length) {
    console.log(`  mqota / nginx throughput: ${spread(c.runs.map((r) => r.ratio))} (target ≥ 0.70×)`);
    console.log(`  mqota / nginx per CPU-second: ${spread(c.runs.map((r) => r.cpuRatio))}`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: {
    runs: { type: 'string', default: '3' }, seconds: { type: 'string', default: '10' }, connections: { type: 'string', default: '100' },
    'nginx-workers': { type: 'string', default: 'auto' }, profile: { type: 'boolean', default: false },
  } });
  const repoRoot = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
  const workDir = await mkdtemp(path.join(os.tmpdir(), 'mqota-bench-images-'));
  try {
    const workers = values['nginx-workers'] === 'auto' ? 'auto' : Number(values['nginx-workers']);
    const result = await compareImages({
      repoRoot, workDir, runs: Number(values.runs), seconds: Number(values.seconds), connections: Number(values.connections), nginxWorkers: workers,
      cpuProfileDir: values.profile ? path.join(repoRoot, 'bench', 'results', `profile-images-${Date.now()}`) : undefined,
    });
    printImageComparison(result);
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}
