/**
 * What the sidebar's buttons do beyond the REST calls: talk to the
 * notebook's kernel, move to a cell, ask for confirmation.
 */
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import { NotebookPanel } from '@jupyterlab/notebook';

import { DurableModel } from './model';

/** Commands the sidebar runs; registered in `index.ts`. */
export const CommandIDs = {
  restore: 'kitteh-magic:restore',
  reset: 'kitteh-magic:reset',
  invalidate: 'kitteh-magic:invalidate',
  jump: 'kitteh-magic:jump-to-step',
  refresh: 'kitteh-magic:refresh'
} as const;

/**
 * Restores every finished step into the kernel. A restarted kernel has not
 * loaded the extension yet; loading it again is a no-op.
 */
export const RESTORE_CODE = '%load_ext kitteh_magic\n%durable restore';

/**
 * Run `%durable restore` in the notebook's kernel. Resolves when the kernel
 * finished (the model refreshes then), rejects when there is no kernel.
 */
export async function restoreSession(
  panel: NotebookPanel,
  model: DurableModel
): Promise<void> {
  const kernel = panel.sessionContext.session?.kernel;
  if (!kernel) {
    Notification.warning(
      'No running kernel: start the kernel first, then restore the session.',
      { autoClose: 5000 }
    );
    return;
  }
  const id = Notification.info('Restoring the durable session into the kernel…', {
    autoClose: false
  });
  const future = kernel.requestExecute({
    code: RESTORE_CODE,
    silent: false,
    store_history: false
  });
  try {
    const reply = await future.done;
    const ok = reply.content.status === 'ok';
    Notification.update({
      id,
      message: ok
        ? 'Session restored into the kernel.'
        : `Restore failed: ${errorText(reply.content)}`,
      type: ok ? 'success' : 'error',
      autoClose: 4000
    });
  } catch (error) {
    Notification.update({
      id,
      message: `Restore failed: ${String(error)}`,
      type: 'error',
      autoClose: 6000
    });
  }
  await model.refresh();
}

function errorText(content: object): string {
  const { ename, evalue } = content as { ename?: string; evalue?: string };
  return ename ? `${ename}: ${evalue ?? ''}` : 'the kernel reported an error';
}

/** Select and scroll to the cell with this id; false if the notebook has none. */
export async function jumpToCell(
  panel: NotebookPanel,
  cellId: string
): Promise<boolean> {
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

/** Ask, then reset the shown session. */
export async function confirmReset(model: DurableModel): Promise<void> {
  const session = model.session;
  if (session === null) {
    return;
  }
  const result = await showDialog({
    title: 'Reset durable session?',
    body:
      `This drops every saved step of session “${session}” ` +
      `(${model.totals.steps} steps). The next run executes all of them again.`,
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Reset' })]
  });
  if (result.button.accept) {
    await model.reset();
  }
}
