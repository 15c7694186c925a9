// A rollout's progress as one stacked bar over its targets (succeeded, failed, updating,
// commanded, cancelled, not started) with the figures as text beside it.
import { h } from '../dom.js';
import { STATE_GROUPS } from '../rollout-model.js';

/** Returns { el, update(summary) }; update changes the bar in place. */
export function rolloutProgress(label) {
  const segments = Object.fromEntries(STATE_GROUPS.map((g) => [g.key, h('span', { class: `segment tone-${g.key}` })]));
  const bar = h('div', { class: 'stacked-bar', role: 'progressbar', 'aria-label': label, 'aria-valuemin': 0 }, Object.values(segments));
  const text = h('span', { class: 'progress-text' });
  const el = h('div', { class: 'rollout-progress' }, bar, text);
  return {
    el,
    update(sum) {
      for (const g of STATE_GROUPS) {
        segments[g.key].style.width = sum.total === 0 ? '0%' : `${(sum[g.key] / sum.total) * 100}%`;
        segments[g.key].title = `${g.label}: ${sum[g.key]}`;
      }
      bar.setAttribute('aria-valuemax', String(sum.total));
      bar.setAttribute('aria-valuenow', String(sum.succeeded));
      bar.setAttribute('aria-valuetext', describe(sum));
      const extra = [sum.failed && `${sum.failed} failed`, sum.active && `${sum.active} updating`].filter(Boolean);
      text.textContent = `${sum.succeeded}/${sum.total} succeeded · ${sum.percent} %${extra.length ? ` · ${extra.join(', ')}` : ''}`;
    },
  };
}

function describe(sum) {
  return `${sum.succeeded} of ${sum.total} succeeded (${sum.percent} %), ${sum.failed} failed, ${sum.active} updating, ${sum.waiting} commanded, ${sum.notStarted} not started`;
}

/** The download progress of one attempt: a native <progress> while it means something. */
export function attemptProgress(attempt, label) {
  if (typeof attempt.progress !== 'number') return h('span', { class: 'muted' }, '—');
  return h('span', { class: 'attempt-progress' },
    h('progress', { max: 100, value: attempt.progress, 'aria-label': label }), ` ${attempt.progress} %`);
}
