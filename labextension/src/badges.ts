/**
 * A badge on each durable cell of the current notebook, from the model's
 * step rows matched by cell id: done, replayed (and the time it saved),
 * stored (finished, not loaded in the kernel), running, failed, stale,
 * interrupted, invalidated. The figure saved is the row's, as the server
 * sends it. Settings choose how cells are marked (a class on the body).
 */
import { Cell } from '@jupyterlab/cells';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IDisposable } from '@lumino/disposable';

import {
  STATE_GLYPHS,
  STATE_HELP,
  STORED_HELP,
  activityFact,
  calls,
  formatSeconds,
  formatSize,
  shownState
} from './format';
import { DurableModel } from './model';
import { IDurableSettings, IStepRow, STEP_STATES } from './tokens';

const CELL_CLASS = 'km-DurableCell';
const BADGE_CLASS = 'km-Badge';

/** The badge's text: short enough for one line above the editor. */
export function badgeText(row: IStepRow): string {
  const activities = activityFact(row);
  const count = activities === null ? '' : ` · ${calls(activities.count)}`;
  // The step's time saved wherever its panel row shows it (replays, and calls resumed from
  // the journal of an interrupted run, which leave the step "done"): one figure in both.
  const saved = row.saved >= 0.001 ? ` · saved ${formatSeconds(row.saved)}` : '';
  if (shownState(row) === 'stored') {
    return `stored · ${formatSeconds(row.duration)}${saved}${count}`;
  }
  switch (row.state) {
    case 'done':
      return `durable · ${formatSeconds(row.duration)}${saved}${count}`;
    case 'replayed':
      return `replayed${saved}${count}`;
    case 'running':
      return `running…${count}`;
    case 'interrupted':
      return activities === null ? 'interrupted' : `interrupted · ${activities.text}`;
    default:
      return `${row.state}${saved}`;
  }
}

function badgeTitle(row: IStepRow): string {
  const lines = [
    `step “${row.step}”: ${shownState(row) === 'stored' ? STORED_HELP : STATE_HELP[row.state] ?? row.state}`,
    `runs ${row.runs}, replays ${row.replays}, last run ${formatSeconds(row.duration)}`,
    `saved ${formatSeconds(row.saved)}, stored ${formatSize(row.size)}`
  ];
  const activities = activityFact(row);
  if (activities !== null) {
    lines.push(activities.title);
  }
  if (row.error) {
    lines.push(row.error);
  }
  return lines.join('\n');
}

/**
 * Mark one cell (or clear its mark when it has no step). Returns false when
 * the cell has not rendered its header yet (windowed notebooks render cells
 * lazily); the caller retries once the cell is ready.
 */
export function applyBadge(cell: Cell, row: IStepRow | undefined): boolean {
  for (const state of STEP_STATES) {
    cell.toggleClass(`km-state-${state}`, row?.state === state);
  }
  cell.toggleClass(CELL_CLASS, row !== undefined);
  if (row === undefined) {
    delete cell.node.dataset.kmStep;
  } else {
    cell.node.dataset.kmStep = row.step;
  }
  // The header is empty (and zero-high) in stock JupyterLab and nothing
  // rewrites it, unlike the input prompt whose text is replaced on every run.
  const header = cell.node.querySelector<HTMLElement>(':scope > .jp-CellHeader');
  if (header === null) {
    return row === undefined;
  }
  let badge = header.querySelector<HTMLElement>(`:scope > .${BADGE_CLASS}`);
  if (row === undefined) {
    badge?.remove();
    return true;
  }
  if (badge === null) {
    badge = document.createElement('div');
    badge.className = BADGE_CLASS;
    badge.append(document.createElement('span'), document.createElement('span'));
    badge.firstElementChild!.className = 'km-Badge-icon';
    badge.lastElementChild!.className = 'km-Badge-text';
    header.append(badge);
  }
  badge.dataset.state = row.state;
  badge.dataset.shown = shownState(row);
  badge.dataset.saved = String(row.saved);
  badge.title = badgeTitle(row);
  badge.firstElementChild!.textContent = STATE_GLYPHS[row.state] ?? '?';
  badge.lastElementChild!.textContent = badgeText(row);
  return true;
}

/** Keeps the badges of the tracker's current notebook in step with the model. */
export class CellBadges implements IDisposable {
  constructor(
    private readonly _model: DurableModel,
    private readonly _tracker: INotebookTracker
  ) {
    _model.changed.connect(this.update, this);
    _tracker.currentChanged.connect(this._follow, this);
    this._follow();
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /**
   * How cells are marked: badges on or off, and their style. A class of the
   * body, so a change applies at once to every notebook.
   */
  configure(settings: Pick<IDurableSettings, 'showBadges' | 'markerStyle'>): void {
    document.body.dataset.kmMarkers = settings.showBadges ? settings.markerStyle : 'off';
  }

  /** Redraw every badge of the current notebook. */
  update(): void {
    const panel = this._panel;
    if (panel === null || panel.context.path !== this._model.path) {
      return;
    }
    for (const cell of panel.content.widgets) {
      const done = applyBadge(cell, this._model.rowForCell(cell.model.id));
      if (!done && !this._waiting.has(cell)) {
        this._waiting.add(cell);
        void cell.ready.then(() => {
          this._waiting.delete(cell);
          this.update();
        });
      }
    }
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    delete document.body.dataset.kmMarkers;
    this._watch(null);
    this._model.changed.disconnect(this.update, this);
    this._tracker.currentChanged.disconnect(this._follow, this);
  }

  private _follow(): void {
    this._watch(this._tracker.currentWidget);
    this.update();
  }

  private _watch(panel: NotebookPanel | null): void {
    this._panel?.content.model?.cells.changed.disconnect(this.update, this);
    this._panel = panel;
    panel?.content.model?.cells.changed.connect(this.update, this);
  }

  private _panel: NotebookPanel | null = null;
  private _waiting = new WeakSet<Cell>();
  private _disposed = false;
}
