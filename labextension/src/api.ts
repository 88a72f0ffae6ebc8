/**
 * Requests to the kitteh_magic server extension. `ServerConnection` adds
 * the base URL, the token and the XSRF header. Every request names the
 * notebook by its path and its durable metadata, so the server finds the
 * store and session the notebook's kernel uses, wherever the notebook moved.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import {
  IBindingReply,
  IDurableMetadata,
  IErrorReply,
  IInvalidateReply,
  IJournalReply,
  IMovedReply,
  INotebookRef,
  IResetReply,
  ISessionsReply,
  IStepsReply
} from './tokens';

const ROUTE = 'kitteh-magic';

/** A request the server refused or could not answer, with its message. */
export class DurableApiError extends Error {
  constructor(
    message: string,
    readonly status: number
  ) {
    super(message);
  }
}

async function request<T>(
  endpoint: string,
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, ROUTE, endpoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new DurableApiError(`cannot reach the server: ${String(error)}`, 0);
  }
  const text = await response.text();
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const message =
      (data as Partial<IErrorReply> | null)?.error ??
      `${response.status} ${response.statusText}`;
    throw new DurableApiError(message, response.status);
  }
  return data as T;
}

/** The metadata as the server reads it: under its notebook-metadata key. */
function wrapped(metadata: IDurableMetadata): { kitteh_magic: IDurableMetadata } {
  return { kitteh_magic: metadata };
}

function get<T>(endpoint: string, notebook: INotebookRef, query: Record<string, string> = {}): Promise<T> {
  const params = {
    path: notebook.path,
    metadata: JSON.stringify(wrapped(notebook.metadata)),
    ...query
  };
  return request<T>(`${endpoint}${URLExt.objectToQueryString(params)}`);
}

function post<T>(endpoint: string, body: object): Promise<T> {
  return request<T>(endpoint, { method: 'POST', body: JSON.stringify(body) });
}

/** The sessions of the store that the notebook uses. */
export function fetchSessions(notebook: INotebookRef): Promise<ISessionsReply> {
  return get<ISessionsReply>('sessions', notebook);
}

/** Status rows and totals of one session. */
export function fetchSteps(notebook: INotebookRef, session: string): Promise<IStepsReply> {
  return get<IStepsReply>('steps', notebook, { session });
}

/** The calls of a step's latest execution. */
export function fetchJournal(
  notebook: INotebookRef,
  session: string,
  step: string
): Promise<IJournalReply> {
  return get<IJournalReply>('journal', notebook, { session, step });
}

/** Make the next run of a step execute; its journal is kept unless forgotten. */
export function invalidateStep(
  notebook: INotebookRef,
  session: string,
  step: string,
  forgetJournal: boolean
): Promise<IInvalidateReply> {
  return post<IInvalidateReply>('invalidate', {
    path: notebook.path,
    metadata: wrapped(notebook.metadata),
    session,
    step,
    forget_journal: forgetJournal
  });
}

/** Drop every record of a session. */
export function resetSession(notebook: INotebookRef, session: string): Promise<IResetReply> {
  return post<IResetReply>('reset', {
    path: notebook.path,
    metadata: wrapped(notebook.metadata),
    session
  });
}

/** Tell the notebook's running kernel which notebook it runs now. */
export function bindKernel(notebook: INotebookRef, kernelId: string): Promise<IBindingReply> {
  return post<IBindingReply>('binding', {
    path: notebook.path,
    metadata: wrapped(notebook.metadata),
    kernel_id: kernelId
  });
}

/** The metadata that keeps a notebook's session and store after it moved from `from`. */
export function notebookMoved(from: string, notebook: INotebookRef): Promise<IMovedReply> {
  return post<IMovedReply>('moved', {
    from,
    path: notebook.path,
    metadata: wrapped(notebook.metadata)
  });
}
