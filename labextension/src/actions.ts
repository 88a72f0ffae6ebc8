/**
 * What the commands do beyond the REST calls: talk to the notebook's
 * kernel, run cells, move to a cell, ask for confirmation.
 */
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import { NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { KernelMessage } from '@jupyterlab/services';

import { DurableModel } from './model';

/** The commands of the extension; registered in `commands.ts`. */
export const CommandIDs = {
  restore: 'kitteh-magic:restore',
  reset: 'kitteh-magic:reset',
  invalidate: 'kitteh-magic:invalidate',
  journal: 'kitteh-magic:show-journal',
  runStale: 'kitteh-magic:run-stale',
  showPanel: 'kitteh-magic:show-panel',
  jump: 'kitteh-magic:jump-to-step',
  refresh: 'kitteh-magic:refresh'
} as const;

/**
 * Restores every finished step of a session into the kernel (the kernel's
 * own, or another one named). A restarted kernel has not loaded the
 * extension yet; loading it again is a no-op.
 */
export function restoreCode(session: string | null): string {
  const load = '%load_ext kitteh_magic\n%durable restore';
  // The magic splits its line as a POSIX shell does (shlex): quote the name.
  return session === null ? load : `${load} --session '${session.replace(/'/g, `'"'"'`)}'`;
}

/** Steps in these states have a record that `%durable restore` loads. */
const RESTORABLE = new Set(['done', 'replayed', 'stale']);

/**
 * Run `%durable restore` in the notebook's kernel for the session the panel
 * shows (the kernel's own, or another one), and say what the kernel did. A
 * session with nothing finished is said so without asking the kernel.
 */
export async function restoreSession(panel: NotebookPanel, model: DurableModel): Promise<void> {
  const session = model.session;
  if (session === null) {
    return;
  }
  const finished = model.steps.filter(row => RESTORABLE.has(row.state)).length;
  if (finished === 0) {
    Notification.info(`Nothing to restore: session “${session}” has no finished steps.`, {
      autoClose: 5000
    });
    return;
  }
  const kernel = panel.sessionContext.session?.kernel;
  if (!kernel) {
    Notification.warning('No running kernel: start the kernel first, then restore the session.', {
      autoClose: 5000
    });
    return;
  }
  const own = session === model.defaultSession;
  const id = Notification.info(
    `Restoring ${finished} finished step${finished === 1 ? '' : 's'} of “${session}” into the kernel…`,
    { autoClose: false }
  );
  const future = kernel.requestExecute({
    code: restoreCode(own ? null : session),
    silent: false,
    store_history: false
  });
  let said = '';
  future.onIOPub = (msg: KernelMessage.IIOPubMessage): void => {
    if (KernelMessage.isStreamMsg(msg) && msg.content.name === 'stdout') {
      said += msg.content.text;
    }
  };
  try {
    const reply = await future.done;
    const ok = reply.content.status === 'ok';
    const report = said.trim().split('\n')[0] ?? '';
    // The kernel's own words (restore.py): "restored N steps of …", or that nothing was.
    const nothing = ok && report !== '' && !/^restored [1-9]/.test(report);
    Notification.update({
      id,
      message: ok
        ? `Restore: ${report || `session “${session}” restored into the kernel`}.`
        : `Cannot restore session “${session}”: ${errorText(reply.content)}`,
      type: ok ? (nothing ? 'warning' : 'success') : 'error',
      autoClose: 5000
    });
  } catch (error) {
    Notification.update({ id, message: `Restore failed: ${String(error)}`, type: 'error', autoClose: 6000 });
  }
  await model.refresh();
}

function errorText(content: object): string {
  const { ename, evalue } = content as { ename?: string; evalue?: string };
  return ename ? `${ename}: ${evalue ?? ''}` : 'the kernel reported an error';
}

/** Select and scroll to the cell with this id; false if the notebook has none. */
export async function jumpToCell(panel: NotebookPanel, cellId: string): Promise<boolean> {
  const notebook = panel.content;
  const index = notebook.widgets.findIndex(cell => cell.model.id === cellId);
  if (index < 0) {
    return false;
  }
  notebook.activeCellIndex = index;
  notebook.deselectAll();
  await notebook.scrollToCell(notebook.widgets[index], 'center');
  notebook.activate();
  return true;
}

/** Run the cells of the stale steps, in notebook order; how many ran. */
export async function runStale(panel: NotebookPanel, model: DurableModel): Promise<number> {
  const stale = new Set(
    model.steps.filter(row => row.state === 'stale' && row.cell_id !== null).map(row => row.cell_id)
  );
  const cells = panel.content.widgets.filter(cell => stale.has(cell.model.id));
  if (cells.length === 0) {
    Notification.info('No stale steps to run: every finished step matches its inputs.', {
      autoClose: 4000
    });
    return 0;
  }
  await NotebookActions.runCells(panel.content, cells, panel.sessionContext);
  await model.refresh();
  return cells.length;
}

/**
 * Ask, then invalidate a step (or several: the selected durable cells). The
 * dialog says whether their journals are kept, and a checkbox forgets them
 * too.
 */
export async function confirmInvalidate(model: DurableModel, steps: string | string[]): Promise<void> {
  const names = typeof steps === 'string' ? [steps] : steps;
  const rows = names.map(step => model.row(step)).filter(row => row !== undefined);
  const missing = names.filter(step => model.row(step) === undefined);
  if (rows.length === 0) {
    Notification.warning(`No durable step “${missing.join('”, “')}” in this session.`, {
      autoClose: 4000
    });
    return;
  }
  const calls = rows.reduce((sum, row) => sum + (row.journaled ?? 0), 0);
  const plural = calls === 1 ? 'call' : 'calls';
  const one = rows.length === 1;
  const quoted = rows.map(row => `“${row.step}”`).join(', ');
  const body =
    (one
      ? `The next run of ${quoted} executes its cell instead of replaying it.`
      : `The next runs of ${quoted} execute their cells instead of replaying them.`) +
    (calls > 0
      ? ` ${one ? 'Its journal' : 'Their journals'} of ${calls} ${plural} ${one ? 'is' : 'are'} kept: ` +
        'a call made the same way is answered ' +
        'from the journal instead of being made again (a paid API call is not paid twice).'
      : ` ${one ? 'It has' : 'They have'} no journaled calls.`);
  const result = await showDialog({
    title: one ? `Invalidate ${quoted}?` : `Invalidate ${rows.length} durable steps?`,
    body,
    checkbox:
      calls > 0
        ? {
            label: `Also forget the ${one ? 'journal' : 'journals'} (every call is made again)`,
            caption: 'Drop the recorded results of the calls too',
            checked: false
          }
        : null,
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Invalidate' })]
  });
  if (!result.button.accept) {
    return;
  }
  const forget = result.isChecked === true;
  const done: string[] = [];
  const gone: string[] = [];
  let kept = 0;
  for (const row of rows) {
    const reply = await model.invalidate(row.step, forget);
    if (reply === null) {
      return;
    }
    if (reply.invalidated) {
      done.push(row.step);
      kept += reply.journal;
    } else {
      gone.push(row.step);
    }
  }
  if (gone.length > 0) {
    Notification.warning(
      `“${gone.join('”, “')}” ${gone.length === 1 ? 'was' : 'were'} not invalidated: ` +
        'the session has no such step any more.',
      { autoClose: 5000 }
    );
  }
  if (done.length === 0) {
    return;
  }
  const several = done.length > 1;
  const journal =
    kept > 0
      ? `${several ? 'their journals' : 'its journal'} of ${kept} ${kept === 1 ? 'call' : 'calls'} ` +
        `${several ? 'are' : 'is'} kept`
      : forget
        ? `${several ? 'their journals are' : 'its journal is'} forgotten`
        : `${several ? 'they have' : 'it has'} no journal`;
  Notification.success(
    `Invalidated “${done.join('”, “')}”: ${several ? 'their next runs execute' : 'its next run executes'}; ${journal}.`,
    { autoClose: 5000 }
  );
}

/** Ask, then reset the shown session. */
export async function confirmReset(model: DurableModel): Promise<void> {
  const session = model.session;
  if (session === null) {
    return;
  }
  const steps = model.totals.steps;
  const result = await showDialog({
    title: 'Reset durable session?',
    body:
      `This drops every saved step of session “${session}” ` +
      `(${steps} step${steps === 1 ? '' : 's'}) and their journals. ` +
      'The next run executes all of them again.',
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Reset' })]
  });
  if (result.button.accept) {
    await model.reset();
  }
}
