"""One-time tokens, sessions and the CSRF/origin rules of the GUI (no network)."""

from __future__ import annotations

from bitdust.api.gui_access import SESSION_SECONDS, TOKEN_SECONDS, GuiAccess


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make() -> tuple[GuiAccess, Clock]:
    clock = Clock()
    return GuiAccess(lambda: 8083, clock), clock


def test_a_token_works_once() -> None:
    access, _ = make()
    token = access.new_token()
    assert access.gui_url(token) == f"http://127.0.0.1:8083/gui/?token={token}"
    session = access.redeem(token)
    assert session is not None and access.redeem(token) is None
    assert access.session(session.encode()) is not None


def test_a_token_expires() -> None:
    access, clock = make()
    token = access.new_token()
    clock.now += TOKEN_SECONDS + 1
    assert access.redeem(token) is None


def test_calls_need_cookie_csrf_own_host_and_origin() -> None:
    access, clock = make()
    sid = access.redeem(access.new_token())
    assert sid is not None
    session = access.session(sid.encode())
    assert session is not None
    cookie, csrf, host = sid.encode(), session.csrf.encode(), b"127.0.0.1:8083"
    assert access.allows_call(cookie, csrf, None, host)
    assert access.allows_call(cookie, csrf, b"http://127.0.0.1:8083", host)
    assert not access.allows_call(cookie, csrf, b"http://evil.example", host)
    assert not access.allows_call(cookie, None, None, host)
    assert not access.allows_call(cookie, b"wrong", None, host)
    assert not access.allows_call(None, csrf, None, host)
    assert not access.allows_call(cookie, csrf, None, b"evil.example:8083")
    clock.now += SESSION_SECONDS + 1
    assert not access.allows_call(cookie, csrf, None, host)


def test_tokens_are_bounded() -> None:
    access, _ = make()
    tokens = [access.new_token() for _ in range(100)]
    assert access.redeem(tokens[0]) is None and access.redeem(tokens[-1]) is not None
