// Where a profiled server spent its CPU: self time by function and by code area, from the V8
// CPU profile `npm run bench -- --profile` writes, optionally for one phase of the run only
// (phases.json next to the profile: connect, reannounce-1, reannounce-n, fan-out).
//
//   npx tsx bench/profile-summary.ts bench/results/profile-<stamp>/pglite [--phase connect] [--top 25]
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { PhaseWindow } from './scenario.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { phase: { type: 'string' }, top: { type: 'string', default: '25' } },
});
if (positionals.length !== 1) {
  console.error('usage: npx tsx bench/profile-summary.ts <profile dir or .cpuprofile> [--phase NAME] [--top N]');
  process.exit(2);
}
const target = positionals[0];
// Node writes one profile per thread (main, tsx's loader worker); the main thread's is the largest.
const file = statSync(target).isDirectory()
  ? readdirSync(target).filter((f) => f.endsWith('.cpuprofile')).map((f) => path.join(target, f)).sort((a, b) => statSync(b).size - statSync(a).size)[0]
  : target;
if (!file) throw new Error(`no .cpuprofile in ${target}`);
const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;

let window: PhaseWindow | null = null;
if (values.phase) {
  const phases = JSON.parse(readFileSync(path.join(path.dirname(file), 'phases.json'), 'utf8')) as PhaseWindow[];
  window = phases.find((p) => p.name === values.phase) ?? null;
  if (!window) throw new Error(`no phase ${values.phase}; phases: ${phases.map((p) => p.name).join(', ')}`);
}

/** Code areas, so the answer is "TLS", "Aedes", "PGlite"... before it is a function name. */
function area(url: string, name: string): string {
  if (!url) return name.startsWith('(') ? name : '(native)';
  const pkg = url.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/);
  if (pkg) return pkg[1];
  if (url.startsWith('node:')) return url.replace(/^node:(internal\/)?/, 'node:').split('/').slice(0, 2).join('/');
  const own = url.match(/\/(src|broker|certs|bench)\/(.*)$/);
  return own ? `${own[1]}/${own[2]}` : url;
}

function label(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const where = url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/(src|broker|certs)\//, '$1/');
  // Code loaded through tsx has no line numbers in the profile (they all read 1).
  return `${functionName || '(anonymous)'} ${url ? `${where}${lineNumber > 0 ? `:${lineNumber + 1}` : ''}` : ''}`;
}

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parentOf = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id);
const selfByFunction = new Map<string, number>();
const selfByArea = new Map<string, number>();
/** Time with one of mqota's own functions on the stack (src/, broker/): where a slow operation starts. */
const inclusiveOwn = new Map<string, number>();
let total = 0;
let t = profile.startTime;
for (let i = 0; i < profile.samples.length; i++) {
  t += profile.timeDeltas[i];
  const dt = profile.timeDeltas[i + 1] ?? 0; // a sample stands for the time until the next one
  if (window && (t < window.startUs || t > window.endUs)) continue;
  const node = byId.get(profile.samples[i])!;
  const { functionName, url } = node.callFrame;
  if (functionName === '(idle)') continue;
  const fn = label(node);
  selfByFunction.set(fn, (selfByFunction.get(fn) ?? 0) + dt);
  const onStack = new Set<string>();
  for (let id: number | undefined = node.id; id !== undefined; id = parentOf.get(id)) {
    const frame = byId.get(id)!;
    if (/\/(src|broker)\//.test(frame.callFrame.url) && !frame.callFrame.url.includes('node_modules')) onStack.add(label(frame));
  }
  for (const f of onStack) inclusiveOwn.set(f, (inclusiveOwn.get(f) ?? 0) + dt);
  const a = area(url, functionName);
  selfByArea.set(a, (selfByArea.get(a) ?? 0) + dt);
  total += dt;
}

const top = Number(values.top);
const print = (title: string, m: Map<string, number>) => {
  console.log(`\n${title}`);
  for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`  ${(us / 1000).toFixed(0).padStart(7)} ms ${((us / total) * 100).toFixed(1).padStart(5)} %  ${k}`);
  }
};
console.log(`${path.relative(process.cwd(), file)}${window ? `, phase ${window.name} (${((window.endUs - window.startUs) / 1000).toFixed(0)} ms wall)` : ''}: ${(total / 1000).toFixed(0)} ms on the main thread, idle excluded`);
print('Self time by code area', selfByArea);
print('Self time by function', selfByFunction);
print("Total time under mqota's own functions (src/, broker/; synchronous stacks only, so an async function counts per resumption)", inclusiveOwn);
