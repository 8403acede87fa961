// Small DOM helpers shared by the views.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'testid') node.dataset.testid = value;
    else if (key === 'style') node.style.cssText = value; // CSSOM: allowed by the page's CSP
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function formatSize(bytes) {
  if (bytes === null || bytes === undefined) return '';
  const units = ['bytes', 'KB', 'MB', 'GB', 'TB'];
  let value = Number(bytes);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return unit === 0 ? `${value} bytes` : `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}

export function progressBar(percent, testid) {
  const value = Math.max(0, Math.min(100, Number(percent) || 0));
  return el('div', { class: 'row' },
    el('div', { class: 'progress grow' + (value >= 100 ? ' done' : ''), role: 'progressbar',
      'aria-valuenow': value, 'aria-valuemin': 0, 'aria-valuemax': 100, testid },
      el('div', { style: `width:${value}%` })),
    el('span', { class: 'mono', testid: testid ? testid + '-text' : undefined, text: `${Math.floor(value)}%` }));
}

export function toast(message, isError = false) {
  const box = el('div', { class: 'toast' + (isError ? ' error' : ''), role: isError ? 'alert' : 'status',
    testid: isError ? 'toast-error' : 'toast' }, message);
  document.getElementById('toasts').append(box);
  setTimeout(() => box.remove(), isError ? 9000 : 5000);
}

// A button that asks once more before acting ("Delete" -> "Really delete?").
export function confirmButton(label, action, testid) {
  const button = el('button', { class: 'danger', testid, text: label });
  let armed = null;
  button.addEventListener('click', async () => {
    if (!armed) {
      button.textContent = `Really ${label.toLowerCase()}?`;
      button.classList.add('confirm');
      armed = setTimeout(() => { armed = null; button.textContent = label; button.classList.remove('confirm'); }, 4000);
      return;
    }
    clearTimeout(armed);
    armed = null;
    button.disabled = true;
    try { await action(); } finally { button.disabled = false; button.textContent = label; button.classList.remove('confirm'); }
  });
  return button;
}

// Run an action, showing its answer or its error as a toast.
export async function attempt(action, success) {
  try {
    const result = await action();
    if (success) toast(typeof success === 'function' ? success(result) : success);
    else if (typeof result === 'string') toast(result);
    return result;
  } catch (e) {
    toast(e.message, true);
    return undefined;
  }
}

export function replace(root, ...children) {
  root.replaceChildren(...children.flat(Infinity).filter((c) => c));
}
