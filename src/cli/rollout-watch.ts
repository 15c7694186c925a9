// `mqota rollout watch`: live progress bars per attempt state, redrawn from the rollout view
// whenever the server's event stream says something changed.
import { ATTEMPT_STATES, FAILURE_STATES, isFinalRolloutState } from '../rollouts/states.js';
import type { ApiClient } from './api-client.js';

interface RolloutView {
  id: string; name: string | null; state: string; reason: string | null; targets: number; currentWave: number;
  waveSizes: number[]; counts: Record<string, number>; firmware: { type: string; version: string };
}

const WIDTH = 40;

export function renderRollout(r: RolloutView, color: boolean): string {
  const paint = (code: number, s: string) => (color ? `\x1b[${code}m${s}\x1b[0m` : s);
  const total = Math.max(r.targets, 1);
  const lines = [
    `${r.name ?? r.id}  ${r.firmware.type} ${r.firmware.version}  ${paint(r.state === 'running' ? 32 : r.state === 'paused' ? 33 : 36, r.state)}`
      + `  wave ${r.currentWave + 1}/${r.waveSizes.length}  ${r.targets} targets${r.reason ? `  (${r.reason})` : ''}`,
  ];
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

/** Watches until the rollout reaches a final state (or Ctrl-C); returns the last view. */
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
  if (isFinalRolloutState(view.state)) return view;
  const stop = new AbortController();
  let refresh: NodeJS.Timeout | null = null;
  const schedule = () => {
    refresh ??= setTimeout(async () => {
      refresh = null;
      view = await api.call<RolloutView>('GET', `/api/rollouts/${encodeURIComponent(id)}`);
      draw();
      if (isFinalRolloutState(view.state)) stop.abort();
    }, 200); // at most five redraws a second, however busy the fleet
  };
  process.once('SIGINT', () => stop.abort());
  await api.events(`/api/events?rolloutId=${encodeURIComponent(id)}&types=attempt,rollout`, schedule, stop.signal);
  if (refresh) clearTimeout(refresh);
  return view;
}
