// Talking to the daemon: the session's CSRF token, JSON-RPC calls and the filemanager gate.
// Every failure becomes an Error whose message is readable as it stands.

let csrf = null;
let counter = 0;

export class AuthError extends Error {}

export async function connect() {
  let response;
  try {
    response = await fetch('/gui/session', { credentials: 'same-origin', cache: 'no-store' });
  } catch (e) {
    throw new Error('the BitDust daemon does not answer; is it running?');
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new AuthError(body.error || 'not signed in');
  csrf = body.csrf;
}

export async function call(method, params = {}) {
  let response;
  try {
    response = await fetch('/json', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-BitDust-CSRF': csrf || '' },
      body: JSON.stringify({ jsonrpc: '2.0', id: ++counter, method, params }),
    });
  } catch (e) {
    throw new Error('the BitDust daemon does not answer; is it running?');
  }
  if (response.status === 401) throw new AuthError('the session has ended: run `bitdust show` for a new link');
  const body = await response.json().catch(() => null);
  if (!body) throw new Error(`the daemon answered HTTP ${response.status} without JSON`);
  if (body.error) throw new Error(`${method}: ${body.error.message}`);
  const answer = body.result;
  if (answer && answer.status === 'ERROR') throw new Error((answer.errors || ['unknown error']).join('; '));
  return answer && 'result' in answer ? answer.result : answer;
}

export function fm(mode, params = {}) {
  return call('filemanager', { json_request: { params: { mode, ...params } } });
}

export async function logout() {
  await fetch('/gui/logout', { method: 'POST', credentials: 'same-origin', headers: { 'X-BitDust-CSRF': csrf || '' } });
}
