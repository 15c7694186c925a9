// The frame of every view: a heading that takes focus after navigation, optional actions, and
// sections labelled by their headings.
import { h } from '../dom.js';

let nextId = 0;

/** Sets the document title and returns the page header ({ el, title, subtitle, actions }). */
export function pageHeader(title, { subtitle = null, actions = [] } = {}) {
  document.title = `${title} · mqota`;
  const titleEl = h('h1', { tabindex: -1 }, title);
  const subtitleEl = h('p', { class: 'subtitle' }, subtitle);
  const actionsEl = h('div', { class: 'page-actions' }, actions);
  return { el: h('div', { class: 'page-header' }, h('div', {}, titleEl, subtitleEl), actionsEl), title: titleEl, subtitle: subtitleEl, actions: actionsEl };
}

/** A <section> labelled by its <h2>. */
export function section(title, ...content) {
  const id = `section-${(nextId += 1)}`;
  return h('section', { class: 'panel', 'aria-labelledby': id }, h('h2', { id }, title), content);
}

/** A link to a page of the dashboard, from path segments (each one encoded). */
export function link(text, ...segments) {
  return h('a', { href: `#/${segments.map((x) => encodeURIComponent(x)).join('/')}` }, text);
}
