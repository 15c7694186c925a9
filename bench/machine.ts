// CPU accounting from /proc: a process's CPU time, a process tree's (PostgreSQL forks a process
// per connection), and the whole machine's. With them a phase can tell how much CPU went to
// processes that are not part of the benchmark, which would make its figures unreliable.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

const TICKS_PER_SECOND = (() => {
  try { return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100; } catch { return 100; }
})();

const toMs = (ticks: number) => (ticks * 1000) / TICKS_PER_SECOND;

/**
 * How long after full collections a process's RSS is read: jemalloc gives freed pages back over
 * its decay time (1 s, bin/jemalloc.sh) and V8 unmaps freed pages in the background, so a reading
 * taken at once still holds part of what the collections freed, more after a phase that left more
 * garbage (bench/README.md, "Eleventh round").
 */
export const MEMORY_SETTLE_MS = 2_500;

/** The fields of /proc/<pid>/stat (or a thread's, `<pid>/task/<tid>`) after the command name (which may contain spaces). */
function statFields(pid: number | string): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null; // gone
  }
}

/** User + system CPU time of one process so far, ms (0 once it is gone). */
export function processCpuMs(pid: number): number {
  const f = statFields(pid);
  return f ? toMs(Number(f[11]) + Number(f[12])) : 0;
}

/** User + system CPU time of each thread of a process so far, ms, by thread id. */
export function threadCpuMs(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const f = statFields(`${pid}/task/${tid}`);
    if (f) out.set(Number(tid), toMs(Number(f[11]) + Number(f[12])));
  }
  return out;
}

/**
 * CPU time of a process so far by thread, ms, summed by what the thread is: 'main' (the thread
 * whose id is the process's), else its name (Node 24 names theirs: V8Worker,
 * libuv-worker, a worker's own name; Node 20 and 22 call most threads 'node'). Threads that ended are
 * 'ended threads': the process's total less the living ones'.
 */
export function threadCpuByName(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  let living = 0;
  for (const [tid, ms] of threadCpuMs(pid)) {
    let name = 'main';
    if (tid !== pid) {
      try { name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim(); } catch { continue; }
    }
    out.set(name, (out.get(name) ?? 0) + ms);
    living += ms;
  }
  const ended = processCpuMs(pid) - living;
  if (ended > 0) out.set('ended threads', ended);
  return out;
}

/** CPU time of a process and all its living descendants, ms. */
export function treeCpuMs(root: number): number {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const ppid = Number(statFields(pid)?.[1]);
    if (!children.has(ppid)) children.set(ppid, []);
    children.get(ppid)!.push(pid);
  }
  let total = 0;
  const stack = [root];
  while (stack.length) {
    const pid = stack.pop()!;
    total += processCpuMs(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return total;
}

/** CPU time the whole machine spent busy (all cores, everything but idle and iowait), ms. */
export function machineBusyMs(): number {
  const [, ...values] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/);
  const [user, nice, system, , , irq, softirq, steal] = values.map(Number);
  return toMs(user + nice + system + irq + softirq + steal);
}
