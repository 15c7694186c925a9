// The operator API from the browser: the session's bearer token on every call, JSON in and out,
// and one error type. A 401 ends the session (the token is gone or revoked): the app listens for
// 'mqota:unauthorized' and shows the sign-in form again.

const TOKEN_KEY = 'mqota.token';
const WHO_KEY = 'mqota.who';

export class ApiError extends Error {
  constructor(status, message, body = null) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/**
 * The token lives in this tab's sessionStorage only: closing the tab signs out. With it, who the
 * token is ({name, role} from GET /api/whoami), so the views offer only what the role may do; the
 * server checks every call regardless.
 */
export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  get who() { return parse(sessionStorage.getItem(WHO_KEY) ?? ''); },
  /** A viewer reads everything and changes nothing. */
  get mayChange() { return this.who?.role !== 'viewer'; },
  signIn(token, who) {
    sessionStorage.setItem(TOKEN_KEY, token);
    sessionStorage.setItem(WHO_KEY, JSON.stringify(who));
  },
  signOut() {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(WHO_KEY);
  },
};

/**
 * Calls the API and resolves with the parsed JSON body (null for 204).
 * options: body (JSON), form (FormData), token (instead of the session's), signal.
 */
export async function call(method, path, { body, form, token, signal } = {}) {
  const headers = { authorization: `Bearer ${token ?? session.token ?? ''}`, accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await send(path, {
    method, headers, signal, cache: 'no-store',
    body: form ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  const text = await res.text();
  const json = parse(text);
  if (!res.ok) throw failure(res, json, token === undefined);
  return json;
}

/** Opens a server-sent event stream with the session's token; the caller reads res.body. */
export async function openStream(path, { signal, lastEventId } = {}) {
  const headers = { authorization: `Bearer ${session.token ?? ''}`, accept: 'text/event-stream' };
  if (lastEventId) headers['last-event-id'] = lastEventId;
  const res = await send(path, { method: 'GET', headers, signal, cache: 'no-store' });
  if (!res.ok) throw failure(res, parse(await res.text()), true);
  return res;
}

async function send(path, init) {
  try {
    return await fetch(path, init);
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'The server cannot be reached. Check the connection and try again.');
  }
}

function parse(text) {
  if (!text) return null;
  try { return JSON.parse(text); } catch { return null; }
}

function failure(res, json, withSessionToken) {
  if (res.status === 401 && withSessionToken) {
    session.signOut();
    window.dispatchEvent(new CustomEvent('mqota:unauthorized'));
  }
  const message = typeof json?.message === 'string' ? json.message : `${res.status} ${res.statusText}`;
  return new ApiError(res.status, message, json);
}

/** What to tell the operator about a failed call, in one sentence or two. */
export function describeError(err) {
  if (!(err instanceof ApiError)) return `Something went wrong: ${err?.message ?? err}`;
  switch (err.status) {
    case 0: return err.message;
    case 401: return 'The token was not accepted. Sign in with a valid API token.';
    case 403: return `Your token's role does not allow this action. Ask an administrator for an operator token. (${err.message})`;
    case 404: return `Not found: ${err.message}`;
    case 409: return `Not possible right now: ${err.message}`;
    case 413: return `The file is too large: ${err.message}`;
    default: return err.status >= 500 ? `The server failed (${err.status}). Try again, or check its log.` : err.message;
  }
}
