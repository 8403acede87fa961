// Space donated, needed and used; suppliers online of wanted; customers; network state.
import { fm } from '../api.js';
import { el, formatSize, replace } from '../util.js';

function card(field, label, value, sub, raw) {
  return el('div', { class: 'card', testid: `stat-${field}`, 'data-value': raw },
    el('div', { class: 'label', text: label }),
    el('div', { class: 'value', text: value }),
    sub ? el('div', { class: 'sub', text: sub }) : null);
}

export function mount(root) {
  const cards = el('div', { class: 'cards' });
  const catalog = el('div', { class: 'cards' });
  const network = el('div', { class: 'panel' });
  replace(root, el('h2', { text: 'Dashboard' }), cards, el('h3', { text: 'Catalog' }), catalog, network);
  return {
    async refresh() {
      const [stats, debug] = await Promise.all([fm('stats'), fm('debuginfo')]);
      replace(cards,
        card('bytes_donated', 'Space donated', stats.value_donated, 'offered to other users', stats.bytes_donated),
        card('bytes_needed', 'Space needed', stats.value_needed, 'asked from suppliers', stats.bytes_needed),
        card('bytes_used_total', 'Space used', stats.value_used_total,
          `${formatSize(stats.bytes_used_supplier)} per supplier`, stats.bytes_used_total),
        card('online_suppliers', 'Suppliers online', `${stats.online_suppliers} of ${stats.max_suppliers}`,
          `${stats.suppliers} hired`, stats.online_suppliers),
        card('customers', 'Customers', String(stats.customers), 'storing data here', stats.customers),
        card('network', 'Network', debug.network_state || 'off', debug.idurl || 'no identity yet', debug.network_state));
      replace(catalog,
        card('files_count', 'Files', String(stats.files_count), null, stats.files_count),
        card('folders_count', 'Folders', String(stats.folders_count), null, stats.folders_count),
        card('items_count', 'Items', String(stats.items_count), 'including parent folders', stats.items_count),
        card('bytes_indexed', 'Indexed', formatSize(stats.bytes_indexed), 'local bytes in the catalog', stats.bytes_indexed));
      replace(network, el('h3', { text: 'Node' }), el('table', {},
        el('tbody', {},
          el('tr', {}, el('th', { text: 'Version' }), el('td', { text: debug.version })),
          el('tr', {}, el('th', { text: 'Home' }), el('td', { class: 'mono', text: debug.home })),
          el('tr', {}, el('th', { text: 'Up for' }), el('td', { text: `${Math.round(debug.uptime)} s` })),
          el('tr', {}, el('th', { text: 'Updated' }),
            el('td', { text: new Date(stats.timestamp * 1000).toLocaleTimeString() })))));
    },
  };
}
