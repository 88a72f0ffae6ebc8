/**
 * Wiring: the Durable sidebar, the cell badges, the commands, and the
 * notebook events that make the model read the store again.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ISessionContext, Notification } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';

import { CommandIDs, confirmReset, jumpToCell, restoreSession } from './actions';
import { CellBadges } from './badges';
import { DurableModel } from './model';
import { DurableSidebar, SIDEBAR_ID } from './sidebar';

/** Report a failed action instead of losing it in the console. */
function reported<T>(what: string, work: () => Promise<T>): Promise<T | undefined> {
  return work().catch((error: unknown) => {
    Notification.error(`${what} failed: ${error instanceof Error ? error.message : String(error)}`, {
      autoClose: 6000
    });
    return undefined;
  });
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'kitteh_magic:plugin',
  description: 'Durable steps of the current notebook: sidebar and cell badges.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    restorer: ILayoutRestorer | null
  ) => {
    const model = new DurableModel();
    const sidebar = new DurableSidebar(model, app.commands);
    app.shell.add(sidebar, 'left', { rank: 650 });
    restorer?.add(sidebar, SIDEBAR_ID);
    new CellBadges(model, tracker);

    const current = (): NotebookPanel | null => tracker.currentWidget;
    const refresh = (): void => void model.refresh();
    const kernelStatus = (context: ISessionContext): void => {
      model.setDemand('kernel', context.kernelDisplayStatus === 'busy');
      refresh();
    };
    const pathChanged = (): void => model.setPath(current()?.context.path ?? null);

    let followed: NotebookPanel | null = null;
    const follow = (): void => {
      followed?.sessionContext.statusChanged.disconnect(kernelStatus);
      followed?.sessionContext.kernelChanged.disconnect(refresh);
      followed?.context.pathChanged.disconnect(pathChanged);
      followed = current();
      followed?.sessionContext.statusChanged.connect(kernelStatus);
      followed?.sessionContext.kernelChanged.connect(refresh);
      followed?.context.pathChanged.connect(pathChanged);
      model.setDemand('kernel', followed?.sessionContext.kernelDisplayStatus === 'busy');
      pathChanged();
    };
    tracker.currentChanged.connect(follow);
    follow();

    const onCell = (_: unknown, args: { notebook: unknown }): void => {
      if (args.notebook === current()?.content) {
        refresh();
      }
    };
    NotebookActions.executionScheduled.connect(onCell);
    NotebookActions.executed.connect(onCell);

    app.commands.addCommand(CommandIDs.refresh, {
      label: 'Refresh Durable Steps',
      execute: () => model.refresh()
    });
    app.commands.addCommand(CommandIDs.restore, {
      label: 'Restore Durable Session into Kernel',
      isEnabled: () => current() !== null,
      execute: () => {
        const panel = current();
        return panel ? reported('Restore', () => restoreSession(panel, model)) : undefined;
      }
    });
    app.commands.addCommand(CommandIDs.reset, {
      label: 'Reset Durable Session…',
      isEnabled: () => model.session !== null,
      execute: () => reported('Reset', () => confirmReset(model))
    });
    app.commands.addCommand(CommandIDs.invalidate, {
      label: 'Invalidate Durable Step',
      execute: args => reported('Invalidate', () => model.invalidate(String(args.step)))
    });
    app.commands.addCommand(CommandIDs.jump, {
      label: 'Go to the Cell of a Durable Step',
      execute: async args => {
        const panel = current();
        if (panel) {
          app.shell.activateById(panel.id);
          await jumpToCell(panel, String(args.cellId));
        }
      }
    });
  }
};

export default plugin;
