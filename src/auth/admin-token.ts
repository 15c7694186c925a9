// The bootstrap API token, the built-in admin: MQOTA_ADMIN_TOKEN, or one generated on first start
// and kept in the data folder (mode 0600). Requests are checked against it by hash, with the other
// tokens (token-store.ts).
import { randomBytes } from 'node:crypto';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';

export interface AdminToken {
  /** True when it was generated just now: the only time it is printed. */
  generated: boolean;
  token: string;
  file: string | null;
}

export const ADMIN_TOKEN_FILE = 'admin-token';

export async function resolveAdminToken(opts: { configured: string | null; dataDir: string }): Promise<AdminToken> {
  if (opts.configured) return { generated: false, token: opts.configured, file: null };
  const file = path.join(opts.dataDir, ADMIN_TOKEN_FILE);
  const stored = (await readFile(file, 'utf8').catch(() => '')).trim();
  if (stored) return { generated: false, token: stored, file };
  await mkdir(opts.dataDir, { recursive: true, mode: 0o700 });
  const token = `mqota_${randomBytes(32).toString('base64url')}`;
  await writeFile(file, `${token}\n`, { mode: 0o600, flag: 'wx' });
  return { generated: true, token, file };
}
