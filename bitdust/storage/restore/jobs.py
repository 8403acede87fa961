"""The restore jobs of one node: started, listed, aborted, remembered for a while.

Starting checks everything that can be checked before any piece moves, so that
``restore_single`` answers ERROR rather than OK-then-failure for a version that cannot
be opened (the data key is wrapped for another key) or a destination that cannot be
written (creating it fails, or a file is in the way). Both touch the disk or RSA, so they
run in a worker thread.

Ended jobs stay listed by ``restores_running`` (``done: True``, with ``state`` and
``errors``) for :data:`KEEP_ENDED_SECONDS`, at most :data:`KEEP_ENDED` of them: a
CLI waiting for a job learns how it ended, not only that it vanished.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from bitdust.automats.automat import AutomatRegistry
from bitdust.crypto.keys import PrivateKey
from bitdust.storage.pipeline.block_crypto import VersionKey
from bitdust.storage.pipeline.decoder import RestoreDecoder
from bitdust.storage.pipeline.tar_extract import JOURNAL_SUFFIX
from bitdust.storage.restore.share_fetch import PieceSource, SupplierHealth
from bitdust.storage.restore.target import RestoreError, RestoreTarget
from bitdust.storage.restore.worker import ENDED, RestoreWorker, ThreadRunner

log = logging.getLogger(__name__)

KEEP_ENDED = 20
KEEP_ENDED_SECONDS = 600.0
TIME_FORMAT = "%a %b %d %H:%M:%S %Y"  # 'Wed Apr 27 15:11:13 2016', as in the spec


def open_decoder(key: PrivateKey, target: RestoreTarget, journal: Path | None = None) -> RestoreDecoder:
    """In a worker thread: unwrap the data key, make (and check) the destination.
    ``journal``: see :func:`bitdust.storage.pipeline.tar_extract.clean_up_journals`."""
    try:
        version_key = VersionKey.open(key, target.wrapped_key)
    except ValueError as exc:  # BadKeyError, or a key of the wrong length
        raise RestoreError(f"cannot open the data key of version {target.backup_id}: {exc}") from None
    try:
        decoder = RestoreDecoder(target.dest, target.backup_id, target.ecc, version_key, journal)
    except (OSError, ValueError) as exc:
        raise RestoreError(f"cannot restore into {target.dest}: {_why(exc)}") from None
    if not os.access(target.dest, os.W_OK | os.X_OK):
        decoder.abort()
        raise RestoreError(f"cannot restore into {target.dest}: permission denied")
    return decoder


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} ({exc.filename})" if exc.filename else exc.strerror
    return str(exc)


class RestoreJobs:
    def __init__(self, clock: IReactorTime, registry: AutomatRegistry, run: ThreadRunner,
                 key: Callable[[], PrivateKey | None], my_idurl: Callable[[], str],
                 online: Callable[[int], bool], depth: int, timeout: float,
                 report: Callable[[str, str, str], None] | None = None, journals: Path | None = None) -> None:
        self.clock = clock
        self.registry = registry
        self.run = run
        self.key = key
        self.my_idurl = my_idurl
        self.online = online
        self.depth = depth
        self.timeout = timeout
        self.report = report
        """(supplier idurl, strike kind, why) of every piece failure that counts against
        the supplier (see :mod:`bitdust.storage.restore.strikes`)."""
        self.jobs: dict[str, RestoreWorker] = {}
        self.journals = journals
        """Folder of the restores' journals (what to remove after a crash), or None."""

    def start(self, target: RestoreTarget, source: PieceSource) -> Deferred[RestoreWorker]:
        """Fires with the running worker once the job started; RestoreError otherwise."""
        current = self.jobs.get(target.backup_id)
        if current is not None and not current.done:
            raise RestoreError(f"version {target.backup_id} is already being restored into {current.target.dest}")
        key = self.key()
        if key is None:
            raise RestoreError("this node has no private key loaded")
        self.jobs.pop(target.backup_id, None)  # an ended run of the same version: replaced
        journal = self.journals / f"{secrets.token_hex(8)}{JOURNAL_SUFFIX}" if self.journals is not None else None
        opening: Deferred[RestoreDecoder] = self.run(lambda: open_decoder(key, target, journal))
        return opening.addCallback(self._launch, target, source)

    def _launch(self, decoder: RestoreDecoder, target: RestoreTarget, source: PieceSource) -> RestoreWorker:
        current = self.jobs.get(target.backup_id)
        if current is not None and not current.done:  # a second call raced us while the key was opened
            decoder.abort()
            raise RestoreError(f"version {target.backup_id} is already being restored into {current.target.dest}")
        worker = RestoreWorker(self.clock, self.registry, target, decoder, source, self.run,
                               SupplierHealth(self.online, report=self.report), self.depth, self.timeout)
        self.jobs[target.backup_id] = worker
        self._prune()
        worker.event("start")
        return worker

    def find(self, backup_id: str) -> RestoreWorker | None:
        """The job of ``backup_id``, or the only running job of a path ID."""
        if backup_id in self.jobs:
            return self.jobs[backup_id]
        running = [w for w in self.jobs.values() if w.target.path_id == backup_id and not w.done]
        return running[0] if len(running) == 1 else None

    def abort(self, backup_id: str) -> RestoreWorker:
        worker = self.find(backup_id)
        if worker is None or worker.done:
            raise RestoreError(f"no restore of {backup_id} is running")
        if worker.state == "FINALIZING":
            raise RestoreError(f"restore of {worker.target.backup_id} is moving its files into place; it is too "
                               "late to abort it")
        worker.event("abort")
        return worker

    def abort_all(self) -> list[Deferred[str]]:
        waits = []
        for worker in list(self.jobs.values()):
            if not worker.done:
                worker.event("abort")
                waits.append(worker.when_done())
        return waits

    def listing(self) -> list[dict[str, Any]]:
        self._prune()
        return [self.describe(worker) for worker in self.jobs.values()]

    def describe(self, worker: RestoreWorker) -> dict[str, Any]:
        """The spec's fields, then this build's: state, blocks, progress, bad pieces, errors."""
        target = worker.target
        done_blocks = worker.next_block
        return {
            "aborted": worker.aborted,
            "backupid": target.backup_id,
            "blocknumber": worker.next_block,
            "bytesprocessed": worker.bytes_processed,
            "creatorid": self.my_idurl(),
            "done": worker.done,
            "created": time.strftime(TIME_FORMAT, time.localtime(worker.created)),
            "eccmap": target.ecc.name,
            "path_id": target.path_id,
            "version": target.version,
            "state": worker.state,
            "destination": target.dest,
            "blocks": target.blocks,
            "progress": round(100.0 * done_blocks / target.blocks, 2) if target.blocks else 0.0,
            "badpieces": worker.health.corrupt_total,
            "errors": [worker.error] if worker.error and worker.state in ENDED else [],
        }

    def _prune(self) -> None:
        now = time.time()
        ended = [w for w in self.jobs.values() if w.done]
        ended.sort(key=lambda w: w.created)
        for index, worker in enumerate(ended):
            if len(ended) - index > KEEP_ENDED or now - worker.created > KEEP_ENDED_SECONDS:
                del self.jobs[worker.target.backup_id]
