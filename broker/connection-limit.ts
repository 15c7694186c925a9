// How many device connections the broker takes at once. Each is a file descriptor, and so are the
// database's files, image uploads and downloads, HTTPS clients and the PostgreSQL pool: a broker
// that let devices use them all failed the next upload with EMFILE and reset devices in accept
// (`npm run bench -- --devices 20000` under a 20,000 open-file limit). The broker stops accepting
// devices at the process's open-file limit minus a reserve for the rest; a refused device retries
// as after any failed connect. MQTT_MAX_CONNECTIONS sets the number instead.
import { readFileSync } from 'node:fs';

/** File descriptors kept for everything but device connections. */
export const RESERVED_DESCRIPTORS = 1_024;

/** The soft open-file limit of this process (Linux: /proc/self/limits), or null when unknown or unlimited. */
export function openFileLimit(limits = readProcLimits()): number | null {
  const line = limits?.split('\n').find((l) => l.startsWith('Max open files'));
  const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
  return soft && /^\d+$/.test(soft) ? Number(soft) : null;
}

/**
 * The most device connections to hold: `configured` when given, else the open-file limit minus
 * the reserve (at least a quarter of the limit stays free on a small one), else no bound (null).
 */
export function maxDeviceConnections(configured: number | null, fileLimit: number | null): number | null {
  if (configured !== null) return configured;
  if (fileLimit === null) return null;
  return Math.max(1, fileLimit - Math.min(RESERVED_DESCRIPTORS, Math.ceil(fileLimit / 4)));
}

function readProcLimits(): string | null {
  try {
    return readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return null;
  }
}
