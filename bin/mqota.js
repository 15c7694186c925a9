#!/usr/bin/env node
// The mqota CLI: the compiled build when there is one (containers), else the TypeScript sources
// through tsx's loader, so `npx mqota` works straight from a clone.
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/src/cli/main.js', import.meta.url);
if (existsSync(compiled)) {
  await import(compiled.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
