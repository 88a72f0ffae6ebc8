/**
 * Wiring: the Durable sidebar, cell badges, status-bar item, commands,
 * settings, the keepers of each notebook's session, and the notebook events
 * that make the model read the store again.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, ISessionContext } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';

import { CommandIDs } from './actions';
import { CellBadges } from './badges';
import { addCommands } from './commands';
import { SessionKeeper, durableMetadata, panelCells } from './keeper';
import { DurableModel } from './model';
import { readSettings } from './settings';
import { DurableSidebar, SIDEBAR_ID } from './sidebar';
import { DurableStatus } from './statusbar';
import { DEFAULT_SETTINGS, IDurableSettings } from './tokens';

const PLUGIN_ID = 'kitteh_magic:plugin';

/** Wait this long after an edit before reading a notebook's cells again. */
const CELLS_DEBOUNCE_MS = 300;

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Durable steps of the current notebook: sidebar, cell badges, status bar, commands.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILayoutRestorer, ICommandPalette, ISettingRegistry, IStatusBar],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    settingRegistry: ISettingRegistry | null,
    statusBar: IStatusBar | null
  ) => {
    const model = new DurableModel();
    const sidebar = new DurableSidebar(model, app.commands);
    app.shell.add(sidebar, 'left', { rank: 650 });
    restorer?.add(sidebar, SIDEBAR_ID);
    const badges = new CellBadges(model, tracker);
    addCommands(app, model, tracker, SIDEBAR_ID, palette);

    const apply = (settings: IDurableSettings): void => {
      model.interval = settings.pollInterval;
      badges.configure(settings);
    };
    apply(DEFAULT_SETTINGS);
    if (settingRegistry !== null) {
      void settingRegistry.load(PLUGIN_ID).then(
        settings => {
          apply(readSettings(settings));
          settings.changed.connect(() => apply(readSettings(settings)));
        },
        (error: unknown) => console.warn('kitteh_magic: settings not loaded, using defaults', error)
      );
    }

    if (statusBar !== null) {
      const item = new DurableStatus(model, () => void app.commands.execute(CommandIDs.showPanel));
      statusBar.registerStatusItem('kitteh_magic:status', {
        item,
        align: 'left',
        rank: 5,
        isActive: () => item.isActive,
        activeStateChanged: item.activeChanged
      });
    }

    // Every open notebook keeps its session; the current one's step marks refresh at once.
    const keepers = new Map<NotebookPanel, SessionKeeper>();
    tracker.widgetAdded.connect((_, panel) => {
      const keeper = new SessionKeeper(panel);
      keepers.set(panel, keeper);
      keeper.marked.connect(() => {
        if (panel === tracker.currentWidget) {
          void model.refresh();
        }
      });
      panel.disposed.connect(() => keepers.delete(panel));
    });

    const current = (): NotebookPanel | null => tracker.currentWidget;
    const refresh = (): void => void model.refresh();
    const kernelStatus = (context: ISessionContext): void => {
      model.setDemand('kernel', context.kernelDisplayStatus === 'busy');
      refresh();
    };
    const notebookChanged = (): void => {
      const panel = current();
      model.setNotebook(panel?.context.path ?? null, panel ? durableMetadata(panel) : {});
    };
    let cellsTimer: number | null = null;
    const readCells = (): void => {
      if (cellsTimer !== null) {
        window.clearTimeout(cellsTimer);
      }
      cellsTimer = window.setTimeout(() => {
        cellsTimer = null;
        const panel = current();
        model.setCells(panel ? panelCells(panel) : []);
      }, CELLS_DEBOUNCE_MS);
    };

    /** Listen to a notebook's model (it arrives once the file is read). */
    const watchModel = (panel: NotebookPanel, on: boolean): void => {
      const notebook = panel.model;
      if (notebook === null) {
        return;
      }
      notebook.metadataChanged.disconnect(notebookChanged);
      notebook.contentChanged.disconnect(readCells);
      if (on) {
        notebook.metadataChanged.connect(notebookChanged);
        notebook.contentChanged.connect(readCells);
      }
    };
    let followed: NotebookPanel | null = null;
    const follow = (): void => {
      if (followed !== null) {
        followed.sessionContext.statusChanged.disconnect(kernelStatus);
        followed.sessionContext.kernelChanged.disconnect(refresh);
        followed.context.pathChanged.disconnect(notebookChanged);
        watchModel(followed, false);
      }
      const panel = current();
      followed = panel;
      model.setDemand('kernel', panel?.sessionContext.kernelDisplayStatus === 'busy');
      notebookChanged();
      model.setCells(panel ? panelCells(panel) : []);
      if (panel === null) {
        return;
      }
      panel.sessionContext.statusChanged.connect(kernelStatus);
      panel.sessionContext.kernelChanged.connect(refresh);
      panel.context.pathChanged.connect(notebookChanged);
      watchModel(panel, true);
      void panel.context.ready.then(() => {
        if (panel === followed) {
          watchModel(panel, true);
          notebookChanged();
          model.setCells(panelCells(panel));
        }
      });
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
  }
};

export default plugin;
