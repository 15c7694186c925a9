// The broker's handshake window during a phase, read from the server's own /metrics
// (mqota_tls_handshakes{kind="window"|"in_progress"}) every 200 ms: what the gate let run while
// devices connected; and how many group commits the phase took (mqota_db_commits_total), the
// database's share of the work. A scrape costs the server about a millisecond, so it is read no
// more often.
import { Agent, request } from 'undici';
import { summarize, type Summary } from './stats.js';

const EVERY_MS = 200;

export interface HandshakeWindow {
  window: Summary | null;
  inProgress: Summary | null;
  /** Group commits between the first and the last scrape. */
  commits: number | null;
}

export function sampleHandshakeWindow(opts: { baseUrl: string; token: string; caPem: string }): { stop(): Promise<HandshakeWindow> } {
  const dispatcher = new Agent({ connect: { ca: opts.caPem } });
  const window: number[] = [];
  const inProgress: number[] = [];
  const commits: number[] = [];
  const gauge = (text: string, kind: string) => Number(new RegExp(`^mqota_tls_handshakes\\{kind="${kind}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
  let running = true;
  const loop = (async () => {
    while (running) {
      const res = await request(`${opts.baseUrl}/metrics`, { dispatcher, headers: { authorization: `Bearer ${opts.token}` } });
      const text = await res.body.text();
      if (res.statusCode === 200) {
        window.push(gauge(text, 'window'));
        inProgress.push(gauge(text, 'in_progress'));
        const c = Number(/^mqota_db_commits_total (\d+)$/m.exec(text)?.[1] ?? NaN);
        if (Number.isFinite(c)) commits.push(c);
      }
      await new Promise((resolve) => setTimeout(resolve, EVERY_MS));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop.catch(() => undefined);
      await dispatcher.close();
      return {
        window: summarize(window.filter(Number.isFinite)), inProgress: summarize(inProgress.filter(Number.isFinite)),
        commits: commits.length > 1 ? commits.at(-1)! - commits[0]! : null,
      };
    },
  };
}
