// What ran during each event-loop stall that bench/stall-probe.mjs recorded: the samples of the
// server's V8 CPU profile (`npm run bench -- --profile`) inside the stall's window, by function
// including callees, for the longest stalls of one phase (phases.json beside the profile).
//
//   node bench/stall-summary.mjs bench/results/profile-<stamp>/pglite /tmp/stalls.jsonl [fan-out] [--top 6]
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '6' } } });
const [dir, stallFile, phaseName = 'fan-out'] = positionals;
if (!dir || !stallFile) {
  console.error('usage: node bench/stall-summary.mjs <profile dir> <stall file> [phase] [--top N]');
  process.exit(2);
}
const profileFile = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort()[0];
const phase = JSON.parse(readFileSync(path.join(dir, 'phases.json'), 'utf8')).find((p) => p.name === phaseName);
if (!profileFile || !phase) throw new Error(`no profile or no phase ${phaseName} in ${dir}`);
const profile = JSON.parse(readFileSync(path.join(dir, profileFile), 'utf8'));
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const samples = [];
let t = profile.startTime;
for (let i = 0; i < profile.samples.length; i++) { t += profile.timeDeltas[i]; samples.push([t, profile.samples[i]]); }
const label = (id) => { const f = nodes.get(id).callFrame; return `${f.functionName || '(anonymous)'} ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}`; };

const stalls = readFileSync(stallFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
  .filter((s) => s.endUs >= phase.startUs && s.endUs <= phase.endUs);
console.log(`${stalls.length} stalls over 12 ms in ${phaseName} (${((phase.endUs - phase.startUs) / 1000).toFixed(0)} ms)`);
for (const s of [...stalls].sort((a, b) => b.ms - a.ms).slice(0, Number(values.top))) {
  const from = s.endUs - s.ms * 1000;
  const inside = samples.filter(([ts]) => ts >= from && ts <= s.endUs);
  const counts = new Map();
  for (const [, id] of inside) {
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const k = label(cur);
      if (!seen.has(k)) { seen.add(k); counts.set(k, (counts.get(k) ?? 0) + 1); }
    }
  }
  console.log(`\n${s.ms.toFixed(1)} ms at +${((from - phase.startUs) / 1000).toFixed(0)} ms (${inside.length} samples)`);
  for (const [k, c] of [...counts].sort((a, b) => b[1] - a[1]).slice(1, 16)) console.log(`  ${String(Math.round((c * 100) / inside.length)).padStart(3)} %  ${k}`);
}
