#!/usr/bin/env node
// The mqota CLI: the compiled build when it is current, else the TypeScript sources through tsx
// (entry.js), so `npx mqota` works straight from a clone and is never stale.
import { runEntry } from './entry.js';

await runEntry('cli/main');
