// Tiny DOM builder. Text is always set through text nodes, never parsed as HTML,
// so names and chat from other people cannot inject markup.

/**
 * h('button', {class: 'x', onclick: fn, disabled: true}, 'label', childNode)
 * Attributes starting with "on" become listeners; `dataset` is an object; null/false attributes are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      node.addEventListener(key.slice(2), value);
    } else if (key === 'dataset') {
      Object.assign(node.dataset, value);
    } else if (key === 'class') {
      node.className = value;
    } else if (key === 'style') {
      // Through the CSSOM: the page's Content-Security-Policy refuses style attributes.
      node.style.cssText = String(value);
    } else if (value === true) {
      node.setAttribute(key, '');
    } else {
      node.setAttribute(key, String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces all children of `node`. */
export function setChildren(node, ...children) {
  node.replaceChildren();
  append(node, children);
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** Short-lived notice at the bottom of the page. */
export function toast(text, kind = 'info') {
  let holder = $('#toasts');
  if (!holder) {
    holder = h('div', { id: 'toasts', 'aria-live': 'polite' });
    document.body.append(holder);
  }
  const note = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
  holder.append(note);
  setTimeout(() => note.classList.add('toast-leaving'), 3500);
  setTimeout(() => note.remove(), 4000);
}
