/**
 * Small DOM helpers shared by the views.
 */
import { LabIcon } from '@jupyterlab/ui-components';

/** Create an element with a class and optional text. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

/**
 * A button; `label` is its visible text, or, for an icon button, its
 * accessible name (aria-label) and tooltip.
 */
export function button(
  label: string,
  title: string,
  className: string,
  run: () => void,
  icon?: LabIcon
): HTMLButtonElement {
  const node = el('button', `jp-Button jp-mod-minimal km-Button ${className}`);
  node.type = 'button';
  node.title = title;
  if (icon !== undefined) {
    node.append(icon.element({ tag: 'span', className: 'km-ButtonIcon' }));
    node.setAttribute('aria-label', label);
    node.classList.add('km-IconButton');
  } else {
    node.textContent = label;
  }
  node.addEventListener('click', event => {
    event.stopPropagation();
    run();
  });
  return node;
}
