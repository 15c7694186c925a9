// How values read on screen: times in the browser's locale, sizes in binary units, short hashes.

const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const relativeFormat = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

export function dateTime(value) {
  if (!value) return '—';
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : dateTimeFormat.format(date);
}

/** "3 minutes ago"; the exact time belongs in a title or a <time> element next to it. */
export function ago(value) {
  if (!value) return '—';
  const seconds = Math.round((new Date(value).getTime() - Date.now()) / 1000);
  const units = [['day', 86_400], ['hour', 3_600], ['minute', 60]];
  for (const [unit, size] of units) if (Math.abs(seconds) >= size) return relativeFormat.format(Math.round(seconds / size), unit);
  return relativeFormat.format(seconds, 'second');
}

export function bytes(n) {
  if (typeof n !== 'number') return '—';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB'];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

export function shortHash(sha256) {
  return sha256 ? `${sha256.slice(0, 12)}…` : '—';
}

/** 'rolled_back' → 'rolled back'. */
export function stateLabel(state) {
  return String(state ?? '—').replaceAll('_', ' ');
}

export function orDash(value) {
  return value === null || value === undefined || value === '' ? '—' : String(value);
}
