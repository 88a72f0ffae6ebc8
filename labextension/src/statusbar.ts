/**
 * The status-bar item of the current notebook: "4 replayed · saved 12.3 s".
 * Hidden while the notebook has no durable steps (or before the first
 * answer); a click opens the Durable panel.
 */
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { formatSeconds } from './format';
import { DurableModel } from './model';

/** The item's text for a session's counts and total time saved. */
export function statusText(steps: number, replayed: number, saved: number): string {
  const what = replayed > 0 ? `${replayed} replayed` : `${steps} durable step${steps === 1 ? '' : 's'}`;
  return `${what} · saved ${formatSeconds(saved)}`;
}

export class DurableStatus extends Widget {
  constructor(
    private readonly _model: DurableModel,
    private readonly _open: () => void
  ) {
    super({ node: document.createElement('button') });
    this.addClass('km-Status');
    this.addClass('jp-StatusBar-TextItem');
    (this.node as HTMLButtonElement).type = 'button';
    this.node.addEventListener('click', () => this._open());
    _model.changed.connect(this._changed, this);
    this._changed();
  }

  /** Whether the item shows: the current notebook has durable steps. */
  get isActive(): boolean {
    const model = this._model;
    return model.path !== null && model.loaded && model.totals.steps > 0;
  }

  /** Emits when `isActive` may have changed. */
  get activeChanged(): ISignal<this, void> {
    return this._activeChanged;
  }

  dispose(): void {
    this._model.changed.disconnect(this._changed, this);
    super.dispose();
  }

  private _changed(): void {
    const model = this._model;
    const totals = model.totals;
    const replayed = model.count('replayed');
    this.node.textContent = statusText(totals.steps, replayed, totals.saved);
    this.node.dataset.saved = String(totals.saved);
    this.node.dataset.steps = String(totals.steps);
    this.node.title =
      `Durable session “${model.session ?? ''}”: ${totals.steps} step${totals.steps === 1 ? '' : 's'}, ` +
      `${replayed} replayed, ${formatSeconds(totals.saved)} of execution saved by replays ` +
      'and resumed calls. Click to open the Durable panel.';
    const active = this.isActive;
    if (active !== this._wasActive) {
      this._wasActive = active;
      this._activeChanged.emit();
    }
  }

  private _wasActive = false;
  private _activeChanged = new Signal<this, void>(this);
}
