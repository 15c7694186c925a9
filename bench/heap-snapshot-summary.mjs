// What a server's JS heap holds per connected device: the difference between two V8 heap
// snapshots (one at rest, one with N devices online), by object type and constructor, divided by N
// (issue #13, "Connect, sixth round" in bench/README.md).
//
//   npm run bench -- --devices 2000 --databases pglite --server-node-arg=--heapsnapshot-signal=SIGUSR2
//   (the bench's probe signals the server each time it measures, so a snapshot lands in the working
//   directory each time: the first ones at rest, then with the fleet online; match them by time)
//   node --max-old-space-size=6000 bench/heap-snapshot-summary.mjs rest.heapsnapshot online.heapsnapshot 2000
import fs from 'node:fs';

const [restFile, onlineFile, devicesArg] = process.argv.slice(2);
if (!restFile || !onlineFile || !devicesArg) {
  console.error('usage: node bench/heap-snapshot-summary.mjs <at rest.heapsnapshot> <online.heapsnapshot> <devices>');
  process.exit(2);
}
const devices = Number(devicesArg);

/** Self size and count by "type constructor" (strings, code and arrays grouped). */
function byConstructor(file) {
  const snap = JSON.parse(fs.readFileSync(file, 'utf8'));
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const [iType, iName, iSize] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f));
  const out = new Map();
  for (let i = 0; i < snap.nodes.length; i += fields.length) {
    const type = types[snap.nodes[i + iType]];
    let name = snap.strings[snap.nodes[i + iName]];
    if (type.includes('string')) name = '(strings)';
    else if (type === 'code') name = '(code)';
    else if (type === 'array') name = `(array) ${name.slice(0, 30)}`;
    const key = `${type} ${name.slice(0, 60)}`;
    const entry = out.get(key) ?? { size: 0, count: 0 };
    entry.size += snap.nodes[i + iSize];
    entry.count++;
    out.set(key, entry);
  }
  return out;
}

const rest = byConstructor(restFile);
const online = byConstructor(onlineFile);
const rows = [...new Set([...rest.keys(), ...online.keys()])].map((key) => {
  const a = rest.get(key) ?? { size: 0, count: 0 };
  const b = online.get(key) ?? { size: 0, count: 0 };
  return { key, size: b.size - a.size, count: b.count - a.count };
}).sort((x, y) => y.size - x.size);
const total = rows.reduce((sum, r) => sum + r.size, 0);
console.log(`JS heap per device: ${(total / devices / 1024).toFixed(1)} KiB (${devices} devices)`);
console.log('bytes/device  objects/device  type and constructor');
for (const r of rows.slice(0, 40)) console.log(`${(r.size / devices).toFixed(0).padStart(12)}  ${(r.count / devices).toFixed(2).padStart(14)}  ${r.key}`);
