// A state as a coloured, labelled badge; the colour comes from a fixed set of classes, never from data.
import { h } from '../dom.js';
import { stateLabel } from '../format.js';
import { groupOf } from '../rollout-model.js';

const ROLLOUT_TONES = { scheduled: 'waiting', running: 'active', paused: 'paused', completed: 'succeeded', cancelled: 'cancelled', aborted: 'failed' };

export function rolloutStateBadge(state) {
  return h('span', { class: `badge tone-${ROLLOUT_TONES[state] ?? 'waiting'}` }, stateLabel(state));
}

export function attemptStateBadge(state) {
  return h('span', { class: `badge tone-${groupOf(state)}` }, stateLabel(state));
}

const WAVE_TONES = { pending: 'waiting', active: 'active', done: 'succeeded' };

export function waveStateBadge(state) {
  return h('span', { class: `badge tone-${WAVE_TONES[state] ?? 'waiting'}` }, state);
}

export function presenceBadge(online) {
  return h('span', { class: `badge tone-${online ? 'succeeded' : 'cancelled'}` }, online ? 'online' : 'offline');
}
