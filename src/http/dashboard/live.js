// Keeping a view current: load it, follow the server's event stream, apply events at once where a
// view can, and reload from the server (at most every `minReloadMs`) so counts stay exact. The
// header shows whether the stream is live.
import { subscribe } from './sse.js';

const STATUS_TEXT = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…' };

/**
 * load(): fetches the view's data; render(data): shows it (only called when it changed);
 * events: the path of the stream (/api/events?...), or null for a view without one;
 * onEvent(type, data): returns true when it already changed the shown data (render it now).
 * Returns { reload(), current() }.
 */
export function keepLive({ signal, load, render, events, onEvent = () => false, onError, minReloadMs = 1_000 }) {
  let data = null;
  let shown = null;
  let sequence = 0;
  let timer = null;
  let lastReload = 0;

  async function reload() {
    const mine = (sequence += 1);
    lastReload = Date.now();
    try {
      const next = await load();
      // An older reload that finishes after a newer one must not win.
      if (mine !== sequence || signal.aborted) return;
      data = next;
      show();
    } catch (err) {
      if (!signal.aborted && err.name !== 'AbortError') onError?.(err);
    }
  }

  function show() {
    const json = JSON.stringify(data);
    if (json === shown) return;
    shown = json;
    render(data);
  }

  function scheduleReload() {
    if (timer !== null) return;
    timer = setTimeout(() => { timer = null; if (!signal.aborted) reload(); }, Math.max(0, lastReload + minReloadMs - Date.now()));
  }

  signal.addEventListener('abort', () => { clearTimeout(timer); setLiveStatus(null); }, { once: true });

  if (events) {
    subscribe(events, {
      signal,
      onStatus(status) {
        if (signal.aborted) return; // the next view owns the indicator now
        setLiveStatus(status);
        // Events may have been missed while the stream was down.
        if (status === 'live') scheduleReload();
      },
      onEvent(type, event) {
        if (data !== null && onEvent(type, event, data)) show();
        scheduleReload();
      },
    });
  }
  reload();
  return { reload, current: () => data };
}

function setLiveStatus(status) {
  const el = document.getElementById('live');
  const text = STATUS_TEXT[status];
  el.hidden = !text;
  el.textContent = text ?? '';
  el.dataset.status = status ?? '';
}
