/**
 * Requests to the kitteh_magic server extension. `ServerConnection` adds
 * the base URL, the token and the XSRF header.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import {
  IErrorReply,
  IInvalidateReply,
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

function post<T>(endpoint: string, body: object): Promise<T> {
  return request<T>(endpoint, { method: 'POST', body: JSON.stringify(body) });
}

/** The sessions of the store that the notebook at `path` uses. */
export function fetchSessions(path: string): Promise<ISessionsReply> {
  return request<ISessionsReply>(`sessions${URLExt.objectToQueryString({ path })}`);
}

/** Status rows and totals of one session. */
export function fetchSteps(path: string, session: string): Promise<IStepsReply> {
  return request<IStepsReply>(
    `steps${URLExt.objectToQueryString({ path, session })}`
  );
}

/** Make the next run of a step execute. */
export function invalidateStep(
  path: string,
  session: string,
  step: string
): Promise<IInvalidateReply> {
  return post<IInvalidateReply>('invalidate', { path, session, step });
}

/** Drop every record of a session. */
export function resetSession(path: string, session: string): Promise<IResetReply> {
  return post<IResetReply>('reset', { path, session });
}
