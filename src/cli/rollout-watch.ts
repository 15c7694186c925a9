// `mqota rollout show|watch`: the rollout's header (what its wave waits for, in the words the
// dashboard uses), live progress bars per attempt state redrawn whenever the server's event stream
// says something changed, and the tables of waves and devices. Waves are numbered from 1 here as
// on the dashboard; the API's `currentWave` and `wave` are 0-based.
import { ATTEMPT_STATES, FAILURE_STATES, isFinalRolloutState } from '../rollouts/states.js';
import type { ApiClient } from './api-client.js';

export interface RolloutView {
  id: string; name: string | null; state: string; reason: string | null; targets: number; currentWave: number;
  waveSizes: number[]; counts: Record<string, number>; firmware: { type: string; version: string };
  waiting?: { text: string } | null; skipped?: number; deferrals?: number; retried?: number;
}

const WIDTH = 40;

/** "wave 2 of 4", and what it waits for while the rollout is active. */
export function waveLine(r: RolloutView): string {
  return r.waiting?.text ?? `wave ${Math.min(r.currentWave + 1, r.waveSizes.length)} of ${r.waveSizes.length}`;
}

export function renderRollout(r: RolloutView, color: boolean): string {
  const paint = (code: number, s: string) => (color ? `\x1b[${code}m${s}\x1b[0m` : s);
  const total = Math.max(r.targets, 1);
  const lines = [
    `${r.name ?? r.id}  ${r.firmware.type} ${r.firmware.version}  ${paint(r.state === 'running' ? 32 : r.state === 'paused' ? 33 : 36, r.state)}`
      + `  ${r.targets} targets${r.reason ? `  (${r.reason})` : ''}`,
    `  ${waveLine(r)}`,
  ];
  const extra = [r.skipped && `skipped: offline ${r.skipped}`, r.deferrals && `deferrals ${r.deferrals}`, r.retried && `retried by an operator ${r.retried}`].filter(Boolean);
  if (extra.length) lines.push(`  ${extra.join(' · ')}`);
  for (const s of ATTEMPT_STATES) {
    const n = r.counts[s] ?? 0;
    if (!n && !['succeeded', 'failed', 'downloading'].includes(s)) continue;
    const filled = Math.round((n / total) * WIDTH);
    const bar = '█'.repeat(Math.min(WIDTH, filled)).padEnd(WIDTH, '░');
    const tint = s === 'succeeded' ? 32 : FAILURE_STATES.has(s) ? 31 : 34;
    lines.push(`  ${s.padEnd(12)} ${paint(tint, bar)} ${String(n).padStart(6)}  ${((n / total) * 100).toFixed(0).padStart(3)} %`);
  }
  return lines.join('\n');
}

/** A wave of the detail view as `rollout show` lists it (numbered from 1). */
export function waveRow(w: { index: number; state: string; devices: number; succeeded: number; failed: number; skipped?: number }): Record<string, unknown> {
  return { wave: w.index + 1, state: w.state, devices: w.devices, succeeded: w.succeeded, failed: w.failed, skipped: w.skipped ?? 0 };
}

/** A target device as `rollout show` lists it: its wave from 1, "skipped: offline" where the wave stopped waiting for it. */
export function deviceRow(d: { deviceId: string; wave: number; state: string | null; standing?: string | null; skipReason?: string | null; retry?: number | null;
  progress: number | null; error: string | null; updatedAt: string | null }): Record<string, unknown> {
  const state = d.standing === 'skipped' ? `skipped: ${d.skipReason ?? 'offline'}` : d.state ? `${d.state}${d.retry ? ` (retry ${d.retry})` : ''}` : 'not started';
  return { deviceId: d.deviceId, wave: d.wave + 1, state, progress: d.progress, error: d.error, updatedAt: d.updatedAt };
}

/** Where `watch` stops: the rollout completed, paused, or ended otherwise. */
function settled(state: string): boolean {
  return state === 'paused' || isFinalRolloutState(state);
}

/** `rollout watch`'s exit code: 0 completed, 2 paused, 3 aborted, 4 cancelled; 130 when interrupted (Ctrl-C) before any. */
export function watchExitCode(state: string): number {
  return ({ completed: 0, paused: 2, aborted: 3, cancelled: 4 } as Record<string, number>)[state] ?? 130;
}

/** Watches until the rollout completes, pauses or ends (or Ctrl-C); returns the last view. */
export async function watchRollout(api: ApiClient, id: string, out: NodeJS.WriteStream): Promise<RolloutView> {
  const tty = Boolean(out.isTTY);
  let drawnLines = 0;
  let view = await api.call<RolloutView>('GET', `/api/rollouts/${encodeURIComponent(id)}`);
  const draw = () => {
    const text = renderRollout(view, tty);
    if (tty && drawnLines) out.write(`\x1b[${drawnLines}A\x1b[0J`);
    out.write(`${text}\n`);
    drawnLines = text.split('\n').length;
  };
  draw();
  if (settled(view.state)) return view;
  const stop = new AbortController();
  let refresh: NodeJS.Timeout | null = null;
  const schedule = () => {
    refresh ??= setTimeout(async () => {
      refresh = null;
      view = await api.call<RolloutView>('GET', `/api/rollouts/${encodeURIComponent(id)}`);
      draw();
      if (settled(view.state)) stop.abort();
    }, 200); // at most five redraws a second, however busy the fleet
  };
  process.once('SIGINT', () => stop.abort());
  await api.events(`/api/events?rolloutId=${encodeURIComponent(id)}&types=attempt,rollout`, schedule, stop.signal);
  if (refresh) clearTimeout(refresh);
  return view;
}
