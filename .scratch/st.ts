import os from 'node:os'; import path from 'node:path'; import { mkdtemp, rm } from 'node:fs/promises';
import { measureStartup } from '../bench/startup.js';
const variants: Record<string, Record<string, string>> = {
  glibc: { MQOTA_ALLOCATOR: 'glibc' },
  launcher: {},
  glibc2: { MQOTA_ALLOCATOR: 'glibc' },
  launcher2: {},
};
for (const [name, env] of Object.entries(variants)) {
  const workDir = await mkdtemp(path.join(os.tmpdir(), 'st-'));
  const s = await measureStartup({ repoRoot: '/work/main', workDir, restarts: 3, serverEnv: env });
  console.log(name, s.map((x) => `${x.kind[0]} ${x.seconds.toFixed(2)}s ${(x.idleRssBytes / 2 ** 20).toFixed(0)}MiB`).join(' | '));
  await rm(workDir, { recursive: true, force: true });
}
