/**
 * Human-readable numbers and state labels shared by the sidebar and the badges.
 */
import { IStepRow, StepState } from './tokens';

/**
 * Seconds as `850 ms`, `12.3 s`, `4 min 5 s`, `2 h 3 min`: the one format of
 * durations everywhere (panel, badges, status bar, journal), the same as
 * Python's `kitteh_magic.status.human_seconds` (`%durable status`, the CLI),
 * so one figure reads the same in every place.
 */
export function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds <= 0) {
    return '0 s';
  }
  if (seconds < 0.9995) {
    return `${Math.round(seconds * 1000)} ms`;
  }
  if (seconds < 59.95) {
    return `${seconds.toFixed(1)} s`;
  }
  // Round first, so 119.6 s is "2 min 0 s", not "1 min 60 s".
  const total = Math.round(seconds);
  const minutes = Math.floor(total / 60);
  if (minutes < 60) {
    return `${minutes} min ${total - minutes * 60} s`;
  }
  const hours = Math.floor(minutes / 60);
  return `${hours} h ${minutes - hours * 60} min`;
}

/**
 * What the session picker shows for a session name: a path session (a
 * notebook outside its store's folder) by its file name only.
 */
export function sessionLabel(name: string): string {
  const slash = name.replace(/\/+$/, '').lastIndexOf('/');
  return slash < 0 ? name : name.slice(slash + 1);
}

/** Bytes as `512 B`, `1.2 KB`, `3.4 MB` (powers of 1024). */
export function formatSize(size: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = Math.max(0, size);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/**
 * How long ago a Unix time was, for a record's age: `just now`, `45 s ago`,
 * `3 min ago`, `2 h ago`, `4 d ago`.
 */
export function formatAge(unixSeconds: number, nowMs: number = Date.now()): string {
  const seconds = Math.max(0, nowMs / 1000 - unixSeconds);
  if (seconds < 10) {
    return 'just now';
  }
  if (seconds < 60) {
    return `${Math.floor(seconds)} s ago`;
  }
  if (seconds < 3600) {
    return `${Math.floor(seconds / 60)} min ago`;
  }
  if (seconds < 86400) {
    return `${Math.floor(seconds / 3600)} h ago`;
  }
  return `${Math.floor(seconds / 86400)} d ago`;
}

/**
 * The state a row shows: a finished step whose values the kernel does not
 * hold (it restarted since) is "stored", not "done" or "replayed".
 */
export function shownState(row: IStepRow): StepState | 'stored' {
  const finished = row.state === 'done' || row.state === 'replayed';
  return finished && row.loaded === false ? 'stored' : row.state;
}

/** What "stored" means, for tooltips. */
export const STORED_HELP =
  'stored: finished and saved, but not loaded in the running kernel (it restarted since); ' +
  'running the cell replays it, Restore loads every stored step';

/** A short glyph per state, drawn in the state's colour by the stylesheet. */
export const STATE_GLYPHS: Readonly<Record<StepState, string>> = {
  done: '✓',
  replayed: '↻',
  running: '●',
  failed: '✕',
  stale: '≈',
  interrupted: '!',
  invalidated: '∅'
};

/** What an activity is, for tooltips. */
export const ACTIVITY_HELP =
  'Activities are calls that leave the notebook (HTTP, SDK clients, databases, ' +
  'clocks, randomness, time.sleep): each is journaled as it finishes, so a replay ' +
  'or a re-run after a crash takes its result from the store instead of calling again.';

/** The plural of "call". */
export function calls(n: number): string {
  return `${n} call${n === 1 ? '' : 's'}`;
}

/** What each state means, for tooltips. */
export const STATE_HELP: Readonly<Record<StepState, string>> = {
  done: 'done: executed and saved',
  replayed: 'replayed: restored from the store without executing',
  running: 'running now',
  failed: 'failed: the next run executes it again',
  stale: 'stale: a step it reads from has produced something else since',
  interrupted: 'interrupted: the kernel running it is gone',
  invalidated: 'invalidated: the next run executes it'
};

/** A step's activity count as shown: short text and what it means. */
export interface IActivityFact {
  count: number;
  text: string;
  title: string;
}

/**
 * The activity count a row shows, or null when it has none to show. A
 * running step counts its journal live; a finished one shows its last run's.
 */
export function activityFact(row: IStepRow): IActivityFact | null {
  if (row.state === 'running' || row.state === 'interrupted') {
    const n = row.journaled ?? 0;
    if (n === 0) {
      return null;
    }
    const title =
      row.state === 'running'
        ? `${n} ${n === 1 ? 'activity' : 'activities'} journaled so far in this run ` +
          '(counted as each call finishes).'
        : `The interrupted run journaled ${n} ${n === 1 ? 'activity' : 'activities'}: ` +
          `re-running the cell takes their results from the journal and goes on from call ${n + 1}.`;
    const text = row.state === 'running' ? `${calls(n)} so far` : `${calls(n)} journaled`;
    return { count: n, text, title: `${title}\n${ACTIVITY_HELP}` };
  }
  const n = row.activities;
  if (!n) {
    return null;
  }
  const resumed = row.resumed ?? 0;
  let title: string;
  if (row.state === 'replayed') {
    title = `${n} ${n === 1 ? 'activity' : 'activities'} in the recorded run; the replay called none of them.`;
  } else if (row.state === 'failed') {
    title = `${n} ${n === 1 ? 'activity' : 'activities'} before the failure.`;
  } else {
    title = `${n} ${n === 1 ? 'activity' : 'activities'} journaled in the last run` +
      (resumed > 0 ? `, ${resumed} of them taken from the journal of an interrupted run.` : '.');
  }
  const text = resumed > 0 && row.state !== 'replayed' ? `${calls(n)} (${resumed} resumed)` : calls(n);
  return { count: n, text, title: `${title}\n${ACTIVITY_HELP}` };
}

/** The text and tooltip of who runs a step and who waits for it. */
export interface ILeaseFact {
  text: string;
  title: string;
}

/**
 * "kernel 4242 on gpu-3 · 1 waiting": which kernel executes a step while
 * others wait for it (one runner per step), or null when none holds it.
 */
export function leaseFact(row: IStepRow): ILeaseFact | null {
  const holder = row.holder ?? null;
  const waiters = row.waiters ?? [];
  if (holder === null && waiters.length === 0) {
    return null;
  }
  const name = (p: { pid: number; host: string }): string => `kernel ${p.pid} on ${p.host}`;
  const parts: string[] = [];
  const lines: string[] = [];
  if (holder !== null) {
    parts.push(name(holder));
    const since = new Date(holder.since * 1000).toLocaleTimeString();
    lines.push(`${name(holder)} runs this step (since ${since}).`);
  }
  if (waiters.length > 0) {
    parts.push(`${waiters.length} waiting`);
    lines.push(`Waiting for it, to replay its record: ${waiters.map(name).join(', ')}.`);
  }
  return { text: parts.join(' · '), title: lines.join('\n') };
}
