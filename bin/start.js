#!/usr/bin/env node
// `npm start`: the service, compiled or from the sources (entry.js).
import { runEntry } from './entry.js';

await runEntry('main');
