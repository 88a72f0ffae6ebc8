/**
 * The extension's commands: the palette's "Durable: …" entries, the cell
 * context-menu item, the shortcuts' targets, and the panel's buttons.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette, Notification } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';

import {
  CommandIDs,
  confirmInvalidate,
  confirmReset,
  jumpToCell,
  restoreSession,
  runStale
} from './actions';
import { showJournal } from './journal';
import { DurableModel } from './model';

/** The palette's category. */
export const CATEGORY = 'Durable';

/** Report a failed action instead of losing it in the console. */
function reported<T>(what: string, work: () => Promise<T>): Promise<T | undefined> {
  return work().catch((error: unknown) => {
    Notification.error(`${what} failed: ${error instanceof Error ? error.message : String(error)}`, {
      autoClose: 6000
    });
    return undefined;
  });
}

export function addCommands(
  app: JupyterFrontEnd,
  model: DurableModel,
  tracker: INotebookTracker,
  sidebarId: string,
  palette: ICommandPalette | null
): void {
  const { commands, shell } = app;
  /** The current notebook, when it is the one the model shows. */
  const current = (): NotebookPanel | null => {
    const panel = tracker.currentWidget;
    return panel !== null && panel.context.path === model.path ? panel : null;
  };
  /** The step a command names, else the active cell's. */
  const stepOf = (args: { step?: unknown }): string | null => {
    if (typeof args.step === 'string' && args.step) {
      return args.step;
    }
    const cell = current()?.content.activeCell;
    return cell ? model.rowForCell(cell.model.id)?.step ?? null : null;
  };

  /**
   * The steps a command names: its `step`, else the durable steps of the
   * selected cells (a context menu over a multiple selection means all of
   * them), else the active cell's.
   */
  const stepsOf = (args: { step?: unknown }): string[] => {
    if (typeof args.step === 'string' && args.step) {
      return [args.step];
    }
    const notebook = current()?.content;
    if (!notebook) {
      return [];
    }
    const steps: string[] = [];
    for (const cell of notebook.widgets) {
      if (notebook.isSelectedOrActive(cell)) {
        const step = model.rowForCell(cell.model.id)?.step;
        if (step !== undefined && !steps.includes(step)) {
          steps.push(step);
        }
      }
    }
    return steps;
  };

  commands.addCommand(CommandIDs.showPanel, {
    label: 'Durable: Show panel',
    caption: 'Open the Durable panel of the current notebook',
    execute: () => shell.activateById(sidebarId)
  });
  commands.addCommand(CommandIDs.refresh, {
    label: 'Durable: Refresh',
    caption: 'Read the store of the current notebook again',
    execute: () => model.refresh()
  });
  commands.addCommand(CommandIDs.restore, {
    label: 'Durable: Restore session',
    caption: 'Load every finished step into the running kernel without running any cell',
    isEnabled: () => current() !== null,
    execute: () => {
      const panel = current();
      return panel ? reported('Restore', () => restoreSession(panel, model)) : undefined;
    }
  });
  commands.addCommand(CommandIDs.reset, {
    label: 'Durable: Reset session…',
    caption: 'Drop every saved step of the session (asks first)',
    isEnabled: () => model.session !== null && model.totals.steps > 0,
    execute: () => reported('Reset', () => confirmReset(model))
  });
  commands.addCommand(CommandIDs.invalidate, {
    label: args => {
      if (!args.context) {
        return 'Durable: Invalidate step…';
      }
      return stepsOf(args).length > 1 ? 'Invalidate durable steps' : 'Invalidate durable step';
    },
    caption:
      'Make the next run of the step (of each selected durable cell) execute ' +
      '(asks first, says whether the journal is kept)',
    isEnabled: args => stepsOf(args).length > 0,
    execute: args => {
      const steps = stepsOf(args);
      return steps.length === 0
        ? undefined
        : reported('Invalidate', () => confirmInvalidate(model, steps));
    }
  });
  commands.addCommand(CommandIDs.journal, {
    label: 'Durable: Show journal',
    caption: 'The calls of the step of the active cell: durations, outcomes, from the journal',
    isEnabled: args => stepOf(args) !== null,
    execute: args => {
      const step = stepOf(args);
      return step === null
        ? undefined
        : reported('Show journal', async () => {
            const reply = await model.journal(step);
            if (reply !== null) {
              await showJournal(reply);
            }
          });
    }
  });
  commands.addCommand(CommandIDs.runStale, {
    label: 'Durable: Run stale steps',
    caption: 'Run the cells of the steps whose inputs changed, in notebook order',
    isEnabled: () => current() !== null && model.count('stale') > 0,
    execute: () => {
      const panel = current();
      return panel ? reported('Run stale steps', () => runStale(panel, model)) : undefined;
    }
  });
  commands.addCommand(CommandIDs.jump, {
    label: 'Durable: Go to the cell of a step',
    execute: async args => {
      const panel = current();
      if (panel) {
        shell.activateById(panel.id);
        await jumpToCell(panel, String(args.cellId));
      }
    }
  });

  for (const command of [
    CommandIDs.restore,
    CommandIDs.invalidate,
    CommandIDs.reset,
    CommandIDs.journal,
    CommandIDs.runStale,
    CommandIDs.showPanel,
    CommandIDs.refresh
  ]) {
    palette?.addItem({ command, category: CATEGORY });
  }
}
