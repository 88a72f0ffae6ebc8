/**
 * The state of the Durable sidebar, badges and status bar for one notebook
 * at a time: its store's sessions, the selected session's steps and totals,
 * and its durable cells that have not run yet. Polls the server while
 * something asks for live data. No DOM here.
 */
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import * as api from './api';
import { IDurableCell } from './cells';
import {
  DEFAULT_SETTINGS,
  IDurableMetadata,
  IInvalidateReply,
  IJournalReply,
  INotebookRef,
  ISessionDoc,
  IStepRow,
  ITotals
} from './tokens';

const EMPTY_TOTALS: ITotals = { steps: 0, size: 0, saved: 0, duration: 0 };

/** The shortest poll interval accepted: faster polls would only load the server. */
export const MIN_POLL_INTERVAL_MS = 250;

export class DurableModel implements IDisposable {
  constructor(interval: number = DEFAULT_SETTINGS.pollInterval) {
    this._interval = Math.max(MIN_POLL_INTERVAL_MS, interval);
  }

  /** Milliseconds between reads while live; a change applies to the next wait. */
  get interval(): number {
    return this._interval;
  }

  set interval(value: number) {
    const next = Math.max(MIN_POLL_INTERVAL_MS, value);
    if (next === this._interval) {
      return;
    }
    this._interval = next;
    if (this._timer !== null) {
      window.clearTimeout(this._timer);
      this._timer = null;
      this._schedule();
    }
  }

  /** Emits whenever what the model shows changed. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** The API path of the current notebook, or null without one. */
  get path(): string | null {
    return this._path;
  }

  /** The current notebook's durable metadata (`metadata.kitteh_magic`). */
  get metadata(): IDurableMetadata {
    return this._metadata;
  }

  /** The store directory on the server (known after the first answer). */
  get store(): string | null {
    return this._store;
  }

  /** The session the notebook's kernel uses. */
  get defaultSession(): string | null {
    return this._defaultSession;
  }

  /** The session shown: the one picked, else the notebook's default. */
  get session(): string | null {
    return this._picked ?? this._defaultSession;
  }

  /** Session names for the picker: the default one first. */
  get sessions(): string[] {
    const names = this._sessions.map(s => s.name);
    const first = this._defaultSession;
    if (first === null) {
      return names;
    }
    return [first, ...names.filter(name => name !== first)];
  }

  get steps(): ReadonlyArray<IStepRow> {
    return this._steps;
  }

  get totals(): ITotals {
    return this._totals;
  }

  /** The last failure to read, or null when the last read worked. */
  get error(): string | null {
    return this._error;
  }

  /** Whether data for the current path has arrived at least once. */
  get loaded(): boolean {
    return this._loaded;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /**
   * Durable cells of the notebook that no step of its session ran yet (none
   * while another session is shown: they are this notebook's to run).
   */
  get pending(): ReadonlyArray<IDurableCell> {
    if (this.session !== this._defaultSession) {
      return [];
    }
    const steps = new Set(this._steps.map(row => row.step));
    // A named cell is pending when its session has no step of that name, even if an
    // earlier version of the cell ran under another name (the name was edited).
    return this._cells.filter(cell =>
      cell.step !== null ? !steps.has(cell.step) : !this._byCell.has(cell.cellId)
    );
  }

  /** How many steps of the shown session are in a state. */
  count(state: IStepRow['state']): number {
    return this._steps.filter(row => row.state === state).length;
  }

  /** The step whose cell has this id (the latest, if several). */
  rowForCell(cellId: string): IStepRow | undefined {
    // The name the cell gives now wins: a cell whose step name was edited is not its old
    // step any more (its badge, "Invalidate" and "Show journal" must not act on that one).
    const cell = this._cellsById.get(cellId);
    if (cell !== undefined && cell.step !== null) {
      return this.row(cell.step);
    }
    return this._byCell.get(cellId);
  }

  /** The row of a step of the shown session. */
  row(step: string): IStepRow | undefined {
    return this._steps.find(row => row.step === step);
  }

  /**
   * Show another notebook (or none), or the same one with other metadata.
   * Another path forgets the picked session and what was shown.
   */
  setNotebook(path: string | null, metadata: IDurableMetadata = {}): void {
    const sameMetadata = JSON.stringify(metadata) === JSON.stringify(this._metadata);
    if (path === this._path && sameMetadata) {
      return;
    }
    if (path !== this._path) {
      this._picked = null;
      this._cells = [];
      this._cellsById.clear();
      this._clear();
    }
    this._path = path;
    this._metadata = { ...metadata };
    this._emitIfChanged(true);
    void this.refresh();
    this._schedule();
  }

  /** The notebook's durable cells, read from its source (`cells.ts`). */
  setCells(cells: IDurableCell[]): void {
    this._cells = cells;
    this._cellsById = new Map(cells.map(cell => [cell.cellId, cell]));
    this._emitIfChanged(false);
  }

  /** Pick a session to show; null returns to the notebook's default. */
  selectSession(name: string | null): void {
    this._picked = name === this._defaultSession ? null : name;
    this._emitIfChanged(true);
    void this.refresh();
  }

  /**
   * Poll while any source wants live data (the visible sidebar, a busy
   * kernel). Sources are free-form names.
   */
  setDemand(source: string, on: boolean): void {
    if (on) {
      this._demand.add(source);
    } else {
      this._demand.delete(source);
    }
    this._schedule();
  }

  /** Read sessions and steps now; concurrent calls coalesce into one more read. */
  async refresh(): Promise<void> {
    if (this._inFlight) {
      this._again = true;
      return this._inFlight;
    }
    this._inFlight = this._read();
    try {
      await this._inFlight;
    } finally {
      this._inFlight = null;
    }
    if (this._again) {
      this._again = false;
      await this.refresh();
    }
  }

  /** Make the next run of a step execute; null without a notebook. */
  async invalidate(step: string, forgetJournal: boolean): Promise<IInvalidateReply | null> {
    const notebook = this._ref();
    const session = this.session;
    if (notebook === null || session === null) {
      return null;
    }
    const reply = await api.invalidateStep(notebook, session, step, forgetJournal);
    await this.refresh();
    return reply;
  }

  /** The calls of a step of the shown session. */
  async journal(step: string): Promise<IJournalReply | null> {
    const notebook = this._ref();
    const session = this.session;
    if (notebook === null || session === null) {
      return null;
    }
    return api.fetchJournal(notebook, session, step);
  }

  /** Drop the shown session's records; returns how many steps it had. */
  async reset(): Promise<number> {
    const notebook = this._ref();
    const session = this.session;
    if (notebook === null || session === null) {
      return 0;
    }
    const reply = await api.resetSession(notebook, session);
    await this.refresh();
    return reply.removed;
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._demand.clear();
    this._schedule();
    Signal.clearData(this);
  }

  private _ref(): INotebookRef | null {
    return this._path === null ? null : { path: this._path, metadata: this._metadata };
  }

  private async _read(): Promise<void> {
    const notebook = this._ref();
    if (notebook === null) {
      return;
    }
    const asked = JSON.stringify(notebook);
    const path = notebook.path;
    try {
      const listing = await api.fetchSessions(notebook);
      const session = this._picked ?? listing.session;
      const status = await api.fetchSteps(notebook, session);
      if (asked !== JSON.stringify(this._ref()) || session !== this.sessionFor(listing.session)) {
        return; // the user moved on while we were reading
      }
      this._store = listing.store;
      this._defaultSession = listing.session;
      this._sessions = listing.sessions;
      this._steps = status.steps;
      this._totals = status.totals;
      this._error = null;
    } catch (error) {
      if (path !== this._path) {
        return;
      }
      this._error = error instanceof Error ? error.message : String(error);
    }
    this._loaded = true;
    this._indexCells();
    this._emitIfChanged(false);
  }

  private sessionFor(defaultSession: string): string {
    return this._picked ?? defaultSession;
  }

  private _indexCells(): void {
    this._byCell.clear();
    for (const row of this._steps) {
      if (row.cell_id === null) {
        continue;
      }
      const known = this._byCell.get(row.cell_id);
      if (known === undefined || known.started <= row.started) {
        this._byCell.set(row.cell_id, row);
      }
    }
  }

  private _clear(): void {
    this._store = null;
    this._defaultSession = null;
    this._sessions = [];
    this._steps = [];
    this._totals = EMPTY_TOTALS;
    this._error = null;
    this._loaded = false;
    this._byCell.clear();
  }

  /** Emit only when the visible state changed, so views keep focus and hover. */
  private _emitIfChanged(force: boolean): void {
    const snapshot = JSON.stringify([
      this._path,
      this._metadata,
      this.session,
      this._store,
      this._cells,
      this._sessions,
      this._steps,
      this._totals,
      this._error,
      this._loaded
    ]);
    if (force || snapshot !== this._snapshot) {
      this._snapshot = snapshot;
      this._changed.emit();
    }
  }

  private _schedule(): void {
    const live = !this._disposed && this._demand.size > 0 && this._path !== null;
    if (!live && this._timer !== null) {
      window.clearTimeout(this._timer);
      this._timer = null;
    } else if (live && this._timer === null) {
      this._timer = window.setTimeout(async () => {
        await this.refresh();
        this._timer = null;
        this._schedule();
      }, this._interval);
    }
  }

  private _interval: number;
  private _path: string | null = null;
  private _metadata: IDurableMetadata = {};
  private _cells: IDurableCell[] = [];
  private _picked: string | null = null;
  private _store: string | null = null;
  private _defaultSession: string | null = null;
  private _sessions: ISessionDoc[] = [];
  private _steps: IStepRow[] = [];
  private _totals: ITotals = EMPTY_TOTALS;
  private _error: string | null = null;
  private _loaded = false;
  private _byCell = new Map<string, IStepRow>();
  private _cellsById = new Map<string, IDurableCell>();
  private _snapshot = '';
  private _inFlight: Promise<void> | null = null;
  private _again = false;
  private _timer: number | null = null;
  private _demand = new Set<string>();
  private _disposed = false;
  private _changed = new Signal<this, void>(this);
}
