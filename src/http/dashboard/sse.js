// Server-sent events over fetch. EventSource cannot send an Authorization header, so the stream
// is read from a fetch body and parsed as the HTML spec's event-stream format: fields `event`,
// `data` (lines joined by \n), `id`, `retry`; lines starting with ':' are comments; a blank
// line dispatches. The subscription reconnects with backoff, resending the last event id.
import { ApiError, openStream } from './api.js';

const FIRST_RETRY_MS = 1_000;
const MAX_RETRY_MS = 15_000;

/**
 * Subscribes to `path` until `signal` aborts.
 * onEvent(type, data): data is the parsed JSON of each event.
 * onStatus('connecting' | 'live' | 'reconnecting' | 'closed'): 'live' after every (re)connect,
 * when the caller should reload what it shows, since events may have been missed meanwhile.
 */
export function subscribe(path, { signal, onEvent, onStatus = () => {} }) {
  let lastEventId = null;
  let retryMs = FIRST_RETRY_MS;
  let serverRetryMs = null;

  (async () => {
    onStatus('connecting');
    while (!signal.aborted) {
      try {
        const res = await openStream(path, { signal, lastEventId });
        retryMs = FIRST_RETRY_MS;
        onStatus('live');
        await readEvents(res.body, signal, (event) => {
          if (event.id !== null) lastEventId = event.id;
          if (event.retry !== null) serverRetryMs = event.retry;
          if (event.data === null) return;
          let data;
          try { data = JSON.parse(event.data); } catch { return; }
          onEvent(event.type, data);
        });
      } catch (err) {
        if (signal.aborted) break;
        // Without a valid token there is nothing to retry: the app returns to sign-in.
        if (err instanceof ApiError && err.status === 401) break;
      }
      if (signal.aborted) break;
      onStatus('reconnecting');
      await sleep(serverRetryMs ?? retryMs, signal);
      retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
    }
    onStatus('closed');
  })();
}

/** Reads an event stream body and calls dispatch({type, data, id, retry}) per event. */
export async function readEvents(body, signal, dispatch) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  const abort = () => reader.cancel().catch(() => {});
  signal.addEventListener('abort', abort, { once: true });
  let buffer = '';
  let event = blankEvent();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      // A line ends at \r\n, \n or \r; a trailing \r may be the first half of \r\n, so wait for more.
      let match;
      while ((match = /\r\n|\n|\r(?!$)/.exec(buffer))) {
        const line = buffer.slice(0, match.index);
        buffer = buffer.slice(match.index + match[0].length);
        if (line === '') {
          if (event.data !== null || event.id !== null || event.retry !== null) dispatch(event);
          event = blankEvent();
        } else {
          field(event, line);
        }
      }
    }
  } finally {
    signal.removeEventListener('abort', abort);
  }
}

function blankEvent() {
  return { type: 'message', data: null, id: null, retry: null };
}

function field(event, line) {
  if (line.startsWith(':')) return;
  const colon = line.indexOf(':');
  const name = colon === -1 ? line : line.slice(0, colon);
  let value = colon === -1 ? '' : line.slice(colon + 1);
  if (value.startsWith(' ')) value = value.slice(1);
  if (name === 'event') event.type = value;
  else if (name === 'data') event.data = event.data === null ? value : `${event.data}\n${value}`;
  else if (name === 'id' && !value.includes('\0')) event.id = value;
  else if (name === 'retry' && /^\d+$/.test(value)) event.retry = Number(value);
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
