/**
 * Keeps one open notebook bound to its durable session: writes the session
 * into its metadata once it has durable cells, follows it when it moves,
 * tells its kernel (through the server's binding) which notebook it runs,
 * and reports the step marks its kernel sends on IOPub.
 */
import { Notification } from '@jupyterlab/apputils';
import { NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { KernelMessage } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import * as api from './api';
import { durableCells } from './cells';
import {
  IDurableMetadata,
  INotebookRef,
  IStepMark,
  STEP_MARK_DISPLAY_ID,
  STEP_MARK_MIME
} from './tokens';

/** The notebook-metadata key (`kitteh_magic/locate.py`, METADATA_KEY). */
export const METADATA_KEY = 'kitteh_magic';

/** A notebook's durable metadata, as far as it has the shape the server reads. */
export function durableMetadata(panel: NotebookPanel): IDurableMetadata {
  const value: unknown = panel.model?.getMetadata(METADATA_KEY);
  if (typeof value !== 'object' || value === null) {
    return {};
  }
  const own = value as Record<string, unknown>;
  const kept: IDurableMetadata = {};
  if (typeof own.session === 'string' && own.session) {
    kept.session = own.session;
  }
  if (typeof own.store === 'string' && own.store) {
    kept.store = own.store;
  }
  return kept;
}

/** The durable cells of a notebook panel, read from its model. */
export function panelCells(panel: NotebookPanel): ReturnType<typeof durableCells> {
  const model = panel.model;
  if (model === null) {
    return [];
  }
  const cells = [];
  for (let i = 0; i < model.cells.length; i++) {
    const cell = model.cells.get(i);
    cells.push({ id: cell.id, type: cell.type, source: cell.sharedModel.getSource() });
  }
  return durableCells(cells);
}

/** The step mark an IOPub message carries, or null. */
export function stepMark(msg: KernelMessage.IMessage): IStepMark | null {
  if (msg.header.msg_type !== 'update_display_data') {
    return null;
  }
  const content = (msg as KernelMessage.IUpdateDisplayDataMsg).content;
  const transient = content.transient as { display_id?: unknown } | undefined;
  if (transient?.display_id !== STEP_MARK_DISPLAY_ID) {
    return null;
  }
  const mark = content.data?.[STEP_MARK_MIME];
  return typeof mark === 'object' && mark !== null ? (mark as unknown as IStepMark) : null;
}

function folder(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash < 0 ? '' : path.slice(0, slash);
}

export class SessionKeeper implements IDisposable {
  constructor(readonly panel: NotebookPanel) {
    this._path = panel.context.path;
    panel.context.pathChanged.connect(this._onPathChanged, this);
    panel.sessionContext.kernelChanged.connect(this._onKernel, this);
    panel.sessionContext.statusChanged.connect(this._onStatus, this);
    panel.sessionContext.iopubMessage.connect(this._onIOPub, this);
    panel.context.saveState.connect(this._onSaveState, this);
    NotebookActions.executionScheduled.connect(this._onScheduled, this);
    panel.disposed.connect(() => this.dispose());
    void this._start();
  }

  /** Emits each step mark the notebook's kernel sends. */
  get marked(): ISignal<this, IStepMark> {
    return this._marked;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** The notebook as requests name it. */
  get ref(): INotebookRef {
    return { path: this.panel.context.path, metadata: durableMetadata(this.panel) };
  }

  /**
   * Name the notebook's session in its metadata, if it has durable cells or
   * steps and no session yet: the name its path gives now, which is the one
   * its kernel and store use today.
   */
  async claim(): Promise<void> {
    const ref = this.ref;
    if (ref.metadata.session !== undefined) {
      return;
    }
    const listing = await api.fetchSessions({ path: ref.path, metadata: {} });
    const hasSteps = listing.sessions.some(doc => doc.name === listing.session);
    if (hasSteps || panelCells(this.panel).length > 0) {
      await this._write({ ...ref.metadata, session: listing.session });
    }
  }

  /** Tell the notebook's kernel, through the server, which notebook it runs. */
  async bind(): Promise<void> {
    const kernel = this.panel.sessionContext.session?.kernel;
    if (!kernel) {
      return;
    }
    try {
      await api.bindKernel(this.ref, kernel.id);
    } catch (error) {
      if (error instanceof api.DurableApiError && error.status === 404) {
        return; // the kernel went away meanwhile: its successor is bound when it comes
      }
      Notification.warning(
        `Durable: could not tell the kernel of ${this.panel.context.path} where its ` +
          `steps are (${error instanceof Error ? error.message : String(error)}); after a ` +
          'rename it may write to the session of the old name.',
        { autoClose: 8000 }
      );
    }
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    NotebookActions.executionScheduled.disconnect(this._onScheduled, this);
    Signal.clearData(this);
  }

  private async _start(): Promise<void> {
    await this.panel.context.ready;
    await this.panel.sessionContext.ready;
    if (this._disposed) {
      return;
    }
    this._path = this.panel.context.path;
    await this._guard(() => this.claim());
    await this._guard(() => this.bind());
  }

  private _onPathChanged(): void {
    const from = this._path;
    const to = this.panel.context.path;
    this._path = to;
    if (from === to) {
      return;
    }
    void this._guard(() => this._moved(from, to));
  }

  /**
   * The notebook was renamed or moved: keep its session (and, in another
   * folder, its store) in its metadata, then bind its kernel to the new path.
   */
  private async _moved(from: string, to: string): Promise<void> {
    const metadata = durableMetadata(this.panel);
    const sameFolder = folder(from) === folder(to);
    if (!(sameFolder && metadata.session !== undefined)) {
      const reply = await api.notebookMoved(from, { path: to, metadata });
      if (reply.store_found || panelCells(this.panel).length > 0) {
        await this._write(reply.metadata.kitteh_magic);
      }
    }
    await this.bind();
  }

  private _onKernel(): void {
    void this._guard(() => this.bind());
  }

  private _onStatus(_: unknown, status: string): void {
    if (status === 'restarting' || status === 'autorestarting') {
      void this._guard(() => this.bind());
    }
  }

  private _onScheduled(_: unknown, args: { notebook: unknown }): void {
    if (args.notebook === this.panel.content && durableMetadata(this.panel).session === undefined) {
      void this._guard(() => this.claim());
    }
  }

  private _onIOPub(_: unknown, msg: KernelMessage.IMessage): void {
    const mark = stepMark(msg);
    if (mark !== null) {
      this._marked.emit(mark);
    }
  }

  /**
   * A save finished: if durable metadata was written while it was on its
   * way, that save may not hold it (and it marked the notebook clean), so
   * save once more.
   */
  private _onSaveState(_: unknown, state: string): void {
    this._saving = state === 'started';
    if (!this._saving && this._resave && !this._disposed) {
      this._resave = false;
      void this._guard(() => this.panel.context.save());
    }
  }

  /**
   * Write the durable metadata when it changes, and save a notebook that had
   * no unsaved changes (or whose save was on its way), so the file carries
   * its session too.
   */
  private async _write(metadata: IDurableMetadata): Promise<void> {
    const model = this.panel.model;
    if (model === null || JSON.stringify(metadata) === JSON.stringify(durableMetadata(this.panel))) {
      return;
    }
    const wasClean = !model.dirty;
    const duringSave = this._saving;
    const own = model.getMetadata(METADATA_KEY);
    const rest = typeof own === 'object' && own !== null ? { ...own } : {};
    delete rest.store; // a store that no longer applies goes
    model.setMetadata(METADATA_KEY, { ...rest, ...metadata });
    await this.bind();
    if (this.panel.context.contentsModel?.writable === false) {
      return;
    }
    if (this._saving) {
      this._resave = true; // after the save on its way (_onSaveState)
    } else if (wasClean || duringSave) {
      await this.panel.context.save();
    }
  }

  /** Run a step of the keeping; a failure is shown once, never thrown into a signal. */
  private async _guard(work: () => Promise<void>): Promise<void> {
    try {
      await work();
    } catch (error) {
      if (this._disposed) {
        return;
      }
      Notification.warning(
        `Durable: could not keep the session of ${this.panel.context.path}: ` +
          (error instanceof Error ? error.message : String(error)),
        { autoClose: 8000 }
      );
    }
  }

  private _path: string;
  private _saving = false;
  private _resave = false;
  private _disposed = false;
  private _marked = new Signal<this, IStepMark>(this);
}
