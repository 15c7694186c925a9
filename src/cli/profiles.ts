// The CLI's saved logins: one JSON file in the user's config directory, readable by the user only
// (it holds API tokens). A profile carries the CA certificate itself, not a path, so it keeps
// working from any folder and after the file it came from moves.
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export interface Profile {
  server: string;
  token: string;
  /** PEM of the CA that signed the server certificate; absent: the system's trusted CAs. */
  caPem?: string;
}

export interface CliConfig {
  defaultProfile?: string;
  profiles: Record<string, Profile>;
}

export const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** $XDG_CONFIG_HOME/mqota/config.json, or ~/.config/mqota/config.json (XDG Base Directory spec). */
export function configFile(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CONFIG_HOME;
  // The spec says a relative $XDG_CONFIG_HOME is invalid and must be ignored.
  const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.config');
  return path.join(base, 'mqota', 'config.json');
}

export async function readCliConfig(file = configFile()): Promise<CliConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { profiles: {} };
    throw err;
  }
  let parsed: unknown;
  try { parsed = JSON.parse(text); } catch { throw new Error(`${file} is not valid JSON: fix it, or delete it and run mqota login again`); }
  const config = parsed as Partial<CliConfig> | null;
  if (!config || typeof config !== 'object' || typeof config.profiles !== 'object' || config.profiles === null) {
    throw new Error(`${file} has no "profiles" object: fix it, or delete it and run mqota login again`);
  }
  return { defaultProfile: config.defaultProfile, profiles: config.profiles };
}

/** Writes atomically with mode 0600 in a 0700 folder, tightening modes left looser by hand. */
export async function writeCliConfig(config: CliConfig, file = configFile()): Promise<void> {
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
}
