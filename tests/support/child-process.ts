// Helpers for running mqota as a child process, shared by the tests and the benchmarks.
import net from 'node:net';

/** Calls `onLine` for every non-empty line of a stream. */
export function collectLines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let rest = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    const parts = (rest + chunk).split('\n');
    rest = parts.pop()!;
    for (const p of parts) if (p.trim()) onLine(p);
  });
}

/** The caller's own mqota settings must not leak into the child server. */
export function withoutMqotaSettings(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const names = /^(MQOTA_|MQTT_|HTTPS_PORT$|PUBLIC_URL$|DATABASE_URL$|LOG_LEVEL$|LOG_FORMAT$)/;
  return Object.fromEntries(Object.entries(env).filter(([k]) => !names.test(k)));
}

/** A TCP port free on 127.0.0.1 now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    }).on('error', reject);
  });
}
