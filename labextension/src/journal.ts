/**
 * The journal of a step, in a dialog: each call, its duration and attempts,
 * its outcome, and whether its result came from the journal.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { el } from './dom';
import { formatSeconds } from './format';
import { IJournalCall, IJournalReply } from './tokens';

/** The body of the journal dialog. */
export class JournalView extends Widget {
  constructor(reply: IJournalReply) {
    super();
    this.addClass('km-Journal');
    this.node.dataset.step = reply.step;
    const calls = reply.calls;
    if (calls.length === 0) {
      this.node.append(
        el('p', 'km-Journal-empty',
          `“${reply.step}” has no journaled calls: it made no activity calls, or its journal ` +
            'was forgotten.')
      );
      return;
    }
    const fromJournal = calls.filter(call => call.from_journal).length;
    const total = calls.reduce((sum, call) => sum + call.duration, 0);
    const summary =
      `${calls.length} call${calls.length === 1 ? '' : 's'}, ${formatSeconds(total)} in all` +
      (fromJournal > 0 ? `; ${fromJournal} answered from the journal in the latest run` : '');
    this.node.append(el('p', 'km-Journal-summary', summary));
    const table = el('table', 'km-Journal-table');
    const head = el('tr', '');
    for (const title of ['#', 'call', 'duration', 'tries', 'outcome']) {
      head.append(el('th', '', title));
    }
    table.createTHead().append(head);
    const body = table.createTBody();
    for (const call of calls) {
      body.append(callRow(call));
    }
    this.node.append(table);
  }
}

function callRow(call: IJournalCall): HTMLTableRowElement {
  const row = el('tr', `km-Journal-call km-outcome-${call.outcome}`);
  row.dataset.callee = call.call;
  row.dataset.fromJournal = String(call.from_journal);
  const outcome = el('td', 'km-Journal-outcome', outcomeText(call));
  if (call.error) {
    outcome.title = call.error;
  }
  const name = el('td', 'km-Journal-callee', call.call);
  name.title = call.branch ? `${call.call} (on branch ${call.branch})` : call.call;
  row.append(
    el('td', 'km-Journal-label', call.label),
    name,
    el('td', 'km-Journal-duration', formatSeconds(call.duration)),
    el('td', 'km-Journal-attempts', String(call.attempts)),
    outcome
  );
  return row;
}

function outcomeText(call: IJournalCall): string {
  let text =
    call.outcome === 'ok' ? 'ok' : call.outcome === 'error' ? call.error ?? 'error' : 'started, never finished';
  if (call.from_journal) {
    text += ' · from journal';
  }
  if (call.effect) {
    text += ' · effect';
  }
  if (call.unsaved) {
    text += ` · result not saved (${call.unsaved})`;
  }
  return text;
}

/** Show a step's journal in a dialog. */
export async function showJournal(reply: IJournalReply): Promise<void> {
  await showDialog({
    title: `Journal of “${reply.step}”`,
    body: new JournalView(reply),
    buttons: [Dialog.okButton({ label: 'Close' })]
  });
}
