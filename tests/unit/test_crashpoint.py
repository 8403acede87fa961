"""The crash points (:mod:`bitdust.util.crashpoint`) and what cleans up after a crash at
them: a catalog temp file, and the temporaries of a restore (its journal). The points
kill the process, so those runs are subprocesses."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from bitdust.storage.catalog.store import CatalogStore
from bitdust.storage.catalog.tree import Catalog
from bitdust.storage.pipeline.tar_extract import TarExtractor, clean_up_journals
from bitdust.util import crashpoint
from bitdust.util.fs import remove_temp_files


def run_armed(point: str, code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, crashpoint.ENV: point}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60,
                          check=False)


def test_parse_and_disarmed_by_default() -> None:
    assert crashpoint._parse(None) is None
    assert crashpoint._parse("") is None
    assert crashpoint._parse("a.b") == ("a.b", 1)
    assert crashpoint._parse("a.b@3") == ("a.b", 3)
    for bad in ("a@x", "a@0", "@2"):
        with pytest.raises(ValueError):
            crashpoint._parse(bad)
    crashpoint.arm(None)
    crashpoint.crashpoint("anything")  # disarmed: returns


def test_kills_itself_on_the_nth_pass_only() -> None:
    done = run_armed("p@3", "from bitdust.util.crashpoint import crashpoint\n"
                            "for n in range(5):\n    crashpoint('other'); crashpoint('p'); print(n, flush=True)\n")
    assert done.returncode == -signal.SIGKILL
    assert done.stdout.split() == ["0", "1"]


def test_atomic_write_points_leave_old_file_and_a_temp_that_is_removed(tmp_path: Path) -> None:
    target = tmp_path / "catalog.json"
    target.write_bytes(b"old")
    code = ("import sys; from bitdust.util.fs import atomic_write\n"
            f"atomic_write({str(target)!r}, b'N' * 1000, point='catalog')\n")
    for point, temp_size in (("catalog.mid_temp_write", 500), ("catalog.after_temp_write", 1000)):
        assert run_armed(point, code).returncode == -signal.SIGKILL
        assert target.read_bytes() == b"old"
        [temp] = tmp_path.glob(".catalog.json.*.tmp")
        assert temp.stat().st_size == temp_size
        assert remove_temp_files(target) == [temp]
        assert list(tmp_path.iterdir()) == [target]
    assert run_armed("catalog.after_rename", code).returncode == -signal.SIGKILL
    assert target.read_bytes() == b"N" * 1000


def test_catalog_load_removes_a_save_cut_short(tmp_path: Path) -> None:
    store = CatalogStore(tmp_path)
    store.save(Catalog())
    leftover = tmp_path / ".catalog.json.abcd1234.tmp"
    leftover.write_bytes(b"{half")
    store.load()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog.json"]


def test_journal_removes_what_a_crashed_restore_left(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    (dest / "kept").mkdir(parents=True)
    (dest / "kept" / "a.bin").write_bytes(b"the user's file")
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, size in (("kept/a.bin", 3000), ("new/deep/b.bin", 5000)):
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, io.BytesIO(b"x" * size))
    data = archive.getvalue()
    journals = tmp_path / "journals"
    extractor = TarExtractor(dest, journals / "job.journal")
    extractor.feed(data[: 512 * 3 + 512 * 8 + 1000])  # kept/a.bin whole (not in place), b.bin begun
    temps = sorted(dest.rglob(".bitdust-*.part"))
    assert len(temps) == 2 and (dest / "new" / "deep").is_dir()
    # the process dies here: neither close() nor abort() runs

    assert sorted(clean_up_journals(journals)) == temps
    assert list(journals.iterdir()) == []
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*")) == ["kept", "kept/a.bin"]
    assert (dest / "kept" / "a.bin").read_bytes() == b"the user's file"


def test_journal_gone_after_a_restore_ends(tmp_path: Path) -> None:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo("f.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    for ending in ("close", "abort"):
        journal = tmp_path / f"{ending}.journal"
        extractor = TarExtractor(tmp_path / ending, journal)
        extractor.feed(archive.getvalue())
        assert journal.exists()
        getattr(extractor, ending)()
        assert not journal.exists()
    assert (tmp_path / "close" / "f.txt").read_bytes() == b"hi"
    assert not (tmp_path / "abort").exists()
