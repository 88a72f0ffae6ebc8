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
   * Running or interrupted steps only (else null): journal entries written
   * so far by the unfinished execution, counted live by the server (the
   * kernel writes the step's pointer at start and end only).
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
}

/** `POST /kitteh-magic/reset`. */
export interface IResetReply {
  session: string;
  removed: number;
}

/** The body of every error answer. */
export interface IErrorReply {
  error: string;
}
