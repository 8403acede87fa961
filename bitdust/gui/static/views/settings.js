// Every option with its type, description and default; edit, save, see validation errors.
// Loaded once per visit (not polled), so a value being typed is never overwritten.
import { fm } from '../api.js';
import { el, replace } from '../util.js';

function editor(option) {
  const testid = `cfg-input-${option.key}`;
  if (option.type === 'boolean') {
    const select = el('select', { testid }, el('option', { value: 'true', text: 'true' }),
      el('option', { value: 'false', text: 'false' }));
    select.value = option.value === 'true' ? 'true' : 'false';
    return select;
  }
  if (option.choices) {
    const select = el('select', { testid }, option.choices.map((c) => el('option', { value: c, text: c })));
    select.value = option.value;
    return select;
  }
  return el('input', { type: 'text', value: option.value, testid });
}

function optionRow(option) {
  const input = editor(option);
  const message = el('div', { testid: `cfg-msg-${option.key}` });
  const save = el('button', { class: 'primary', text: 'Save', testid: `cfg-save-${option.key}`,
    onclick: async () => {
      save.disabled = true;
      try {
        const [changed] = await fm('config', { key: option.key, value: input.value });
        option.value = changed.value;
        input.value = changed.value;
        message.className = 'ok-text';
        message.textContent = `saved: ${changed.old_value || '""'} → ${changed.value || '""'}`;
      } catch (e) {
        message.className = 'error-text';
        message.textContent = e.message;
      } finally {
        save.disabled = false;
      }
    } });
  if (input.tagName === 'INPUT') input.addEventListener('keydown', (e) => { if (e.key === 'Enter') save.click(); });
  return el('tr', { testid: `cfg-row-${option.key}`, 'data-key': option.key },
    el('td', {}, el('div', { class: 'mono', text: option.key }), el('div', { class: 'desc', text: option.description })),
    el('td', {}, el('span', { class: 'pill', text: option.type }),
      el('div', { class: 'desc', text: `default: ${option.default === '' ? '""' : option.default}` })),
    el('td', { style: 'min-width:260px' }, el('div', { class: 'row' }, input, save), message));
}

export function mount(root) {
  let loaded = false;
  let options = [];
  const filter = el('input', { type: 'text', placeholder: 'filter options, e.g. supplier', testid: 'cfg-filter' });
  const box = el('div');
  const render = () => {
    const words = filter.value.trim().toLowerCase();
    const shown = options.filter((o) => !words || o.key.toLowerCase().includes(words)
      || o.description.toLowerCase().includes(words));
    const groups = new Map();
    for (const option of shown) {
      const parts = option.key.split('/');
      const group = parts.slice(0, parts.length > 2 ? 2 : 1).join('/');
      if (!groups.has(group)) groups.set(group, []);
      groups.get(group).push(option);
    }
    replace(box, [...groups].map(([group, rows]) => [el('div', { class: 'group-title', text: group }),
      el('table', { class: 'settings-table' }, el('tbody', {}, rows.map(optionRow)))]));
  };
  filter.addEventListener('input', render);
  replace(root, el('h2', { text: 'Settings' }), el('div', { class: 'panel' },
    el('div', { class: 'row' }, filter, el('button', { text: 'Reload', onclick: () => { loaded = false; load(); } })), box));
  async function load() {
    if (loaded) return;
    options = await fm('config');
    loaded = true;
    render();
  }
  return { refresh: load };
}
