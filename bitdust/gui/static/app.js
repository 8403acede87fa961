// The GUI's shell: sign-in check, hash routing between views, and live refresh by polling.
import { AuthError, connect } from './api.js';
import { el } from './util.js';
import * as dashboard from './views/dashboard.js';
import * as files from './views/files.js';
import * as tasks from './views/tasks.js';
import * as peers from './views/peers.js';
import * as settings from './views/settings.js';
import * as system from './views/system.js';

const VIEWS = { dashboard, files, tasks, peers, settings, system };
const POLL_MS = 1500;

let current = null;
let timer = null;
let busy = false;

function setStatus(ok, text) {
  const status = document.getElementById('status');
  status.className = 'status ' + (ok ? 'ok' : 'bad');
  status.textContent = text;
}

function showBanner(message) {
  const banner = document.getElementById('banner');
  banner.textContent = message || '';
  banner.classList.toggle('hidden', !message);
}

function signIn(message) {
  clearInterval(timer);
  setStatus(false, 'not signed in');
  const expired = location.hash === '#expired';
  document.getElementById('main').replaceChildren(el('div', { class: 'panel signin', testid: 'signin' },
    el('h2', { text: 'Sign in to this BitDust node' }),
    el('p', { text: expired ? 'That link was already used or has expired.' : message }),
    el('p', {}, 'Run ', el('code', { text: 'bitdust show' }), ' on this machine: it opens a one-time link.')));
}

async function tick() {
  if (!current || busy) return;
  busy = true;
  try {
    await current.refresh();
    setStatus(true, 'connected');
    showBanner('');
  } catch (e) {
    if (e instanceof AuthError) { signIn(e.message); return; }
    setStatus(false, 'problem');
    showBanner(e.message);
  } finally {
    busy = false;
  }
}

function route() {
  const name = (location.hash || '#dashboard').slice(1);
  const view = VIEWS[name] ? name : 'dashboard';
  for (const link of document.querySelectorAll('#nav a')) link.classList.toggle('active', link.dataset.view === view);
  const main = document.getElementById('main');
  const root = el('section', { testid: `view-${view}` });
  main.replaceChildren(root);
  if (current && current.unmount) current.unmount();
  current = VIEWS[view].mount(root);
  tick();
}

async function start() {
  try {
    await connect();
  } catch (e) {
    if (e instanceof AuthError) { signIn(e.message); return; }
    setStatus(false, 'offline');
    showBanner(e.message);
    return;
  }
  window.addEventListener('hashchange', route);
  route();
  timer = setInterval(tick, POLL_MS);
}

start();
