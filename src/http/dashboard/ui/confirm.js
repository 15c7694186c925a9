// A confirmation in a modal <dialog>: focus moves into it, Escape cancels, focus returns after.
import { h } from '../dom.js';

export function confirmDialog({ title, message, confirmLabel, danger = false }) {
  return new Promise((resolve) => {
    const opener = document.activeElement;
    const titleId = `dialog-title-${Math.random().toString(36).slice(2)}`;
    const dialog = h('dialog', { 'aria-labelledby': titleId, class: 'dialog' },
      h('form', { method: 'dialog' },
        h('h2', { id: titleId }, title),
        h('p', {}, message),
        h('div', { class: 'actions' },
          h('button', { type: 'submit', value: 'cancel', class: 'button-quiet', autofocus: true }, 'Keep going'),
          h('button', { type: 'submit', value: 'confirm', class: danger ? 'button-danger' : 'button-primary' }, confirmLabel))));
    dialog.addEventListener('close', () => {
      dialog.remove();
      opener?.focus?.();
      resolve(dialog.returnValue === 'confirm');
    }, { once: true });
    document.body.append(dialog);
    dialog.showModal();
  });
}
