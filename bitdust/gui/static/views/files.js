// The catalog (folders, files, versions, redundancy of each version) with restore and
// delete, and a local folder picker (filemanager listlocal) to start new backups.
import { fm } from '../api.js';
import { attempt, confirmButton, el, formatSize, replace } from '../util.js';

function redundancyText(version) {
  const whole = 2 * Number((version.ecc.match(/(\d+)x/) || [0, 0])[1]);
  if (version.redundancy_min === null || version.redundancy_min === undefined) {
    return el('span', { class: 'redundancy muted', text: 'redundancy not counted yet' });
  }
  const min = version.redundancy_min;
  const cls = min >= whole ? '' : min >= whole / 2 ? ' weak' : ' lost';
  return el('span', { class: 'redundancy' + cls, title: `pieces per block: ${version.redundancy.join(', ')}`,
    text: `redundancy ${min}/${whole}` + (min >= whole ? ' (whole)' : min >= whole / 2 ? ' (rebuilding)' : ' (at risk)') });
}

export function mount(root) {
  const openForms = new Map(); // backup ID -> destination typed so far
  let lastCatalog = '';
  let localPath = null;
  const catalogBox = el('div');
  const localBox = el('div');
  replace(root, el('h2', { text: 'Files' }), el('div', { class: 'split' },
    el('div', { class: 'panel' }, el('h3', { text: 'Catalog' }), catalogBox),
    el('div', { class: 'panel' }, el('h3', { text: 'Back up a local file or folder' }), localBox)));

  async function refreshCatalog(force = false) {
    const items = await fm('list');
    const text = JSON.stringify(items);
    if (!force && text === lastCatalog) return;
    lastCatalog = text;
    renderCatalog(items);
  }

  function restoreForm(version) {
    const input = el('input', { type: 'text', placeholder: 'absolute folder path, e.g. /home/me/restored',
      testid: `restore-dest-${version.backupid}`, value: openForms.get(version.backupid) || '' });
    input.addEventListener('input', () => openForms.set(version.backupid, input.value));
    const go = el('button', { class: 'primary', text: 'Restore here', testid: `restore-go-${version.backupid}`,
      onclick: async () => {
        const dest = input.value.trim();
        if (!dest) { input.focus(); return; }
        const done = await attempt(() => fm('download', { id: version.backupid, dest }));
        if (done !== undefined) { openForms.delete(version.backupid); refreshCatalog(true); }
      } });
    return el('div', { class: 'row grow' }, input, go,
      el('button', { text: 'Cancel', onclick: () => { openForms.delete(version.backupid); refreshCatalog(true); } }));
  }

  function versionRow(item, version) {
    return el('li', { testid: `version-${version.backupid}` },
      el('span', { class: 'mono', text: version.version }),
      el('span', { class: 'muted', text: `${version.size_str}, ${version.blocks} block(s), ${version.ecc}` }),
      redundancyText(version),
      version.complete ? null : el('span', { class: 'pill', text: 'in progress' }),
      el('button', { text: 'Restore', title: `restore to ${item.path}`, testid: `restore-${version.backupid}`,
        onclick: () => attempt(() => fm('download', { id: version.backupid })) }),
      el('button', { text: 'Restore to…', testid: `restore-to-${version.backupid}`,
        onclick: () => { openForms.set(version.backupid, ''); refreshCatalog(true); } }),
      confirmButton('Delete version', async () => {
        await attempt(() => fm('deleteversion', { backup_id: version.backupid }));
        await refreshCatalog(true);
      }, `delete-version-${version.backupid}`),
      openForms.has(version.backupid) ? restoreForm(version) : null);
  }

  function renderCatalog(items) {
    if (!items.length) {
      replace(catalogBox, el('p', { class: 'muted', testid: 'catalog-empty',
        text: 'Nothing is backed up yet: pick a file or folder on the right.' }));
      return;
    }
    const rows = items.map((item) => {
      const depth = item.id.split('/').length - 1;
      return el('tr', { testid: `catalog-item-${item.id}`, 'data-path': item.path },
        el('td', { style: `padding-left:${8 + depth * 18}px` },
          el('div', {}, el('strong', { text: item.name || item.path }), ' ',
            el('span', { class: 'pill', text: item.type })),
          el('div', { class: 'muted mono', text: item.path }),
          item.versions.length ? el('ul', { class: 'versions' }, item.versions.map((v) => versionRow(item, v)))
            : item.type !== 'parent' ? el('div', { class: 'muted', text: 'no complete version yet' }) : null),
        el('td', { class: 'muted', text: formatSize(item.size) }),
        el('td', {}, item.type !== 'parent' ? el('button', { text: 'Back up now', testid: `upload-again-${item.id}`,
          onclick: () => attempt(() => fm('upload', { path: item.path })) }) : null,
        ' ', confirmButton('Delete', async () => {
          await attempt(() => fm('delete', { id: item.id }));
          await refreshCatalog(true);
        }, `delete-item-${item.id}`)));
    });
    replace(catalogBox, el('table', {}, el('thead', {}, el('tr', {}, el('th', { text: 'Item' }),
      el('th', { text: 'Size' }), el('th', { text: '' }))), el('tbody', {}, rows)));
  }

  async function openLocal(path) {
    const listing = await attempt(() => fm('listlocal', path ? { path } : {}));
    if (!listing) return;
    localPath = listing.path;
    const input = el('input', { type: 'text', value: listing.path, testid: 'local-path' });
    const go = () => openLocal(input.value.trim());
    input.addEventListener('keydown', (e) => { if (e.key === 'Enter') go(); });
    const backup = (target) => attempt(() => fm('upload', { path: target }));
    const entries = listing.entries.map((entry) => el('tr', { testid: `local-entry-${entry.name}` },
      el('td', {}, entry.type === 'dir'
        ? el('button', { class: 'linkish', text: `${entry.name}/`, onclick: () => openLocal(entry.path) })
        : el('span', { text: entry.name })),
      el('td', { class: 'muted', text: entry.type === 'file' ? formatSize(entry.size) : '' }),
      el('td', {}, el('button', { text: 'Back up', testid: `backup-${entry.name}`, onclick: () => backup(entry.path) }))));
    replace(localBox,
      el('div', { class: 'row' }, input, el('button', { text: 'Go', testid: 'local-go', onclick: go })),
      el('div', { class: 'row', style: 'margin:8px 0' },
        el('button', { text: '↑ Up', testid: 'local-up', disabled: !listing.parent, onclick: () => openLocal(listing.parent) }),
        el('span', { class: 'grow' }),
        el('button', { class: 'primary', text: 'Back up this folder', testid: 'backup-current',
          onclick: () => backup(listing.path) })),
      el('div', { class: 'local-list' }, el('table', {}, el('tbody', {}, entries.length ? entries
        : el('tr', {}, el('td', { class: 'muted', text: 'empty folder' }))))),
      listing.truncated ? el('p', { class: 'muted', text: 'Only the first entries are shown.' }) : null);
  }

  openLocal(localPath);
  return { refresh: () => refreshCatalog() };
}
