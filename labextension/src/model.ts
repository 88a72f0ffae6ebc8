/**
 * The state of the Durable sidebar for one notebook at a time: its store's
 * sessions, the selected session's steps and totals. Polls the server while
 * something asks for live data. No DOM here.
 */
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import * as api from './api';
import { ISessionDoc, IStepRow, ITotals } from './tokens';

/** How often to poll while live (the sidebar promises ≤ 2 s). */
export const POLL_INTERVAL_MS = 1500;

const EMPTY_TOTALS: ITotals = { steps: 0, size: 0, saved: 0, duration: 0 };

export class DurableModel implements IDisposable {
  constructor(readonly interval: number = POLL_INTERVAL_MS) {}

  /** Emits whenever what the model shows changed. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** The API path of the current notebook, or null without one. */
  get path(): string | null {
    return this._path;
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

  /** The step whose cell has this id (the latest, if several). */
  rowForCell(cellId: string): IStepRow | undefined {
    return this._byCell.get(cellId);
  }

  /** Show another notebook (or none): forgets the picked session. */
  setPath(path: string | null): void {
    if (path === this._path) {
      return;
    }
    this._path = path;
    this._picked = null;
    this._clear();
    this._emitIfChanged(true);
    void this.refresh();
    this._schedule();
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

  /** Make the next run of a step execute. */
  async invalidate(step: string): Promise<boolean> {
    const path = this._path;
    const session = this.session;
    if (path === null || session === null) {
      return false;
    }
    const reply = await api.invalidateStep(path, session, step);
    await this.refresh();
    return reply.invalidated;
  }

  /** Drop the shown session's records; returns how many steps it had. */
  async reset(): Promise<number> {
    const path = this._path;
    const session = this.session;
    if (path === null || session === null) {
      return 0;
    }
    const reply = await api.resetSession(path, session);
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

  private async _read(): Promise<void> {
    const path = this._path;
    if (path === null) {
      return;
    }
    try {
      const listing = await api.fetchSessions(path);
      const session = this._picked ?? listing.session;
      const status = await api.fetchSteps(path, session);
      if (path !== this._path || session !== this.sessionFor(listing.session)) {
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
      this.session,
      this._store,
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
      }, this.interval);
    }
  }

  private _path: string | null = null;
  private _picked: string | null = null;
  private _store: string | null = null;
  private _defaultSession: string | null = null;
  private _sessions: ISessionDoc[] = [];
  private _steps: IStepRow[] = [];
  private _totals: ITotals = EMPTY_TOTALS;
  private _error: string | null = null;
  private _loaded = false;
  private _byCell = new Map<string, IStepRow>();
  private _snapshot = '';
  private _inFlight: Promise<void> | null = null;
  private _again = false;
  private _timer: number | null = null;
  private _demand = new Set<string>();
  private _disposed = false;
  private _changed = new Signal<this, void>(this);
}
