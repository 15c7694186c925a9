// Form fields with their labels and hints wired by id, and a message area for the outcome.
import { h } from '../dom.js';

let nextId = 0;

/** A labelled control: field('Name', h('input', {...}), 'hint') → wrapper element. */
export function field(label, control, hint) {
  const id = control.id || `field-${(nextId += 1)}`;
  control.id = id;
  const hintEl = hint ? h('small', { id: `${id}-hint`, class: 'hint' }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hintEl);
}

/** A region that shows one message at a time: show('error' | 'success' | 'info', text or node). */
export function messageArea() {
  const el = h('div', { class: 'message-area' });
  return {
    el,
    show(kind, content) {
      el.replaceChildren(h('div', { class: `message message-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, content));
    },
    clear() { el.replaceChildren(); },
  };
}

/** Disables a form's controls while `work` runs, so a double click cannot submit twice. */
export async function whileBusy(form, work) {
  const controls = [...form.elements].filter((c) => !c.disabled);
  for (const c of controls) c.disabled = true;
  form.setAttribute('aria-busy', 'true');
  try {
    return await work();
  } finally {
    for (const c of controls) c.disabled = false;
    form.removeAttribute('aria-busy');
  }
}
