// Backups and restores: running (live progress bars), queued and recently ended.
import { call, fm } from '../api.js';
import { attempt, confirmButton, el, progressBar, replace } from '../util.js';

function table(headers, rows, empty, testid) {
  if (!rows.length) return el('p', { class: 'muted', testid, text: empty });
  return el('table', { testid }, el('thead', {}, el('tr', {}, headers.map((h) => el('th', { text: h })))),
    el('tbody', {}, rows));
}

export function mount(root) {
  const box = el('div');
  replace(root, el('h2', { text: 'Tasks' }), box);
  return {
    async refresh() {
      const tasks = await fm('tasks');
      const running = tasks.backups.map((job) => el('tr', { testid: `backup-row-${job.backupid}` },
        el('td', { class: 'mono', text: job.backupid }),
        el('td', { class: 'mono', text: job.sourcepath }),
        el('td', {}, progressBar(job.progress, `backup-progress-${job.backupid}`)),
        el('td', {}, el('span', { class: `pill ${job.state}`, text: job.state })),
        el('td', {}, confirmButton('Abort', () => attempt(() => call('backup_abort_running', { backup_id: job.backupid })),
          `backup-abort-${job.backupid}`))));
      const queued = tasks.queue.map((task) => el('tr', {},
        el('td', { class: 'mono', text: task.pathid }), el('td', { class: 'mono', text: task.localpath }),
        el('td', { class: 'muted', text: task.created }),
        el('td', {}, el('button', { text: 'Cancel',
          onclick: () => attempt(() => call('backup_cancel_pending', { path_id: task.pathid })) }))));
      const ended = tasks.finished.map((row) => el('tr', { testid: `backup-done-${row.backupid}` },
        el('td', { class: 'mono', text: row.backupid }),
        el('td', {}, row.progress === null ? el('span', { class: 'muted', text: '—' })
          : progressBar(row.progress, `backup-progress-${row.backupid}`)),
        el('td', {}, el('span', { class: `pill ${row.state}`, text: row.state })),
        el('td', { class: 'error-text', text: row.error || '' })));
      const restores = tasks.restores.map((job) => el('tr', { testid: `restore-row-${job.backupid}` },
        el('td', { class: 'mono', text: job.backupid }),
        el('td', { class: 'mono', text: job.destination }),
        el('td', {}, progressBar(job.progress, `restore-progress-${job.backupid}`)),
        el('td', {}, el('span', { class: `pill ${job.state}`, text: job.state, testid: `restore-state-${job.backupid}` })),
        el('td', {}, job.done ? el('span', { class: 'error-text', text: job.errors.join('; ') })
          : confirmButton('Abort', () => attempt(() => call('restore_abort', { backup_id: job.backupid }))))));
      replace(box,
        el('div', { class: 'panel' }, el('h3', { text: 'Backups running' }),
          table(['Backup', 'Source', 'Progress', 'State', ''], running, 'No backup is running.', 'backups-running')),
        el('div', { class: 'panel' }, el('h3', { text: 'Backups queued' }),
          table(['Item', 'Local path', 'Queued', ''], queued, 'Nothing is waiting.', 'backups-queued')),
        el('div', { class: 'panel' }, el('h3', { text: 'Backups ended recently' }),
          table(['Backup', 'Progress', 'State', 'Error'], ended, 'None yet.', 'backups-ended')),
        el('div', { class: 'panel' }, el('h3', { text: 'Restores' }),
          table(['Backup', 'Destination', 'Progress', 'State', ''], restores, 'No restore has run.', 'restores')));
    },
  };
}
