// My suppliers (with replace) and my customers (with reject), each with its status.
import { call } from '../api.js';
import { attempt, confirmButton, el, formatSize, replace } from '../util.js';

async function section(title, load, render) {
  try {
    return el('div', { class: 'panel' }, el('h3', { text: title }), render(await load()));
  } catch (e) {
    return el('div', { class: 'panel' }, el('h3', { text: title }), el('p', { class: 'muted', text: e.message }));
  }
}

export function mount(root) {
  const box = el('div');
  replace(root, el('h2', { text: 'Suppliers & customers' }), box);
  return {
    async refresh() {
      const suppliers = await section('My suppliers', () => call('suppliers_list'), (rows) => el('table', { testid: 'suppliers' },
        el('thead', {}, el('tr', {}, ['Position', 'Supplier', 'Status', 'Pieces', 'Since', ''].map((h) => el('th', { text: h })))),
        el('tbody', {}, rows.map((row) => el('tr', { testid: `supplier-${row.position}` },
          el('td', { text: String(row.position) }),
          el('td', { class: 'mono', text: row.idurl || 'hiring…' }),
          el('td', {}, el('span', { class: `pill ${row.status}`, text: row.status })),
          el('td', { text: String(row.numfiles) }),
          el('td', { class: 'muted', text: row.connected }),
          el('td', {}, row.idurl ? confirmButton('Replace',
            () => attempt(() => call('supplier_replace', { index_or_idurl: row.position })), `replace-${row.position}`) : null))))));
      const customerRow = (row) => el('tr', { testid: `customer-${row.idurl}` },
        el('td', { class: 'mono', text: row.idurl }),
        el('td', {}, el('span', { class: `pill ${row.status}`, text: row.status })),
        el('td', { text: row.quotastr }), el('td', { text: formatSize(row.used) }),
        el('td', { text: String(row.numfiles) }),
        el('td', {}, confirmButton('Reject', () => attempt(() => call('customer_reject', { idurl: row.idurl })))));
      const customers = await section('My customers', () => call('customers_list'), (rows) => (rows.length
        ? el('table', { testid: 'customers' },
          el('thead', {}, el('tr', {}, ['Customer', 'Status', 'Quota', 'Used', 'Pieces', ''].map((h) => el('th', { text: h })))),
          el('tbody', {}, rows.map(customerRow)))
        : el('p', { class: 'muted', text: 'No customer stores data here.' })));
      replace(box, suppliers, customers);
    },
  };
}
