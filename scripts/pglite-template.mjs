// Makes the initialised PGlite cluster mqota's first start copies instead of running initdb
// (src/db/pglite-settings.ts): node_modules/.cache/mqota/pglite-<version>-template.tgz. Run by
// `npm run build` and after `npm install`; skipped when it exists. Best effort: without it the
// first start runs initdb, as before.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

const require = createRequire(import.meta.url);
try {
  // package.json is not in the package's exports: found from its entry point.
  const entry = require.resolve('@electric-sql/pglite', { paths: [process.cwd()] });
  const marker = `${path.sep}@electric-sql${path.sep}pglite${path.sep}`;
  const pkg = path.join(entry.slice(0, entry.lastIndexOf(marker) + marker.length), 'package.json');
  const { version } = JSON.parse(readFileSync(pkg, 'utf8'));
  const target = path.join(path.dirname(pkg), '..', '..', '.cache', 'mqota', `pglite-${version}-template.tgz`);
  if (!existsSync(target)) {
    const { PGlite } = await import(path.join(path.dirname(pkg), 'dist', 'index.js'));
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mqota-pglite-template-'));
    try {
      const db = await PGlite.create(path.join(dir, 'pglite'));
      const dump = await db.dumpDataDir('gzip');
      await db.close();
      mkdirSync(path.dirname(target), { recursive: true });
      writeFileSync(`${target}.tmp`, Buffer.from(await dump.arrayBuffer()));
      // Renamed into place only once complete, so a start never reads half a template.
      (await import('node:fs')).renameSync(`${target}.tmp`, target);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
} catch (err) {
  process.stderr.write(`mqota: no PGlite template made (the first start will run initdb): ${err instanceof Error ? err.message : String(err)}\n`);
}
