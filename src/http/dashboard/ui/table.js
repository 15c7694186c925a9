// Table rows kept by key: a reload updates rows in place instead of rebuilding them, so focus,
// selection and screen-reader position survive live updates.
import { fill, h } from '../dom.js';

/**
 * create(item) → { el: <tr>, update(item) }. Returns sync(items) that adds, updates, reorders
 * and removes rows; `empty` is the text of the single row shown when there are none.
 */
export function keyedRows(tbody, { key, create, empty, columns }) {
  const rows = new Map();
  const emptyRow = h('tr', {}, h('td', { colspan: columns, class: 'muted' }, empty));
  return function sync(items) {
    const seen = new Set();
    const ordered = items.map((item) => {
      const k = key(item);
      seen.add(k);
      let row = rows.get(k);
      if (!row) { row = create(item); rows.set(k, row); }
      row.update(item);
      return row.el;
    });
    for (const [k, row] of rows) if (!seen.has(k)) { row.el.remove(); rows.delete(k); }
    if (ordered.length === 0) { tbody.replaceChildren(emptyRow); return; }
    emptyRow.remove();
    // Moving a row that is already in place would blur a focused link inside it.
    ordered.forEach((el, i) => { if (tbody.children[i] !== el) tbody.insertBefore(el, tbody.children[i] ?? null); });
  };
}

/** A <td> whose content update() replaces only when the value changed. */
export function cell(attrs = {}) {
  const el = h('td', attrs);
  let last;
  return {
    el,
    set(value, render = (v) => v) {
      const k = JSON.stringify(value) ?? 'undefined';
      if (k === last) return;
      last = k;
      fill(el, render(value));
    },
  };
}
