// A modal confirmation dialog for destructive or far-reaching actions
// (delete, roll back, promote, drop). It uses the <dialog> element, so focus
// stays inside it and Escape cancels; Cancel has the focus first.
import {h} from './dom.js';

// confirmAction asks the user and resolves true when they confirm.
export function confirmAction({title, message, confirmLabel = 'Confirm', danger = false}) {
  return new Promise(resolve => {
    let answered = false;
    const finish = (ok) => {
      if (answered) return;
      answered = true;
      dialog.close();
      dialog.remove();
      resolve(ok);
    };
    const cancel = h('button', {type: 'button', class: 'confirm-cancel', onclick: () => finish(false)}, 'Cancel');
    const ok = h('button', {type: 'button', class: `confirm-ok ${danger ? 'danger' : 'primary'}`, onclick: () => finish(true)}, confirmLabel);
    const dialog = h('dialog', {class: 'confirm', 'aria-labelledby': 'confirm-title', 'aria-describedby': 'confirm-message'},
      h('h2', {id: 'confirm-title'}, title),
      h('div', {id: 'confirm-message'}, message),
      h('div', {class: 'toolbar confirm-buttons'}, cancel, ok));
    dialog.addEventListener('cancel', (ev) => { ev.preventDefault(); finish(false); });
    document.body.appendChild(dialog);
    dialog.showModal();
    cancel.focus();
  });
}
