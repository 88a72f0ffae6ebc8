/**
 * The durable cells a notebook holds, read from their source: the cells
 * that start with `%%durable`, and the step name each one gives. No DOM.
 */

/** `%%durable` options that take a value (DESIGN §3); `--force` is a flag. */
const VALUED = new Set(['--session', '--mode', '--retries', '--backoff', '--timeout', '--wait']);

/** A durable cell of a notebook. */
export interface IDurableCell {
  cellId: string;
  /** Its position in the notebook. */
  index: number;
  /** The step name its magic line gives, or null (then named from the cell id). */
  step: string | null;
}

/**
 * The step name of a cell's source: a string or null when it is a durable
 * cell, undefined when it is not one.
 *
 *     durableStep('%%durable load --retries 2\nx = 1')  // 'load'
 *     durableStep('%%durable --mode step\nx = 1')       // null
 *     durableStep('x = 1')                              // undefined
 */
export function durableStep(source: string): string | null | undefined {
  const first = source.replace(/^\s*\n/, '').split('\n', 1)[0].trim();
  const match = /^%%durable(?:\s+(.*))?$/.exec(first);
  if (match === null) {
    return undefined;
  }
  const words = (match[1] ?? '').split(/\s+/).filter(word => word.length > 0);
  for (let i = 0; i < words.length; i++) {
    const word = words[i];
    if (word.startsWith('-')) {
      if (VALUED.has(word)) {
        i++; // its value
      }
      continue;
    }
    return word.replace(/^(['"])(.*)\1$/, '$2');
  }
  return null;
}

/** The durable cells of a list of cells, in notebook order. */
export function durableCells(
  cells: Iterable<{ id: string; type: string; source: string }>
): IDurableCell[] {
  const found: IDurableCell[] = [];
  let index = 0;
  for (const cell of cells) {
    const step = cell.type === 'code' ? durableStep(cell.source) : undefined;
    if (step !== undefined) {
      found.push({ cellId: cell.id, index, step });
    }
    index++;
  }
  return found;
}
