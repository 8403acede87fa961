"""The CLI's progress bar and the key backup file format."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from bitdust.cli_backup import describe_redundancy
from bitdust.cli_progress import ProgressBar, WaitTimeout, bounded_interval, poll_until, render_bar
from bitdust.crypto.keys import PrivateKey
from bitdust.crypto.packet_keys import PacketSigningKey
from bitdust.identity.document import Identity
from bitdust.identity.key_backup import KeyBackup, KeyBackupError, dump, is_encrypted, load


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_render_bar_clamps_and_shows_sizes() -> None:
    line = render_bar("backup", 50.0, 1024**2, 2 * 1024**2, 512 * 1024, width=10)
    assert line == "backup [#####-----]  50.0%  1 MB of 2 MB  512 KB/s"
    assert "[----------]   0.0%" in render_bar("x", -5, width=10)
    assert "[##########] 100.0%" in render_bar("x", 100.7, width=10)


def test_tty_bar_redraws_one_line_only_on_change() -> None:
    stream = FakeTty()
    bar = ProgressBar("backup", stream, clock=lambda: 1.0)
    bar.update(10.0)
    bar.update(10.0)
    bar.update(20.0)
    bar.finish()
    text = stream.getvalue()
    assert text.count("\r") == 3 and text.count("\n") == 1 and text.endswith("100.0%\n")


def test_non_tty_bar_prints_a_line_per_ten_percent() -> None:
    stream = io.StringIO()
    bar = ProgressBar("restore", stream, tty=False, clock=lambda: 1.0)
    for percent in (0, 3, 9, 10, 15, 55, 99, 100):
        bar.update(float(percent))
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert [line.split("]")[1].split("%")[0].strip() for line in lines] == ["0.0", "10.0", "55.0", "99.0", "100.0"]


def test_poll_until_is_bounded() -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(WaitTimeout, match="waiting for nothing"):
        poll_until(lambda: None, 2.0, 0.01, "nothing", sleep=sleep, clock=lambda: now[0])
    assert 2.0 <= now[0] <= 2.5
    assert poll_until(lambda: 7, 1.0, 1.0, "x", sleep=sleep, clock=lambda: now[0]) == 7
    assert bounded_interval(0.01) == 0.2 and bounded_interval(9) == 0.5


def test_describe_redundancy() -> None:
    assert describe_redundancy([]) == "not counted yet"
    assert describe_redundancy([8, 8]) == "8 pieces per block"
    assert describe_redundancy([8, 6, 7]) == "6-8 pieces per block"


@pytest.fixture(scope="module")
def backup() -> KeyBackup:
    key = PrivateKey.generate(2048)
    packet_key = PacketSigningKey.generate()
    identity = Identity.create(key, ["http://127.0.0.1:8084/alice.xml"], ("tcp://127.0.0.1:7771",),
                               packet_key=packet_key.public_key())
    suppliers = {"ecc_map": "ecc/2x2", "positions": ["http://127.0.0.1:8084/bob.xml", ""]}
    return KeyBackup(key, packet_key, identity, suppliers)


def test_round_trip_with_passphrase(backup: KeyBackup) -> None:
    data = dump(backup, b"secret words")
    assert is_encrypted(data) and b"ENCRYPTED PRIVATE KEY" in data
    again = load(data, b"secret words")
    assert again.key.public_key() == backup.key.public_key()
    assert again.packet_key.to_raw() == backup.packet_key.to_raw()
    assert again.identity.idurl == "http://127.0.0.1:8084/alice.xml"
    assert again.suppliers == backup.suppliers


def test_wrong_or_missing_passphrase_is_refused(backup: KeyBackup) -> None:
    data = dump(backup, b"secret words")
    with pytest.raises(KeyBackupError, match="wrong passphrase"):
        load(data, b"other words")
    with pytest.raises(KeyBackupError, match="protected by a passphrase"):
        load(data, None)


def test_without_passphrase(backup: KeyBackup) -> None:
    data = dump(backup, None)
    assert not is_encrypted(data) and b"BEGIN PRIVATE KEY" in data
    assert load(data, None).idurl == backup.idurl


@pytest.mark.parametrize("field,value", [
    ("suppliers", {"ecc_map": "ecc/2x2", "positions": ["http://evil:1/x.xml", ""]}),
    ("idurl", "http://127.0.0.1:8084/mallory.xml"),
    ("created", "2000-01-01T00:00:00Z"),
])
def test_tampered_file_is_refused(backup: KeyBackup, field: str, value: object) -> None:
    fields = json.loads(dump(backup, b"pw"))
    fields[field] = value
    with pytest.raises(KeyBackupError, match="changed after it was written"):
        load(json.dumps(fields).encode(), b"pw")


def test_damaged_files_are_refused(backup: KeyBackup, tmp_path: Path) -> None:
    fields = json.loads(dump(backup, b"pw"))
    pem = fields["key"]["pem"]
    fields["key"]["pem"] = pem[:100] + ("A" if pem[100] != "A" else "B") + pem[101:]
    with pytest.raises(KeyBackupError, match=r"wrong passphrase|damaged"):
        load(json.dumps(fields).encode(), b"pw")
    with pytest.raises(KeyBackupError, match="not a BitDust key backup"):
        load(b"hello", None)
    newer = json.loads(dump(backup, None))
    newer["version"] = 2
    with pytest.raises(KeyBackupError, match="version 2 is not supported"):
        load(json.dumps(newer).encode(), None)
    missing = json.loads(dump(backup, None))
    del missing["packet_key"]
    with pytest.raises(KeyBackupError, match="fields"):
        load(json.dumps(missing).encode(), None)


def test_identity_restore_installs_on_a_fresh_home_and_refuses_another_node(
        backup: KeyBackup, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bitdust.cli import main
    from bitdust.home import Home

    key_file = tmp_path / "alice.key"
    key_file.write_bytes(dump(backup, None))
    fresh = tmp_path / "fresh"
    assert main(["--home", str(fresh), "identity", "restore", str(key_file)]) == 0
    home = Home(fresh)
    assert PrivateKey.load(home.key_file).public_key() == backup.key.public_key()
    assert home.key_file.stat().st_mode & 0o777 == 0o600
    assert (fresh / "catalog" / "recover-from-suppliers").exists()
    suppliers = json.loads((fresh / "customer" / "suppliers.json").read_text())
    assert [row["idurl"] for row in suppliers["suppliers"]] == ["http://127.0.0.1:8084/bob.xml", ""]
    assert main(["--home", str(fresh), "identity", "restore", str(key_file)]) == 0  # same key: fine

    other = tmp_path / "other"
    Home(other).ensure()
    PrivateKey.generate(2048).save(Home(other).key_file)
    capsys.readouterr()
    assert main(["--home", str(other), "identity", "restore", str(key_file)]) == 1
    assert "another node's key" in capsys.readouterr().err

    written = tmp_path / "again.key"
    assert main(["--home", str(fresh), "identity", "backup", str(written)]) == 0
    assert written.stat().st_mode & 0o777 == 0o600
    assert load(written.read_bytes(), None).suppliers == backup.suppliers
