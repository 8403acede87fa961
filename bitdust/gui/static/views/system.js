// Services (state, switch on/off) and the state machines (automats) of the node.
import { call } from '../api.js';
import { attempt, el, replace } from '../util.js';

export function mount(root) {
  const box = el('div', { class: 'split' });
  replace(root, el('h2', { text: 'Services & automats' }), box);
  return {
    async refresh() {
      const [services, automats] = await Promise.all([call('services_list'), call('automats_list')]);
      replace(box,
        el('div', { class: 'panel' }, el('h3', { text: 'Services' }), el('table', { testid: 'services' },
          el('thead', {}, el('tr', {}, ['#', 'Service', 'State', 'Enabled', ''].map((h) => el('th', { text: h })))),
          el('tbody', {}, services.map((s) => el('tr', { testid: `service-${s.name}` },
            el('td', { class: 'muted', text: String(s.index) }),
            el('td', {}, el('div', { class: 'mono', text: s.name }),
              s.error ? el('div', { class: 'error-text', text: s.error }) : null),
            el('td', {}, el('span', { class: `pill ${s.state}`, text: s.state })),
            el('td', { text: s.enabled ? 'yes' : 'no' }),
            el('td', {}, s.state === 'ON'
              ? el('button', { text: 'Stop', onclick: () => attempt(() => call('service_stop', { service_name: s.name })) })
              : el('button', { text: 'Start', onclick: () => attempt(() => call('service_start', { service_name: s.name })) }))))))),
        el('div', { class: 'panel' }, el('h3', { text: 'Automats' }), el('table', { testid: 'automats' },
          el('thead', {}, el('tr', {}, ['#', 'Automat', 'State', 'Timers'].map((h) => el('th', { text: h })))),
          el('tbody', {}, automats.map((a) => el('tr', {},
            el('td', { class: 'muted', text: String(a.index) }), el('td', { class: 'mono', text: a.name }),
            el('td', {}, el('span', { class: `pill ${a.state}`, text: a.state })),
            el('td', { class: 'muted', text: a.timers })))))));
    },
  };
}
