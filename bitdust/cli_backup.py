"""``bitdust backup PATH``, ``bitdust restore ID_OR_PATH [DEST]`` and ``bitdust files``.

Friendly verbs over the spec's calls: ``backup_start_path`` then ``backups_running`` /
``backups_id_list``; ``restore_single`` then ``restores_running``; ``backups_list``.
The CLI has no reactor: it polls the API every 0.2-0.5 s, within ``--timeout``.

How a backup's end is seen: the spec's ``backup_start_path`` answers with the path ID
only (no version), and a small job may be over before the first poll. So the backup IDs
of the item are noted before the start; the job is done when a *new* backup ID of the
item is in ``backups_id_list`` (a version is listed only once every piece was Acked)
and no job of the item runs or waits. A job that leaves without a new version failed:
the reason is the ``backup <id> ended: ...`` line of the daemon's log, as the API keeps
no record of ended backup jobs.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

from bitdust.cli import EXIT_OK, CliError, _print_json, call_api
from bitdust.cli_progress import ProgressBar, WaitTimeout, poll_until
from bitdust.home import Home
from bitdust.util.units import format_size

T = TypeVar("T")
DEFAULT_TIMEOUT = 24 * 3600.0
POLL_INTERVAL = 0.25
VANISH_GRACE = 10.0
"""A started task not seen queued, running or done for this long is taken as failed."""
_STARTED = re.compile(r"version (\S+) has been started to (.+)$")


def api_ok(home: Home, method: str, *args: Any) -> dict[str, Any]:
    """The daemon's answer to ``method``; CliError (exit 1) carrying its reasons on ERROR."""
    answer, _code = call_api(home, method, list(args), {})
    if not isinstance(answer, dict) or answer.get("status") != "OK":
        errors = answer.get("errors", [answer]) if isinstance(answer, dict) else [answer]
        raise CliError("; ".join(str(e) for e in errors))
    return answer


def _item_backup_ids(home: Home, path_id: str | None = None, path: str | None = None) -> set[str]:
    rows = api_ok(home, "backups_id_list")["result"]
    return {row["backupid"] for row in rows
            if (path_id is not None and row["backupid"].rpartition("/")[0] == path_id)
            or (path is not None and row["path"] == path)}


def _log_reason(home: Home, backup_id: str | None) -> str:
    """The daemon's last word on a backup that ended without a version (see module doc)."""
    if not backup_id:
        return f"see {home.main_log}"
    try:
        with open(home.main_log, encoding="utf-8", errors="replace") as log_file:
            lines = log_file.readlines()[-5000:]
    except OSError:
        return f"see {home.main_log}"
    marker = f"backup {backup_id} ended:"
    for line in reversed(lines):
        if marker in line:
            return line.split(marker, 1)[1].strip()
    return f"see {home.main_log}"


# -- backup ----------------------------------------------------------------------------


class BackupWatch:
    """Tracks one item's backup through queue, job and catalog, one poll at a time."""

    def __init__(self, home: Home, path_id: str, before: set[str], bar: ProgressBar | None) -> None:
        self.home = home
        self.path_id = path_id
        self.before = before
        self.bar = bar
        self.backup_id: str | None = None
        self.total = 0
        self.started = time.monotonic()
        self.last_seen = self.started

    def check(self) -> str | None:
        """The new backup ID once the job is done; None while it queues or runs."""
        prefix = self.path_id + "/"
        running = [job for job in api_ok(self.home, "backups_running")["result"]
                   if str(job.get("backupid", "")).startswith(prefix)]
        now = time.monotonic()
        if running:
            job = running[0]
            self.backup_id = job["backupid"]
            self.total = int(job.get("totalsize") or self.total)
            self.last_seen = now
            if self.bar is not None:
                self.bar.update(float(job.get("progress") or 0.0), int(job.get("bytesprocessed") or 0),
                                self.total or None)
            return None
        new = _item_backup_ids(self.home, path_id=self.path_id) - self.before
        if new:
            return self.backup_id if self.backup_id in new else max(new)
        queued = [t for t in api_ok(self.home, "backups_queue")["result"] if t.get("pathid") == self.path_id]
        if queued:
            self.last_seen = now
            if self.bar is not None:
                self.bar.update(0.0)
            return None
        if self.backup_id is not None or now - self.last_seen > VANISH_GRACE:
            raise CliError(f"backup of item {self.path_id} ended without a new version: "
                           f"{_log_reason(self.home, self.backup_id)}")
        return None


def _version_info(home: Home, backup_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(catalog item, version entry) of ``backup_id`` from ``backups_list``."""
    path_id, _, version = backup_id.rpartition("/")
    for item in api_ok(home, "backups_list")["result"]:
        if item.get("id") == path_id:
            for entry in item.get("versions", []):
                if entry.get("version") == version:
                    return item, entry
            return item, {}
    return {}, {}


def cmd_backup(home: Home, args: argparse.Namespace) -> int:
    path = os.path.abspath(os.path.expanduser(args.path))
    before = _item_backup_ids(home, path=path)
    started = time.monotonic()
    answer = api_ok(home, "backup_start_path", path)
    path_id = str(answer.get("id", ""))
    if args.no_wait or not path_id:
        _say(args, {"status": "started", "path": path, "path_id": path_id, "message": answer["result"]},
             str(answer["result"]))
        return EXIT_OK
    bar = None if args.json else ProgressBar("backup ")
    watch = BackupWatch(home, path_id, before, bar)
    backup_id = _wait(bar, watch.check, args.timeout, f"the backup of {path}", "backups_running")
    seconds = time.monotonic() - started
    item, version = _version_info(home, backup_id)
    source = int(item.get("size") or watch.total or 0)
    if bar is not None:
        bar.finish(source, source)
    result = {"status": "done", "backupid": backup_id, "path": path, "path_id": path_id,
              "source_bytes": source, "stored_size": version.get("size", ""), "blocks": version.get("blocks"),
              "seconds": round(seconds, 3), "mb_per_s": round(source / 2**20 / seconds, 2) if seconds else 0.0}
    _say(args, result, f"backup {backup_id} done: {format_size(source)} of {path} "
         f"({version.get('blocks', '?')} blocks, {version.get('size', '?')} stored) in {seconds:.1f} s"
         f" ({result['mb_per_s']} MB/s)")
    return EXIT_OK


# -- restore ---------------------------------------------------------------------------


def _restore_target(text: str) -> str:
    """A local path is sent absolute (the daemon has another working folder); catalog
    IDs (``0/1/2``, ``0/1/F2024...``) never start with ``/`` or ``.`` and are sent as they are."""
    if text.startswith((os.sep, ".", "~")) or os.path.exists(text):
        return os.path.abspath(os.path.expanduser(text))
    return text


def _restore_job(home: Home, backup_id: str) -> dict[str, Any] | None:
    for job in api_ok(home, "restores_running")["result"]:
        if job.get("backupid") == backup_id:
            return dict(job)
    return None


def cmd_restore(home: Home, args: argparse.Namespace) -> int:
    target = _restore_target(args.target)
    params: list[Any] = [target]
    if args.dest:
        params.append(os.path.abspath(os.path.expanduser(args.dest)))
    started = time.monotonic()
    answer = api_ok(home, "restore_single", *params)
    match = _STARTED.search(str(answer["result"]))
    if args.no_wait or match is None:
        _say(args, {"status": "started", "message": answer["result"]}, str(answer["result"]))
        return EXIT_OK
    backup_id, dest = match.group(1), match.group(2)
    bar = None if args.json else ProgressBar("restore")

    def check() -> dict[str, Any] | None:
        job = _restore_job(home, backup_id)
        if job is None:
            raise CliError(f"restore of {backup_id} is no longer listed by restores_running; see {home.main_log}")
        if bar is not None:
            bar.update(float(job.get("progress") or 0.0), int(job.get("bytesprocessed") or 0))
        return job if job.get("done") else None

    job = _wait(bar, check, args.timeout, f"the restore of {backup_id}", "restores_running")
    seconds = time.monotonic() - started
    state = str(job.get("state", "DONE" if not job.get("aborted") else "ABORTED"))
    if job.get("aborted") or job.get("errors") or state != "DONE":
        reasons = "; ".join(str(e) for e in job.get("errors") or []) or state.lower()
        raise CliError(f"restore of {backup_id} failed: {reasons}")
    size = int(job.get("bytesprocessed") or 0)
    if bar is not None:
        bar.finish(size)
    result = {"status": "done", "backupid": backup_id, "destination": job.get("destination", dest),
              "bytes": size, "blocks": job.get("blocks"), "badpieces": job.get("badpieces", 0),
              "seconds": round(seconds, 3), "mb_per_s": round(size / 2**20 / seconds, 2) if seconds else 0.0}
    _say(args, result, f"restore {backup_id} done into {result['destination']}: {format_size(size)} "
         f"({job.get('blocks', '?')} blocks) in {seconds:.1f} s ({result['mb_per_s']} MB/s)")
    return EXIT_OK


# -- files -----------------------------------------------------------------------------


def cmd_files(home: Home, args: argparse.Namespace) -> int:
    items = api_ok(home, "backups_list")["result"]
    if args.json:
        _print_json(items)
        return EXIT_OK
    if not items:
        print("the catalog is empty: back something up with `bitdust backup PATH`")
        return EXIT_OK
    for item in items:
        print(f"{item['id']:<12} {item['type']:<6} {format_size(int(item.get('size') or 0)):>10}  {item['path']}")
        for version in item.get("versions", []):
            print(f"{'':<12}   {item['id']}/{version['version']}  {version['blocks']} blocks  {version['size']}"
                  f"  redundancy {describe_redundancy(version.get('redundancy'))}")
    return EXIT_OK


def describe_redundancy(counts: Any) -> str:
    """``[8, 8, 7]`` -> ``'7-8 pieces per block'``; the rebuilder has not counted yet -> ``'not counted'``."""
    if not counts:
        return "not counted yet"
    low, high = min(counts), max(counts)
    return f"{low} pieces per block" if low == high else f"{low}-{high} pieces per block"


# -- glue ------------------------------------------------------------------------------


def _wait(bar: ProgressBar | None, check: Callable[[], T | None], timeout: float, what: str, listing: str) -> T:
    """Poll ``check``; on any way out but success the bar's line is ended first, so
    the error message starts on a line of its own."""
    try:
        return poll_until(check, timeout, POLL_INTERVAL, what)
    except WaitTimeout as exc:
        if bar is not None:
            bar.close()
        raise CliError(f"{exc}; the job goes on in the daemon (bitdust api {listing})") from None
    except BaseException:
        if bar is not None:
            bar.close()
        raise


def _say(args: argparse.Namespace, result: dict[str, Any], text: str) -> None:
    if args.json:
        _print_json(result)
    else:
        print(text)


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 1 <= value <= 30 * 24 * 3600:
        raise argparse.ArgumentTypeError("--timeout must be between 1 s and 30 days")
    return value


def add_parser(sub: Any) -> None:
    """Register ``backup``, ``restore`` and ``files`` on the CLI's subparsers."""
    def common(parser: argparse.ArgumentParser, waits: bool = True) -> None:
        parser.add_argument("--json", action="store_true", help="print a JSON result instead of text and no bar")
        if waits:
            parser.add_argument("--no-wait", action="store_true", help="return as soon as the job started")
            parser.add_argument("--timeout", type=_timeout, default=DEFAULT_TIMEOUT,
                                help="give up waiting after this many seconds (default 24 h; the job goes on)")

    backup = sub.add_parser("backup", help="back up a file or folder: backup PATH")
    backup.add_argument("path")
    common(backup)
    backup.set_defaults(func=cmd_backup)
    restore = sub.add_parser("restore", help="restore a version, an item or a path: restore ID_OR_PATH [DEST]")
    restore.add_argument("target", help="backup ID, path ID, or the local path that was backed up")
    restore.add_argument("dest", nargs="?", help="restore into this folder (default: where it came from)")
    common(restore)
    restore.set_defaults(func=cmd_restore)
    files = sub.add_parser("files", help="the catalog: items, versions and their redundancy")
    common(files, waits=False)
    files.set_defaults(func=cmd_files)

