/**
 * Human-readable numbers and state labels shared by the sidebar and the badges.
 */
import { StepState } from './tokens';

/** Seconds as `850 ms`, `12.3 s`, `4 min 05 s`, `2 h 03 min`. */
export function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds <= 0) {
    return '0 s';
  }
  if (seconds < 1) {
    return `${Math.round(seconds * 1000)} ms`;
  }
  if (seconds < 60) {
    return `${seconds.toFixed(1)} s`;
  }
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) {
    const rest = Math.round(seconds - minutes * 60);
    return `${minutes} min ${String(rest).padStart(2, '0')} s`;
  }
  const hours = Math.floor(minutes / 60);
  return `${hours} h ${String(minutes - hours * 60).padStart(2, '0')} min`;
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
