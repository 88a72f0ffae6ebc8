/**
 * One entry of the Durable panel's list: a step of the shown session, or a
 * durable cell that has not run yet.
 */
import { cleaningIcon, listIcon } from '@jupyterlab/ui-components';

import { IDurableCell } from './cells';
import { button, el } from './dom';
import {
  STATE_GLYPHS,
  STATE_HELP,
  STORED_HELP,
  activityFact,
  formatAge,
  formatSeconds,
  formatSize,
  leaseFact,
  shownState
} from './format';
import { IStepRow } from './tokens';

/** What a row's controls do. */
export interface IRowActions {
  jump(cellId: string): void;
  journal(step: string): void;
  invalidate(step: string): void;
}

/** At most this many output names are listed; the tooltip has them all. */
const OUTPUTS_SHOWN = 6;

/** The step name: a button that moves to its cell (Enter or a click). */
function nameButton(text: string, cellId: string | null, actions: IRowActions, key: string): HTMLElement {
  if (cellId === null) {
    const name = el('span', 'km-Step-name', text);
    name.title = `${text} (its cell is not in this notebook)`;
    return name;
  }
  const name = el('button', 'km-Step-name km-mod-link', text);
  name.type = 'button';
  name.title = `Go to the cell of “${text}”`;
  name.dataset.focusKey = key;
  name.addEventListener('click', () => actions.jump(cellId));
  return name;
}

/** The list entry of a step. */
export function stepRow(row: IStepRow, actions: IRowActions, now: number): HTMLElement {
  const state = shownState(row);
  const item = el('li', `km-Step km-state-${row.state}`);
  if (state === 'stored') {
    item.classList.add('km-mod-stored');
  }
  item.dataset.step = row.step;
  item.dataset.state = row.state;
  item.dataset.shown = state;
  const icon = el('span', 'km-StateIcon', STATE_GLYPHS[row.state] ?? '?');
  icon.title = state === 'stored' ? STORED_HELP : STATE_HELP[row.state] ?? row.state;
  icon.setAttribute('aria-hidden', 'true');
  const label = el('span', 'km-Step-state', state);
  label.title = icon.title;

  const calls = Math.max(row.activities, row.journaled ?? 0);
  const journal = button(
    `Show the journal of ${row.step}`,
    `Journal of “${row.step}”: its calls, their durations, which came from the journal`,
    'km-Journal',
    () => actions.journal(row.step),
    listIcon
  );
  journal.dataset.focusKey = `journal:${row.step}`;
  journal.disabled = !calls;
  const invalidate = button(
    `Invalidate ${row.step}`,
    `Invalidate “${row.step}”: its next run executes (asks first)`,
    'km-Invalidate',
    () => actions.invalidate(row.step),
    cleaningIcon // a broom sweeps the record away: not the failed state's ✕
  );
  invalidate.dataset.focusKey = `invalidate:${row.step}`;
  invalidate.disabled = row.state === 'invalidated' || row.state === 'running';
  const top = el('div', 'km-Step-top');
  top.append(icon, nameButton(row.step, row.cell_id, actions, `name:${row.step}`), label, journal, invalidate);

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
    fact(formatSeconds(row.duration),
      `duration of the last execution: ${formatSeconds(row.duration)}`, 'km-Step-duration');
  } else if (row.duration > 0) {
    fact(`last ${formatSeconds(row.duration)}`,
      `duration of the previous execution: ${formatSeconds(row.duration)}`, 'km-Step-duration');
  }
  if (row.saved >= 0.001) {
    const saved = el('span', 'km-Step-saved', `saved ${formatSeconds(row.saved)}`);
    saved.title = `time saved by ${row.replays} replay${row.replays === 1 ? '' : 's'} and ` +
      `resumed calls: ${formatSeconds(row.saved)}`;
    saved.dataset.saved = String(row.saved);
    meta.append(saved);
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
  if (row.finished > 0 && !unfinished) {
    fact(formatAge(row.finished, now),
      `recorded ${new Date(row.finished * 1000).toLocaleString()}`, 'km-Step-age');
  }
  item.append(top, meta);

  const outputs = row.outputs ?? [];
  if (outputs.length > 0) {
    const shown = outputs.slice(0, OUTPUTS_SHOWN).join(', ');
    const more = outputs.length > OUTPUTS_SHOWN ? ` +${outputs.length - OUTPUTS_SHOWN}` : '';
    const line = el('div', 'km-Step-outputs');
    line.append(el('span', 'km-Step-outputsLabel', 'saved '), el('code', '', shown + more));
    line.title = `variables this step saved: ${outputs.join(', ')}`;
    item.append(line);
  }
  if (row.state === 'stale' && row.stale_reason) {
    const reason = el('div', 'km-Step-reason', row.stale_reason);
    reason.title = 'why this step is stale: its next run executes';
    item.append(reason);
  }
  if (row.error) {
    item.append(el('div', 'km-Step-error', row.error));
  }
  return item;
}

/** The list entry of a durable cell with no step yet. */
export function pendingRow(cell: IDurableCell, actions: IRowActions): HTMLElement {
  const name = cell.step ?? `cell ${cell.index + 1}`;
  const item = el('li', 'km-Step km-mod-pending');
  item.dataset.cell = cell.cellId;
  if (cell.step !== null) {
    item.dataset.step = cell.step; // as a step's row: found the same way once it runs
  }
  item.dataset.state = 'not-run';
  const icon = el('span', 'km-StateIcon', '○');
  icon.setAttribute('aria-hidden', 'true');
  const label = el('span', 'km-Step-state', 'not run');
  label.title = 'a %%durable cell that has not run in this session yet';
  const top = el('div', 'km-Step-top');
  top.append(icon, nameButton(name, cell.cellId, actions, `cell:${cell.cellId}`), label);
  item.append(top);
  return item;
}

/** Whether a list entry matches the filter text (name, or state from its start). */
export function matches(filter: string, name: string, state: string): boolean {
  const text = filter.trim().toLowerCase();
  return text === '' || name.toLowerCase().includes(text) || state.toLowerCase().startsWith(text);
}
