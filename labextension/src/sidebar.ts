/**
 * The "Durable" sidebar: the current notebook's session, its steps with
 * state, timings and sizes, and the actions on them.
 */
import { CommandRegistry } from '@lumino/commands';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { CommandIDs } from './actions';
import {
  STATE_GLYPHS,
  STATE_HELP,
  activityFact,
  formatSeconds,
  formatSecondsShort,
  formatSize,
  leaseFact,
  sessionLabel
} from './format';
import { durableIcon } from './icons';
import { DurableModel } from './model';
import { IStepRow } from './tokens';

export const SIDEBAR_ID = 'kitteh-magic-durable';

/** Create an element with a class and optional text. */
function el<K extends keyof HTMLElementTagNameMap>(
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

function button(label: string, title: string, className: string, run: () => void): HTMLButtonElement {
  const node = el('button', `jp-Button jp-mod-minimal km-Button ${className}`, label);
  node.type = 'button';
  node.title = title;
  node.addEventListener('click', event => {
    event.stopPropagation();
    run();
  });
  return node;
}

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
    model.changed.connect(this.update, this);
    this.update();
  }

  dispose(): void {
    this.model.changed.disconnect(this.update, this);
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.model.setDemand('sidebar', true);
    void this.model.refresh();
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this.model.setDemand('sidebar', false);
  }

  protected onUpdateRequest(msg: Message): void {
    super.onUpdateRequest(msg);
    this.node.replaceChildren(...this._render());
  }

  private _render(): HTMLElement[] {
    const model = this.model;
    const header = el('header', 'km-Sidebar-header');
    header.append(el('h2', 'km-Sidebar-title', 'Durable'));
    if (model.path === null) {
      return [header, el('p', 'km-Sidebar-empty', 'Open a notebook to see its durable steps.')];
    }
    header.append(el('div', 'km-Sidebar-notebook', model.path));
    const parts: HTMLElement[] = [header, this._sessionPicker(), this._totals(), this._actions()];
    if (model.error !== null) {
      parts.push(el('div', 'km-Sidebar-error', model.error));
    }
    if (!model.loaded) {
      parts.push(el('p', 'km-Sidebar-empty', 'Loading…'));
    } else if (model.steps.length === 0 && model.error === null) {
      parts.push(
        el(
          'p',
          'km-Sidebar-empty',
          'No durable steps yet. Run a cell that starts with %%durable ' +
            '(after %load_ext kitteh_magic) and it appears here.'
        )
      );
    } else {
      const list = el('ul', 'km-StepList');
      list.append(...model.steps.map(row => this._row(row)));
      parts.push(list);
    }
    return parts;
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
    box.append(
      item(String(totals.steps), totals.steps === 1 ? 'step' : 'steps',
        'Steps in this session', 'km-Total-steps'),
      item(formatSize(totals.size), 'stored', 'Stored size of the steps’ outputs', 'km-Total-size'),
      item(formatSecondsShort(totals.saved), 'saved',
        `Execution time that replays avoided: ${formatSeconds(totals.saved)}`, 'km-Total-saved')
    );
    return box;
  }

  private _actions(): HTMLElement {
    const box = el('div', 'km-Actions');
    const run = (id: string) => () => void this._commands.execute(id);
    box.append(
      button('Restore', 'Restore every finished step into the running kernel (%durable restore)',
        'km-Restore', run(CommandIDs.restore)),
      button('Refresh', 'Read the store again', 'km-Refresh', run(CommandIDs.refresh)),
      button('Reset…', 'Drop every saved step of this session', 'km-Reset', run(CommandIDs.reset))
    );
    return box;
  }

  private _row(row: IStepRow): HTMLElement {
    const item = el('li', `km-Step km-state-${row.state}`);
    item.dataset.step = row.step;
    item.dataset.state = row.state;
    const icon = el('span', 'km-StateIcon', STATE_GLYPHS[row.state] ?? '?');
    icon.title = STATE_HELP[row.state] ?? row.state;
    const name = el('span', 'km-Step-name', row.step);
    name.title = row.cell_id ? `Go to the cell of “${row.step}”` : row.step;
    if (row.cell_id) {
      name.classList.add('km-mod-link');
      const cellId = row.cell_id;
      name.addEventListener('click', () => void this._commands.execute(CommandIDs.jump, { cellId }));
    }
    const state = el('span', 'km-Step-state', row.state);
    const invalidate = button('✕', `Invalidate “${row.step}”: its next run executes`,
      'km-Invalidate', () => void this._commands.execute(CommandIDs.invalidate, { step: row.step }));
    invalidate.disabled = row.state === 'invalidated' || row.state === 'running';
    const top = el('div', 'km-Step-top');
    top.append(icon, name, state, invalidate);

    const meta = el('div', 'km-Step-meta');
    const fact = (text: string, title: string, className: string): void => {
      const node = el('span', className, text);
      node.title = title;
      meta.append(node);
    };
    // An unfinished execution has no duration or size of its own yet: show the previous
    // execution's, marked as such, and nothing when there was none.
    const unfinished = row.state === 'running' || row.state === 'interrupted';
    if (!unfinished) {
      fact(formatSecondsShort(row.duration),
        `duration of the last execution: ${formatSeconds(row.duration)}`, 'km-Step-duration');
    } else if (row.duration > 0) {
      fact(`last ${formatSecondsShort(row.duration)}`,
        `duration of the previous execution: ${formatSeconds(row.duration)}`, 'km-Step-duration');
    }
    if (row.saved >= 0.001) {
      fact(`saved ${formatSecondsShort(row.saved)}`,
        `time saved by ${row.replays} replay${row.replays === 1 ? '' : 's'}: ` +
          formatSeconds(row.saved), 'km-Step-saved');
    }
    if (!unfinished || row.size > 0) {
      fact(formatSize(row.size), 'stored size of its outputs', 'km-Step-size');
    }
    const lease = leaseFact(row);
    if (lease !== null) {
      fact(lease.text, lease.title, 'km-Step-lease');
      item.dataset.holder = String(row.holder?.pid ?? '');
      item.dataset.waiters = String(row.waiters?.length ?? 0);
    }
    const activities = activityFact(row);
    if (activities !== null) {
      fact(activities.text, activities.title, 'km-Step-activities');
      item.dataset.activities = String(activities.count);
    }
    item.append(top, meta);
    if (row.error) {
      item.append(el('div', 'km-Step-error', row.error));
    }
    return item;
  }
}
