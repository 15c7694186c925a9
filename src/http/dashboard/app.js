// The dashboard shell: sign-in gate, navigation, and a hash router that gives each view an
// AbortSignal, so leaving a view cancels its requests and closes its event stream.
import { session } from './api.js';
import { renderLogin } from './views/login.js';
import { renderOverview } from './views/overview.js';
import { renderFirmware } from './views/firmware.js';
import { renderRollouts } from './views/rollouts.js';
import { renderRolloutForm } from './views/rollout-form.js';
import { renderRollout } from './views/rollout.js';
import { renderDevices } from './views/devices.js';
import { renderDevice } from './views/device.js';

const ROUTES = [
  { pattern: /^\/$/, section: 'overview', render: renderOverview },
  { pattern: /^\/firmware$/, section: 'firmware', render: renderFirmware },
  { pattern: /^\/rollouts$/, section: 'rollouts', render: renderRollouts },
  { pattern: /^\/rollouts\/new$/, section: 'rollouts', render: renderRolloutForm },
  { pattern: /^\/rollouts\/([^/]+)$/, section: 'rollouts', render: renderRollout },
  { pattern: /^\/devices$/, section: 'devices', render: renderDevices },
  { pattern: /^\/devices\/([^/]+)$/, section: 'devices', render: renderDevice },
];

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const logout = document.getElementById('logout');
const who = document.getElementById('who');
let current = null;
let navigations = 0;

function route() {
  current?.abort();
  current = new AbortController();
  const signedIn = Boolean(session.token);
  nav.hidden = !signedIn;
  logout.hidden = !signedIn;
  who.hidden = !session.who;
  who.textContent = session.who ? `${session.who.name} · ${session.who.role}` : '';
  if (!signedIn) {
    renderLogin({ main, signal: current.signal, notice: sessionEndedNotice, onSignedIn: () => { sessionEndedNotice = null; route(); } });
    return;
  }
  const [path, queryString = ''] = (location.hash.replace(/^#/, '') || '/').split('?');
  const match = ROUTES.map((r) => ({ r, m: r.pattern.exec(path) })).find((x) => x.m);
  if (!match) {
    location.replace('#/');
    return;
  }
  for (const link of nav.querySelectorAll('a')) {
    if (link.dataset.section === match.r.section) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  main.replaceChildren();
  match.r.render({
    main,
    params: match.m.slice(1).map(decodeURIComponent),
    query: new URLSearchParams(queryString),
    signal: current.signal,
  });
  // After a navigation (not the first page load), move focus to the new page's heading, as a
  // full page load would, so keyboard and screen-reader users start at the top of the new view.
  if ((navigations += 1) > 1) main.querySelector('h1')?.focus();
}

let sessionEndedNotice = null;

window.addEventListener('mqota:unauthorized', () => {
  sessionEndedNotice = 'The server no longer accepts your token (it may have been revoked). Sign in again.';
  route();
});
window.addEventListener('hashchange', route);
// The skip link's #main would otherwise be taken for a route.
document.querySelector('.skip-link').addEventListener('click', (e) => {
  e.preventDefault();
  main.focus();
});
logout.addEventListener('click', () => {
  session.signOut();
  route();
});

route();
