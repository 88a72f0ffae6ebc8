/**
 * The "Durable" sidebar: the current notebook's session, its steps with
 * state, timings, sizes, saved variables and age, the durable cells that
 * have not run yet, and the actions on them.
 */
import { CommandRegistry } from '@lumino/commands';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';
import { refreshIcon, runIcon } from '@jupyterlab/ui-components';

import { CommandIDs } from './actions';
import { button, el } from './dom';
import { formatSeconds, formatSize, sessionLabel, shownState } from './format';
import { durableIcon } from './icons';
import { DurableModel } from './model';
import { IRowActions, matches, pendingRow, stepRow } from './steprow';

export const SIDEBAR_ID = 'kitteh-magic-durable';

/** The filter box shows once the list is longer than this. */
export const FILTER_FROM = 6;

/** How often the records' ages are redrawn while the panel shows. */
const AGE_REFRESH_MS = 30_000;

export class DurableSidebar extends Widget {
  constructor(
    readonly model: DurableModel,
    private readonly _commands: CommandRegistry
  ) {
    super();
    this.id = SIDEBAR_ID;
    this.addClass('km-Sidebar');
    this.title.icon = durableIcon;
    this.title.caption = 'Durable steps of this notebook';
    this._filter = el('input', 'jp-mod-styled km-Filter');
    this._filter.type = 'search';
    this._filter.placeholder = 'Filter steps by name or state';
    this._filter.setAttribute('aria-label', 'Filter steps by name or state');
    this._filter.dataset.focusKey = 'filter';
    this._filter.addEventListener('input', () => this.update());
    // The filter box stays in place between redraws, so typing in it keeps its focus.
    this._top = el('div', 'km-Sidebar-top');
    this._list = el('div', 'km-Sidebar-list');
    this.node.append(this._top, this._filter, this._list);
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', 'Durable steps');
    model.changed.connect(this.update, this);
    this.update();
  }

  dispose(): void {
    this.model.changed.disconnect(this.update, this);
    this._stopAges();
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.model.setDemand('sidebar', true);
    void this.model.refresh();
    this._ages = window.setInterval(() => this.update(), AGE_REFRESH_MS);
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this.model.setDemand('sidebar', false);
    this._stopAges();
  }

  protected onUpdateRequest(msg: Message): void {
    super.onUpdateRequest(msg);
    // Redrawing replaces the buttons: keep the keyboard where it was.
    const focused = (document.activeElement as HTMLElement | null)?.dataset?.focusKey;
    const inside = this.node.contains(document.activeElement);
    const { top, list } = this._render();
    this._top.replaceChildren(...top);
    this._list.replaceChildren(...list);
    if (inside && focused && document.activeElement !== this._filter) {
      this.node.querySelector<HTMLElement>(`[data-focus-key="${CSS.escape(focused)}"]`)?.focus();
    }
  }

  private _stopAges(): void {
    if (this._ages !== null) {
      window.clearInterval(this._ages);
      this._ages = null;
    }
  }

  /** The parts above the filter box and the list below it; hides the box when not needed. */
  private _render(): { top: HTMLElement[]; list: HTMLElement[] } {
    this._filter.hidden = true;
    const model = this.model;
    const header = el('header', 'km-Sidebar-header');
    header.append(el('h2', 'km-Sidebar-title', 'Durable'));
    if (model.path === null) {
      return {
        top: [header, el('p', 'km-Sidebar-empty', 'Open a notebook to see its durable steps.')],
        list: []
      };
    }
    header.append(el('div', 'km-Sidebar-notebook', model.path));
    if (!model.loaded) {
      // Nothing is known yet: no totals, which would read as "0 steps, nothing saved".
      const loading = el('p', 'km-Sidebar-empty km-Sidebar-loading', 'Reading the store…');
      loading.setAttribute('aria-busy', 'true');
      return { top: [header, loading], list: [] };
    }
    const parts: HTMLElement[] = [header, this._sessionPicker(), this._totals(), this._actions()];
    if (model.error !== null) {
      const error = el('div', 'km-Sidebar-error', model.error);
      error.setAttribute('role', 'alert');
      parts.push(error);
    }
    const pending = model.pending;
    if (model.steps.length === 0 && pending.length === 0 && model.error === null) {
      parts.push(
        el(
          'p',
          'km-Sidebar-empty',
          'No durable steps yet. Run a cell that starts with %%durable ' +
            '(after %load_ext kitteh_magic) and it appears here.'
        )
      );
      return { top: parts, list: [] };
    }
    const count = model.steps.length + pending.length;
    if (count >= FILTER_FROM) {
      this._filter.hidden = false;
    } else {
      this._filter.value = '';
    }
    const filter = this._filter.value;
    const actions: IRowActions = {
      jump: cellId => void this._commands.execute(CommandIDs.jump, { cellId }),
      journal: step => void this._commands.execute(CommandIDs.journal, { step }),
      invalidate: step => void this._commands.execute(CommandIDs.invalidate, { step })
    };
    const now = Date.now();
    const items = [
      ...model.steps
        .filter(row => matches(filter, row.step, shownState(row)))
        .map(row => stepRow(row, actions, now)),
      ...pending
        .filter(cell => matches(filter, cell.step ?? `cell ${cell.index + 1}`, 'not run'))
        .map(cell => pendingRow(cell, actions))
    ];
    if (items.length === 0) {
      return { top: parts, list: [el('p', 'km-Sidebar-empty', `No step matches “${filter.trim()}”.`)] };
    }
    const list = el('ul', 'km-StepList');
    list.setAttribute('aria-label', 'Steps');
    list.append(...items);
    return { top: parts, list: [list] };
  }

  private _sessionPicker(): HTMLElement {
    const box = el('div', 'km-Sidebar-session');
    const names = this.model.sessions;
    const current = this.model.session ?? '';
    const mine = this.model.defaultSession;
    // Path sessions by file name; the full name when two would read the same.
    const labels = new Map<string, number>();
    for (const name of names) {
      labels.set(sessionLabel(name), (labels.get(sessionLabel(name)) ?? 0) + 1);
    }
    const label = (name: string): string =>
      (labels.get(sessionLabel(name)) ?? 0) > 1 ? name : sessionLabel(name);
    const help = (name: string): string =>
      `Session “${name}”` + (name === mine ? ': the one this notebook’s kernel uses' : '');
    box.append(el('span', 'km-Sidebar-label', 'Session'));
    if (names.length <= 1) {
      const only = el('span', 'km-Sidebar-sessionName', label(current));
      only.title = help(current);
      box.append(only);
      return box;
    }
    const select = el('select', 'jp-mod-styled km-SessionPicker');
    select.setAttribute('aria-label', 'Session');
    select.dataset.focusKey = 'session';
    for (const name of names) {
      const option = el('option', '', name === mine ? `${label(name)} (this kernel)` : label(name));
      option.value = name;
      option.title = help(name);
      option.selected = name === current;
      select.append(option);
    }
    select.title = help(current);
    select.addEventListener('change', () => this.model.selectSession(select.value));
    // JupyterLab's styled select hides the native arrow: the wrapper draws one.
    const wrap = el('div', 'km-SessionPicker-wrap');
    wrap.append(select);
    box.append(wrap);
    return box;
  }

  private _totals(): HTMLElement {
    const totals = this.model.totals;
    const box = el('div', 'km-Totals');
    const item = (value: string, label: string, title: string, className: string): HTMLElement => {
      const node = el('div', `km-Total ${className}`);
      node.title = title;
      node.append(el('span', 'km-Total-value', value), el('span', 'km-Total-label', label));
      return node;
    };
    const saved = item(formatSeconds(totals.saved), 'saved',
      `Execution time that replays and resumed calls avoided: ${formatSeconds(totals.saved)}`,
      'km-Total-saved');
    saved.dataset.saved = String(totals.saved);
    box.append(
      item(String(totals.steps), totals.steps === 1 ? 'step' : 'steps',
        'Steps in this session', 'km-Total-steps'),
      item(formatSize(totals.size), 'stored', 'Stored size of the steps’ outputs', 'km-Total-size'),
      saved
    );
    return box;
  }

  private _actions(): HTMLElement {
    const box = el('div', 'km-Actions');
    const run = (id: string) => () => void this._commands.execute(id);
    const stale = this.model.count('stale');
    const runStale = button(
      stale > 0 ? `Run ${stale} stale` : 'Run stale',
      stale > 0
        ? `Run the cells of the ${stale} stale step${stale === 1 ? '' : 's'}, in notebook order`
        : 'No stale steps: every finished step matches its inputs',
      'km-RunStale',
      run(CommandIDs.runStale)
    );
    runStale.prepend(runIcon.element({ tag: 'span', className: 'km-ButtonIcon' }));
    runStale.disabled = stale === 0;
    const refresh = button('Refresh', 'Read the store again', 'km-Refresh',
      run(CommandIDs.refresh), refreshIcon);
    box.append(
      button('Restore', 'Load every finished step of this session into the running kernel ' +
        '(%durable restore), without running any cell', 'km-Restore', run(CommandIDs.restore)),
      runStale,
      button('Reset…', 'Drop every saved step of this session (asks first)', 'km-Reset',
        run(CommandIDs.reset)),
      refresh
    );
    for (const node of box.querySelectorAll<HTMLElement>('button')) {
      node.dataset.focusKey = `action:${node.className}`;
    }
    return box;
  }

  private _filter: HTMLInputElement;
  private _top: HTMLElement;
  private _list: HTMLElement;
  private _ages: number | null = null;
}
