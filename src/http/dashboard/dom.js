// Building DOM from data without HTML strings. Text always becomes text nodes and attribute
// values go through setAttribute, so nothing the API returns is ever parsed as markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * h('a', { href: '#/x', class: 'link', onclick: fn }, 'text', child, [more]) → HTMLElement.
 * Attributes: true → present, false/null/undefined → absent; functions under on* → listeners.
 */
export function h(tag, attrs = {}, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** The same for SVG elements (createElementNS). */
export function s(tag, attrs = {}, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

function build(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

/** Replaces an element's content, taking children as h() does (nested arrays, null skipped). */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Puts the message into the page's polite live region, for screen readers. */
export function announce(message) {
  const region = document.getElementById('announcer');
  region.textContent = '';
  // A new text node after clearing makes screen readers read a repeated message again.
  requestAnimationFrame(() => { region.textContent = message; });
}
