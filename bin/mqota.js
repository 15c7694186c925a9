#!/usr/bin/env node
// The mqota CLI: the TypeScript sources through tsx's loader in a checkout (so `npx mqota` works
// straight from a clone and is never stale), the compiled build where there are no sources
// (the container image).
import { existsSync } from 'node:fs';

const source = new URL('../src/cli/main.ts', import.meta.url);
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(source.href);
} else {
  await import(new URL('../dist/src/cli/main.js', import.meta.url).href);
}
