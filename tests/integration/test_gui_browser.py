"""The browser GUI end to end, in headless Chromium driven by Playwright, on an in-process
grid (node0 seed and supplier, node1 the customer, node2..node4 suppliers).

The grid runs on the test's reactor; Playwright's synchronous API runs in a worker
thread (it has its own event loop), so the reactor keeps serving the page meanwhile.
Every wait is bounded (Playwright's ``expect``/``wait_for`` timeouts). Screenshots of
each view go to ``test-output/gui/`` at the repository root (ignored by git).
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, threads

from bitdust.node import Node
from tests.integration.grid import announce_suppliers, market_grid, wait_until
from tests.integration.test_customer_grid import all_online
from tests.restore_helpers import make_tree, snapshot

CHROMIUM = "/usr/bin/chromium"
COUNT = 5
CUSTOMER = 1
BLOCK = 64 * 1024
SHARE = 2 * 1024 * 1024
UI_WAIT = 60_000  # ms
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "gui"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Generator[list[Node], None, None]:
    yield from market_grid(reactor, tmp_path_factory.mktemp("gui"), COUNT, CUSTOMER, SHARE, BLOCK)


def rpc(port: int, method: str, params: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
    """A raw JSON-RPC POST; (HTTP status, body)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/json", data=body, method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def drive(port: int, secret: str, url: str, source: Path, dest: Path) -> None:
    """Everything the browser does, in a worker thread."""
    from playwright.sync_api import expect, sync_playwright

    bearer = {"Authorization": f"Bearer {secret}"}

    def api(method: str, **params: Any) -> Any:
        status, body = rpc(port, method, params, bearer)
        assert status == 200 and body["result"]["status"] == "OK", body
        return body["result"]["result"]

    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1360, "height": 900})
            context.set_default_timeout(UI_WAIT)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            # the one-time link becomes a cookie and disappears from the address bar
            page.goto(url)
            expect(page).to_have_url(f"http://127.0.0.1:{port}/gui/")
            cookies = context.cookies()
            assert [(c["name"], c["httpOnly"], c["sameSite"]) for c in cookies] == [
                (f"bitdust_session_{port}", True, "Strict")]

            # dashboard figures are filemanager_stats'
            stats = api("filemanager_stats")
            for field in ("bytes_donated", "bytes_needed", "online_suppliers", "customers", "files_count",
                          "items_count"):
                expect(page.get_by_test_id(f"stat-{field}")).to_have_attribute("data-value", str(stats[field]))
            expect(page.get_by_test_id("stat-online_suppliers")).to_contain_text(
                f"{stats['online_suppliers']} of {stats['max_suppliers']}")
            expect(page.get_by_test_id("stat-bytes_donated")).to_contain_text(stats["value_donated"])
            expect(page.get_by_test_id("stat-network")).to_contain_text("CONNECTED")
            page.screenshot(path=str(OUTPUT / "dashboard.png"), full_page=True)

            # back up a folder picked in the local listing
            page.click("nav a[data-view=files]")
            page.get_by_test_id("local-path").fill(str(source.parent))
            page.get_by_test_id("local-go").click()
            expect(page.get_by_test_id(f"local-entry-{source.name}")).to_be_visible()
            page.get_by_test_id(f"backup-{source.name}").click()
            expect(page.get_by_test_id("toast").first).to_contain_text("uploading of item")
            path_id = next(i["id"] for i in api("filemanager_list") if i["path"] == str(source))
            page.click("nav a[data-view=tasks]")
            done = page.locator(f'[data-testid^="backup-done-{path_id}/"]')
            expect(done).to_have_count(1)
            backup_id = str(done.get_attribute("data-testid")).removeprefix("backup-done-")
            expect(page.get_by_test_id(f"backup-progress-{backup_id}-text")).to_have_text("100%")
            expect(done).to_contain_text("DONE")
            page.screenshot(path=str(OUTPUT / "tasks-backup.png"), full_page=True)

            # restore it elsewhere from the catalog
            page.click("nav a[data-view=files]")
            expect(page.get_by_test_id(f"version-{backup_id}")).to_be_visible()
            page.get_by_test_id(f"restore-to-{backup_id}").click()
            page.get_by_test_id(f"restore-dest-{backup_id}").fill(str(dest))
            page.screenshot(path=str(OUTPUT / "files.png"), full_page=True)
            page.get_by_test_id(f"restore-go-{backup_id}").click()
            expect(page.get_by_test_id("toast").last).to_contain_text("has been started to")
            page.click("nav a[data-view=tasks]")
            expect(page.get_by_test_id(f"restore-state-{backup_id}")).to_have_text("DONE")
            expect(page.get_by_test_id(f"restore-progress-{backup_id}-text")).to_have_text("100%")
            page.screenshot(path=str(OUTPUT / "tasks-restore.png"), full_page=True)
            assert snapshot(dest / source.name) == snapshot(source)

            # settings: a bad value is explained, a good one is saved and survives a reload
            page.click("nav a[data-view=settings]")
            page.get_by_test_id("cfg-filter").fill("debug-level")
            page.get_by_test_id("cfg-input-logs/debug-level").fill("loud")
            page.get_by_test_id("cfg-save-logs/debug-level").click()
            expect(page.get_by_test_id("cfg-msg-logs/debug-level")).to_contain_text("loud")
            page.get_by_test_id("cfg-input-logs/debug-level").fill("6")
            page.get_by_test_id("cfg-save-logs/debug-level").click()
            expect(page.get_by_test_id("cfg-msg-logs/debug-level")).to_contain_text("saved")
            page.reload()
            page.get_by_test_id("cfg-filter").fill("debug-level")
            expect(page.get_by_test_id("cfg-input-logs/debug-level")).to_have_value("6")
            assert api("config_get", key="logs/debug-level")[0]["value"] == "6"
            page.get_by_test_id("cfg-filter").fill("")
            page.screenshot(path=str(OUTPUT / "settings.png"))

            for view in ("peers", "system"):
                page.click(f"nav a[data-view={view}]")
                expect(page.get_by_test_id("suppliers" if view == "peers" else "services")).to_be_visible()
                page.screenshot(path=str(OUTPUT / f"{view}.png"), full_page=True)

            # refused: no secret and no cookie; the cookie without the CSRF header; the
            # right cookie and header but another origin; a page of another origin
            change = {"key": "logs/debug-level", "value": "9"}
            assert rpc(port, "config_set", change, {})[0] == 401
            cookie = {"Cookie": f"{cookies[0]['name']}={cookies[0]['value']}", "Host": f"127.0.0.1:{port}"}
            assert rpc(port, "config_set", change, cookie)[0] == 401
            csrf = page.evaluate("fetch('/gui/session').then(r => r.json()).then(b => b.csrf)")
            assert rpc(port, "config_set", change, {**cookie, "X-BitDust-CSRF": "wrong"})[0] == 401
            assert rpc(port, "config_set", change, {**cookie, "X-BitDust-CSRF": csrf,
                                                    "Origin": "http://evil.example"})[0] == 401
            page.route("http://evil.example/", lambda route: route.fulfill(
                content_type="text/html", body="<html><body>evil</body></html>"))
            page.goto("http://evil.example/")
            page.evaluate("""port => Promise.allSettled([
                fetch(`http://127.0.0.1:${port}/json`, {method: 'POST', mode: 'no-cors', credentials: 'include',
                  headers: {'Content-Type': 'text/plain'},
                  body: JSON.stringify({jsonrpc: '2.0', id: 1, method: 'config_set',
                                        params: {key: 'logs/debug-level', value: '9'}})}),
                fetch(`http://127.0.0.1:${port}/json`, {method: 'POST', credentials: 'include',
                  headers: {'Content-Type': 'application/json', 'X-BitDust-CSRF': 'guess'},
                  body: JSON.stringify({jsonrpc: '2.0', id: 2, method: 'config_set',
                                        params: {key: 'logs/debug-level', value: '9'}})})])""", port)
            assert api("config_get", key="logs/debug-level")[0]["value"] == "6"

            # a spent link does not sign anyone in again
            fresh = browser.new_context()
            other = fresh.new_page()
            other.goto(url)
            expect(other.get_by_test_id("signin")).to_contain_text("already used or has expired")
            fresh.close()
            assert errors == []
        finally:
            browser.close()


@pytest.mark.timeout(300)
@pytest_twisted.inlineCallbacks
def test_the_gui_backs_up_and_restores_through_the_browser(grid: list[Node], tmp_path: Path) -> Any:
    customer = grid[CUSTOMER]
    yield announce_suppliers(reactor, grid, 30)
    yield customer.services.start_service("service_employer")
    yield wait_until(reactor, lambda: all_online(customer), 30, "4 suppliers online")

    if OUTPUT.exists():
        shutil.rmtree(OUTPUT)
    source = make_tree(tmp_path / "src", BLOCK)
    secret = customer.home.api_secret()
    assert secret is not None and customer.api is not None
    url = customer.api.access.gui_url(customer.api.access.new_token())
    yield threads.deferToThread(drive, customer.api_port, secret, url, source, tmp_path / "restored")
