"""free_port: ports for nodes that are about to listen on loopback."""

from __future__ import annotations

import socket

import pytest

from bitdust.util import net


def test_ports_come_from_below_the_ephemeral_range_and_are_free() -> None:
    low = net._ephemeral_low()
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        ports = {net.free_port(kind) for _ in range(20)}
        assert all(max(1024, low - net.PICK_SPAN) <= port < low for port in ports)
        for port in ports:
            with socket.socket(socket.AF_INET, kind) as sock:
                sock.bind((net.LOOPBACK, port))  # still free: nothing else took it


def test_a_crowded_range_falls_back_to_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    low = net._ephemeral_low()
    monkeypatch.setattr(net, "PICK_SPAN", 1)  # the range is one port wide...
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        try:
            blocker.bind((net.LOOPBACK, low - 1))  # ...and that port is taken
        except OSError:
            pytest.skip(f"port {low - 1} is in use by something else")
        port = net.free_port()
        assert port != low - 1 and port >= low


def test_a_port_is_not_handed_out_twice_before_anyone_binds_it(monkeypatch: pytest.MonkeyPatch) -> None:
    picks = iter([4242, 4242, 4243])
    monkeypatch.setattr(net.random, "randrange", lambda _a, _b: next(picks))
    monkeypatch.setattr(net, "_ephemeral_low", lambda: 5000)
    monkeypatch.setattr(net, "_HANDED", net._Handed(8))
    assert net.free_port() == 4242
    assert net.free_port() == 4243  # 4242 is still free (nobody bound it), but it was handed out
