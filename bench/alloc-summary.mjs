// What one profile of bench/alloc-probe.mjs allocated: the total, then by package or source
// folder, then by allocating function (self size).
//
//   node bench/alloc-summary.mjs /tmp/alloc-2.heapprofile [top]
import { readFileSync } from 'node:fs';

const [file, topArg = '30'] = process.argv.slice(2);
if (!file) {
  console.error('usage: node bench/alloc-summary.mjs <file.heapprofile> [top]');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8'));
const byFunction = new Map();
const byArea = new Map();
let total = 0;
const add = (map, key, size) => map.set(key, (map.get(key) ?? 0) + size);
(function walk(node) {
  const { functionName, url, lineNumber } = node.callFrame;
  const where = url.replace(/.*node_modules\//, '').replace(/^file:\/\/.*?\/(dist|src|broker|bench)\//, '$1/');
  const area = url.includes('node_modules/') ? where.split('/')[0] : where.split('/').slice(0, 2).join('/') || '(native)';
  total += node.selfSize;
  add(byFunction, `${functionName || '(anonymous)'} ${where}:${lineNumber}`, node.selfSize);
  add(byArea, area, node.selfSize);
  for (const child of node.children) walk(child);
})(profile.head);

const mib = (bytes) => (bytes / 2 ** 20).toFixed(2).padStart(8);
const print = (map, top) => [...map].sort((a, b) => b[1] - a[1]).slice(0, top)
  .forEach(([key, size]) => console.log(`${mib(size)} MiB ${(100 * size / total).toFixed(1).padStart(5)} %  ${key}`));
console.log(`allocated (sampled): ${mib(total).trim()} MiB`);
print(byArea, 15);
console.log('');
print(byFunction, Number(topArg));
