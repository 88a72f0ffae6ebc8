/**
 * Types of the REST payloads served by the kitteh_magic server extension
 * (`kitteh_magic/server/handlers.py`), mirroring them field by field.
 */

/** States a step shows: written by kernels (running, done, failed,
 * invalidated) or derived by status (replayed, stale, interrupted). */
export type StepState =
  | 'done'
  | 'replayed'
  | 'running'
  | 'failed'
  | 'stale'
  | 'interrupted'
  | 'invalidated';

/** Every state, in the order the legend shows them. */
export const STEP_STATES: ReadonlyArray<StepState> = [
  'done',
  'replayed',
  'running',
  'failed',
  'stale',
  'interrupted',
  'invalidated'
];

/** A kernel named by a step's lease (`kitteh_magic/steps/lease.py`). */
export interface ILeaseParty {
  pid: number;
  host: string;
  /** Its Jupyter kernel id, '' when unknown. */
  kernel: string;
  /** Unix time it took the lease (holder) or began waiting (waiter). */
  since: number;
}

/** One row of `GET /kitteh-magic/steps`: a step's latest state. */
export interface IStepRow {
  step: string;
  state: StepState;
  cell_id: string | null;
  seq: number;
  runs: number;
  replays: number;
  /** Seconds the last execution took. */
  duration: number;
  /** Seconds of execution that replays avoided, summed. */
  saved: number;
  /** Bytes stored for the step's outputs. */
  size: number;
  /** Activities (journaled calls) of the last finished execution or replay. */
  activities: number;
  /** How many of those the last execution took from an earlier run's journal. */
  resumed: number;
  /**
   * Journal entries of the step's latest execution, counted by the server:
   * live while it runs, the calls an interrupted run finished, and, once it
   * finished, the calls a run after invalidate takes from the journal (a
   * journal is kept until forgotten). Null from older servers.
   */
  journaled: number | null;
  /** Unix times (seconds). */
  started: number;
  finished: number;
  error: string | null;
  key: string | null;
  /** The live kernel executing the step now (it holds the step's lease), else null. */
  holder: ILeaseParty | null;
  /** Live kernels waiting for it: they replay its record when it finishes. */
  waiters: ILeaseParty[];
  /** Names of the variables the step saved (absent from servers before issue 10). */
  outputs?: string[];
  /** Why a stale step is stale (which input changed), else null. */
  stale_reason?: string | null;
  /**
   * Whether the kernel that last ran or replayed it still holds its values; false after a
   * restart with nothing run (the values are only stored). Null or absent when unknown.
   */
  loaded?: boolean | null;
}

/** Sums over a session's steps. */
export interface ITotals {
  steps: number;
  size: number;
  saved: number;
  duration: number;
}

/** `GET /kitteh-magic/steps?path=&session=`. */
export interface IStepsReply {
  session: string;
  steps: IStepRow[];
  totals: ITotals;
}

/** A session document as stored (`records.SessionDoc`). */
export interface ISessionDoc {
  name: string;
  notebook: string | null;
  created: number;
  next_seq: number;
}

/** `GET /kitteh-magic/sessions?path=`. */
export interface ISessionsReply {
  /** The store directory on the server. */
  store: string;
  /** The notebook's default session: the one its kernel uses. */
  session: string;
  notebook: string;
  sessions: ISessionDoc[];
}

/** `POST /kitteh-magic/invalidate`. */
export interface IInvalidateReply {
  session: string;
  step: string;
  invalidated: boolean;
  /** Journal entries kept for the step's next run (0 once forgotten). */
  journal: number;
}

/** One call of a step's journal (`Catalog.journal_view`). */
export interface IJournalCall {
  /** `3`: the third call of the main line; `map0[17]:1` on a branch. */
  label: string;
  /** The callee, `module.qualname`. */
  call: string;
  /** Seconds, retries included. */
  duration: number;
  attempts: number;
  outcome: 'ok' | 'error' | 'started';
  /** The step's latest run took it from the journal instead of making the call. */
  from_journal: boolean;
  /** Unix time it ended (began, for `started`). */
  finished: number;
  branch: string;
  effect: boolean;
  error: string | null;
  unsaved: string | null;
}

/** `GET /kitteh-magic/journal?path=&step=`. */
export interface IJournalReply {
  session: string;
  step: string;
  /** The step's state as its kernel wrote it. */
  state: string;
  calls: IJournalCall[];
}

/** A notebook's own metadata (`metadata.kitteh_magic`, `kitteh_magic/locate.py`). */
export interface IDurableMetadata {
  /** The session it keeps across renames; the name its path gave when first written. */
  session?: string;
  /** Its store's folder relative to the notebook's, once it moved away from it. */
  store?: string;
}

/** Which notebook a request is about: its path and its durable metadata. */
export interface INotebookRef {
  path: string;
  metadata: IDurableMetadata;
}

/** `POST /kitteh-magic/binding`. */
export interface IBindingReply {
  kernel_id: string;
  session: string;
  store: string;
}

/** `POST /kitteh-magic/moved`. */
export interface IMovedReply {
  metadata: { kitteh_magic: IDurableMetadata };
  /** Whether the store of the old place exists. */
  store_found: boolean;
}

/**
 * The step mark a kernel sends on IOPub when a step executed or replayed
 * (ARCHITECTURE, "the replay mark is not an output"): an `update_display_data`
 * for this display id, which frontends drop since they never showed it.
 */
export const STEP_MARK_DISPLAY_ID = 'kitteh-magic-step';
export const STEP_MARK_MIME = 'application/vnd.kitteh-magic.step+json';

export interface IStepMark {
  step: string;
  state: 'executed' | 'replayed';
  duration: number;
  saved: number;
  activities: number;
  resumed: number;
}

/** How durable cells are marked (Settings Editor). */
export type MarkerStyle = 'badge-and-outline' | 'badge' | 'outline';

/** The extension's settings (`schema/plugin.json`). */
export interface IDurableSettings {
  /** Milliseconds between reads of the store while live. */
  pollInterval: number;
  showBadges: boolean;
  markerStyle: MarkerStyle;
}

export const DEFAULT_SETTINGS: IDurableSettings = {
  pollInterval: 1500,
  showBadges: true,
  markerStyle: 'badge-and-outline'
};

/** `POST /kitteh-magic/reset`. */
export interface IResetReply {
  session: string;
  removed: number;
}

/** The body of every error answer. */
export interface IErrorReply {
  error: string;
}
