"""The real :class:`~bitdust.storage.backups.job.JobIO`: catalog, encoder, data motion,
local copies; plus deleting versions everywhere (jobs, max-copies, the API, the monitor).

Everything blocking (checking the source, sizing it, encoding, writing local copies)
runs in the ECC worker's threads; the catalog is touched only on the reactor thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, DeferredList, fail, inlineCallbacks, succeed
from twisted.python.failure import Failure

from bitdust.services.data_disintegration import EccWorker
from bitdust.storage.backups.job import Opened
from bitdust.storage.catalog.localpath import check_local_path
from bitdust.storage.catalog.model import CatalogError
from bitdust.storage.catalog.tree import Catalog
from bitdust.storage.customer.connector import CONNECTED
from bitdust.storage.ecc import EccMap
from bitdust.storage.ids import split_backup_id
from bitdust.storage.motion import DataMotion
from bitdust.storage.pipeline.block_crypto import VersionKey
from bitdust.storage.pipeline.encoder import BackupEncoder, EncodedBlock
from bitdust.storage.supplier import disk

if TYPE_CHECKING:
    from bitdust.node import Node
    from bitdust.services.customer import CustomerService

log = logging.getLogger(__name__)

SUPPLIERS_WAIT_SECONDS = 60.0
ENCODE_AHEAD = 2
"""Blocks the job's sealer thread may hold (sealed, coded or waiting) ahead of the sender."""


@dataclass
class Parts:
    """What the backups service lends to jobs and deletions (looked up once per use)."""

    node: Node
    catalog: Catalog
    motion: DataMotion
    worker: EccWorker
    customer: CustomerService

    @property
    def local_root(self) -> Path:
        return self.node.home.backups

    def keep_local(self) -> bool:
        return bool(self.node.config.get("services/backups/keep-local-copies-enabled"))

    def block_size(self) -> int:
        config = self.node.config
        return min(int(config.get("services/backups/block-size")), int(config.get("services/backups/max-block-size")))

    def all_connected(self) -> bool:
        return self.customer.all_connected()


class RealJobIO:
    def __init__(self, parts: Parts, wait_seconds: float = SUPPLIERS_WAIT_SECONDS) -> None:
        self.parts = parts
        self.wait_seconds = wait_seconds
        self._encoder: BackupEncoder | None = None
        self._blocks: Iterator[EncodedBlock] | None = None
        self._sealer: ThreadPoolExecutor | None = None

    def wait_suppliers(self) -> Deferred[None]:
        """Every position must have a connected supplier: a piece for an empty or
        offline position could not be acknowledged, so waiting (bounded) beats failing
        halfway through a big item. Cancelling (the job aborted) drops the timer and the
        listener: nothing of the wait outlives the job or the customer service."""
        parts = self.parts
        if parts.all_connected():
            return succeed(None)
        clock = parts.node.clock

        def cancelled(_result: Deferred[None]) -> None:
            parts.customer.remove_change_listener(check)
            if timer.active():
                timer.cancel()

        result: Deferred[None] = Deferred(cancelled)

        def check() -> None:
            if not result.called and parts.all_connected():
                finish(None)

        def give_up() -> None:
            connected = sum(1 for v in parts.customer.positions() if v.idurl and v.state == CONNECTED)
            finish(Failure(RuntimeError(f"only {connected} of {parts.customer.running_list().size} suppliers "
                                        f"are connected after {self.wait_seconds:g} s; try again later")))

        def finish(value: Any) -> None:
            parts.customer.remove_change_listener(check)
            if timer.active():
                timer.cancel()
            if not result.called:
                result.callback(value) if not isinstance(value, Failure) else result.errback(value)

        timer = clock.callLater(self.wait_seconds, give_up)
        parts.customer.add_change_listener(check)
        return result

    @inlineCallbacks
    def open(self, path_id: str, backup_id: str) -> Any:
        parts = self.parts
        item = parts.catalog.item(path_id)
        key = parts.node.key
        if key is None:
            raise RuntimeError("this node has no private key")
        yield parts.worker.run(check_local_path, item.local_path, item.type if not item.is_folder else None)
        ecc = EccMap.from_name(parts.customer.running_list().ecc_map)
        version_key = VersionKey.create(key.public_key())
        _path_id, version = split_backup_id(backup_id)
        parts.catalog.add_version(path_id, version, ecc.name, version_key.wrapped)
        yield parts.catalog.save()
        block_size = parts.block_size()
        # One thread of the job's own seals and erasure-codes block i while the worker's
        # thread reads and compresses block i+1 (see BackupEncoder); shut down with the job.
        self._sealer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="backup-seal")
        self._encoder = BackupEncoder(item.local_path, backup_id, ecc, version_key, block_size,
                                      executor=self._sealer, depth=ENCODE_AHEAD)
        total = yield parts.worker.run(self._encoder.total_size)
        return Opened(ecc, block_size, total)

    def next_block(self) -> Deferred[EncodedBlock | None]:
        if self._encoder is None:
            return fail(RuntimeError("the encoder is not open"))
        if self._blocks is None:
            self._blocks = iter(self._encoder)
        return self.parts.worker.next_item(self._blocks)

    def bytes_read(self) -> int:
        return self._encoder.bytes_read if self._encoder is not None else 0

    def send(self, position: int, pieces: list[tuple[str, bytes | memoryview]]) -> Deferred[None]:
        sending = self.parts.motion.send_pieces(position, pieces)
        if not self.parts.keep_local():
            return sending

        def also_local(_acked: None) -> Deferred[None]:
            def write_all() -> None:
                for piece_id, data in pieces:
                    disk.write_piece(self.parts.local_root, piece_id, data)

            writing = self.parts.worker.run(write_all)
            return writing.addErrback(lambda f: log.warning(
                "local copies of %s not written: %s", ", ".join(p for p, _d in pieces), f.getErrorMessage()))

        return sending.addCallback(also_local)

    def _close_sealer(self) -> None:
        sealer, self._sealer = self._sealer, None
        if sealer is not None:
            sealer.shutdown(wait=False, cancel_futures=True)

    def complete(self, backup_id: str, blocks: int, size: int, source_size: int) -> Deferred[None]:
        self._close_sealer()
        self.parts.catalog.mark_complete(backup_id, blocks=blocks, size=size, source_size=source_size)
        return self.parts.catalog.save()

    @inlineCallbacks
    def discard(self, backup_id: str) -> Any:
        blocks, self._blocks, self._encoder = self._blocks, None, None
        if blocks is not None and hasattr(blocks, "close"):
            yield self.parts.worker.run(blocks.close)
        self._close_sealer()
        try:
            self.parts.catalog.drop_version(backup_id)
            yield self.parts.catalog.save()
        except CatalogError as exc:
            log.debug("%s was not in the catalog: %s", backup_id, exc)
        yield delete_remote(self.parts, [backup_id])


@inlineCallbacks
def delete_remote(parts: Parts, backup_ids: list[str]) -> Any:
    """DeleteBackup on every position with a supplier, and the local copies; fails with
    the positions that did not confirm (backup_monitor deletes leftovers later)."""
    if not backup_ids:
        return 0
    size = parts.customer.running_list().size
    positions = [p for p in range(size) if parts.motion.supplier_at(p)]
    results = yield DeferredList([parts.motion.delete_backups(p, backup_ids) for p in positions], consumeErrors=True)
    yield parts.worker.run(disk.delete_backups, parts.local_root, backup_ids)
    failed = [f"position {p}: {r.getErrorMessage()}" for p, (ok, r) in zip(positions, results, strict=True) if not ok]
    if failed:
        raise RuntimeError("not confirmed by every supplier: " + "; ".join(failed))
    return len(positions)


def local_files(root: Path, backup_ids: list[str]) -> tuple[int, int]:
    """(files, bytes) of the local copies of ``backup_ids`` (blocking)."""
    count = total = 0
    for backup_id in backup_ids:
        folder = root.joinpath(*backup_id.split("/"))
        if not folder.is_dir() or folder.is_symlink():
            continue
        for entry in folder.iterdir():
            if entry.is_file() and not entry.is_symlink():
                count += 1
                total += entry.stat().st_size
    return count, total


Lookup = Callable[[], Parts]
