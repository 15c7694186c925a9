// Semantic version order for display (newest first); anything that is not semver sorts last.
const SEMVER = /^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$/;

export function compareVersionsDesc(a, b) {
  const x = SEMVER.exec(a);
  const y = SEMVER.exec(b);
  if (!x || !y) return x ? -1 : y ? 1 : String(a).localeCompare(String(b));
  for (let i = 1; i <= 3; i += 1) if (Number(x[i]) !== Number(y[i])) return Number(y[i]) - Number(x[i]);
  // A release is newer than its pre-releases [semver 11.3].
  if (!x[4] || !y[4]) return x[4] ? 1 : y[4] ? -1 : 0;
  return comparePrerelease(y[4], x[4]);
}

function comparePrerelease(a, b) {
  const p = a.split('.');
  const q = b.split('.');
  for (let i = 0; i < Math.max(p.length, q.length); i += 1) {
    if (p[i] === undefined) return -1;
    if (q[i] === undefined) return 1;
    const numeric = /^\d+$/.test(p[i]) && /^\d+$/.test(q[i]);
    const diff = numeric ? Number(p[i]) - Number(q[i]) : p[i].localeCompare(q[i]);
    if (diff !== 0) return diff;
  }
  return 0;
}
