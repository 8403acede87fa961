"""backup_rebuilder: keeps every piece of every complete version at its position.

A pass: ask every supplier what it holds (service_list_files), plan in a worker thread
(:mod:`.plan`: redundancy per version, shares missing per block), write the redundancy
into the catalog, then rebuild the planned blocks a few at a time (:mod:`.block_job`),
and list again to confirm. Passes start when a supplier is replaced (its position is
``forced``: it holds nothing, even before it answers a listing), every
:data:`CHECK_SECONDS`, when a complete version appears in the catalog (or the catalog is
loaded; its revision is polled, :data:`POLL_SECONDS`), and on ``check`` (the service sends
it when a supplier connects or goes away, so redundancy follows who is reachable). A
pass with errors (too few pieces, a refused send) waits :data:`RETRY_SECONDS` before the
next; :data:`MAX_PASSES` passes in a row that still find work also wait, so a supplier
that silently drops pieces cannot keep the rebuilder spinning.

:meth:`BackupRebuilder.unrebuilt` is fire_hire's hook: the positions whose pieces are
not all back yet count as missing there, so it never replaces one more supplier than the
erasure coding can lose. A position leaves it once a pass sent it everything without an
error, or a listing shows it whole.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Protocol

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from bitdust.automats.automat import ANY, Automat, AutomatRegistry, Timer, Transition
from bitdust.storage.ecc import EccMap
from bitdust.storage.rebuild.block_job import BlockOutcome, PieceMover, rebuild_block
from bitdust.storage.rebuild.plan import Plan, VersionInfo, make_plan
from bitdust.storage.restore.share_fetch import SupplierHealth

log = logging.getLogger(__name__)

CHECK_SECONDS = 300.0
RETRY_SECONDS = 30.0
POLL_SECONDS = 2.0
"""How often the catalog's revision is compared (a number: cheap); a new complete version
(or the catalog being loaded at all) starts a pass, so its redundancy shows soon."""
MAX_PASSES = 3
PARALLEL_BLOCKS = 2
PIECE_TIMEOUT = 30.0
KEEP_ERRORS = 20


class RebuildEnv(Protocol):
    """What the rebuilder needs from the node (the service gives the real one)."""

    def versions(self) -> list[VersionInfo] | None:
        """Complete versions in the catalog; None while the catalog is not loaded."""

    def catalog_revision(self) -> int | None:
        """Changes whenever the catalog does; None while it is not loaded."""

    def size(self) -> int:
        """The number of supplier positions now."""

    def held(self, position: int) -> Mapping[str, int] | None: ...

    def refresh(self) -> Deferred[None]: ...

    def mover(self) -> PieceMover | None: ...

    def open_key(self, wrapped: bytes) -> bytes:
        """The data key of a version (called in a worker thread: RSA)."""

    def set_redundancy(self, redundancy: dict[str, list[int]]) -> None: ...

    def online(self, position: int) -> bool: ...

    def run(self, fn: Callable[[], Any]) -> Deferred[Any]: ...


class BackupRebuilder(Automat):
    name = "backup_rebuilder"
    initial_state = "AT_STARTUP"
    transitions = {
        ("AT_STARTUP", "init"): [Transition("LISTING", ("refresh",))],
        ("READY", "check"): [Transition("LISTING", ("refresh",))],
        ("READY", "timer-check"): [Transition("LISTING", ("refresh",))],
        ("READY", "timer-poll"): [Transition("READY", ("poll_catalog",))],
        ("WAITING", "timer-poll"): [Transition("WAITING", ("poll_catalog",))],
        ("READY", "replaced"): [Transition("LISTING", ("mark_replaced", "refresh"))],
        ("LISTING", "listed"): [Transition("PLANNING", ("plan",))],
        ("PLANNING", "planned"): [Transition("REBUILDING", ("apply_plan", "start_work"), guard="work"),
                                  Transition("READY", ("apply_plan", "settle"))],
        ("PLANNING", "plan-failed"): [Transition("WAITING", ("report_failure",))],
        ("REBUILDING", "keys-ready"): [Transition("REBUILDING", ("take_keys", "next_work"))],
        ("REBUILDING", "block-done"): [Transition("REBUILDING", ("count_block", "next_work"))],
        ("REBUILDING", "pass-done"): [Transition("LISTING", ("end_pass", "refresh"), guard="recheck"),
                                      Transition("WAITING", ("end_pass",))],
        ("WAITING", "timer-retry"): [Transition("LISTING", ("refresh",))],
        ("WAITING", "check"): [Transition("LISTING", ("refresh",))],
        ("WAITING", "replaced"): [Transition("LISTING", ("mark_replaced", "refresh"))],
        # during a pass: remembered, and the next pass starts at once when this one ends
        ("LISTING", "replaced"): [Transition("LISTING", ("mark_replaced",))],
        ("LISTING", "check"): [Transition("LISTING", ("mark_again",))],
        ("PLANNING", "check"): [Transition("PLANNING", ("mark_again",))],
        ("REBUILDING", "check"): [Transition("REBUILDING", ("mark_again",))],
        ("PLANNING", "replaced"): [Transition("PLANNING", ("mark_replaced",))],
        ("REBUILDING", "replaced"): [Transition("REBUILDING", ("mark_replaced",))],
        (ANY, "shutdown"): [Transition("CLOSED", ("stop_all",))],
    }
    timers = {"timer-check": Timer(CHECK_SECONDS, ("READY",)), "timer-retry": Timer(RETRY_SECONDS, ("WAITING",)),
              "timer-poll": Timer(POLL_SECONDS, ("READY", "WAITING"))}

    def __init__(self, clock: IReactorTime, registry: AutomatRegistry | None, env: RebuildEnv,
                 parallel: int = PARALLEL_BLOCKS, timeout: float = PIECE_TIMEOUT) -> None:
        self.env = env
        self.parallel = max(1, parallel)
        self.timeout = timeout
        self.forced: set[int] = set()
        self.plan: Plan | None = None
        self.passes = 0
        self.again = False
        self.shares_sent = 0
        self.bad_pieces = 0
        self.errors: list[str] = []
        self._unrebuilt: set[int] = set()
        self._work: list[tuple[VersionInfo, int, frozenset[int]]] = []
        self._in_flight = 0
        self._pass_errors = 0
        self._failed_positions: set[int] = set()
        self._keys: dict[str, bytes | str] = {}
        self._health = SupplierHealth(env.online)
        self._seen_revision: int | None = None
        self._planned: frozenset[str] | None = None  # backup IDs the last plan covered
        super().__init__(clock, registry)

    def unrebuilt(self) -> set[int]:
        """fire_hire's hook: positions whose pieces are not all back yet."""
        return set(self._unrebuilt | self.forced)

    # -- guards -----------------------------------------------------------------------------

    def is_work(self, plan: Plan) -> bool:
        return bool(plan.work)

    def is_recheck(self, *_args: Any) -> bool:
        return self.again or (self._pass_errors == 0 and self.passes < MAX_PASSES)

    # -- actions ----------------------------------------------------------------------------

    def do_mark_replaced(self, position: int, *_args: Any) -> None:
        self.forced.add(position)
        self.again = True

    def do_mark_again(self, *_args: Any) -> None:
        self.again = True

    def do_refresh(self, *_args: Any) -> None:
        self.again = False

        def listed(result: object) -> None:
            if isinstance(result, Failure):  # refresh never fails by contract; still, go on with what is known
                log.warning("backup_rebuilder: listing failed: %s", result.getErrorMessage())
            self.event("listed")

        self.env.refresh().addBoth(listed)

    def do_poll_catalog(self, *_args: Any) -> None:
        revision = self.env.catalog_revision()
        if revision == self._seen_revision:
            return
        self._seen_revision = revision
        versions = self.env.versions()
        if versions is not None and frozenset(v.storage_id for v in versions) != self._planned:
            self.event("check")

    def do_plan(self, *_args: Any) -> None:
        versions = self.env.versions()
        size = self.env.size()
        if versions is None:
            self.event("plan-failed", "the catalog is not loaded")
            return
        self._planned = frozenset(v.storage_id for v in versions)
        # listings of every position a version's map reaches: a shrunk list keeps retained
        # positions until the re-encoder moved the versions (only counted there, never rebuilt)
        reach = max([size, *(_width(v.ecc) for v in versions)])
        held = {p: (dict(h) if (h := self.env.held(p)) is not None else None) for p in range(reach)}
        work = partial(make_plan, versions, held, size, frozenset(self.forced))
        self.env.run(work).addCallbacks(lambda plan: self.event("planned", plan),
                                        lambda failure: self.event("plan-failed", failure.getErrorMessage()))

    def do_apply_plan(self, plan: Plan) -> None:
        self.plan = plan
        self.env.set_redundancy(plan.redundancy)
        self._unrebuilt = set(plan.positions)
        if plan.work:
            log.info("backup_rebuilder: %d shares of %d blocks to rebuild at positions %s", plan.shares,
                     len(plan.work), sorted(plan.positions))

    def do_settle(self, *_args: Any) -> None:
        """Nothing is missing where anything is known: forced positions are whole."""
        self.passes = 0
        if self.env.versions() is not None:
            self.forced.clear()
        self._unrebuilt.clear()
        if self.again:
            self.event("check")

    def do_start_work(self, plan: Plan) -> None:
        self.passes += 1
        self._health = SupplierHealth(self.env.online)  # what failed in an earlier pass may be back
        self._work = list(reversed(plan.work))
        self._pass_errors = 0
        self._failed_positions = set()
        self._keys = {}
        wanted = {info.backup_id: info.wrapped_key for info, _number, _missing in plan.work}
        self.env.run(partial(_open_keys, self.env.open_key, wanted)).addCallbacks(
            lambda keys: self.event("keys-ready", keys),
            lambda failure: self.event("keys-ready", {bid: failure.getErrorMessage() for bid in wanted}))

    def do_take_keys(self, keys: dict[str, bytes | str]) -> None:
        self._keys = keys

    def do_next_work(self, *_args: Any) -> None:
        mover = self.env.mover()
        while self._work and self._in_flight < self.parallel and mover is not None:
            info, number, missing = self._work.pop()
            self._in_flight += 1
            self._block(mover, info, number, missing).addBoth(self._block_done, info, number, missing)
        if mover is None:
            self._pass_errors += len(self._work)
            self._work.clear()
        if not self._work and self._in_flight == 0:
            self.event("pass-done")

    def _block(self, mover: PieceMover, info: VersionInfo, number: int, missing: frozenset[int]) -> Deferred[Any]:
        key = self._keys.get(info.backup_id, "the data key was not opened")
        if isinstance(key, str):
            return fail(RuntimeError(f"cannot open the data key: {key}"))
        return rebuild_block(mover, self.env.run, EccMap.from_name(info.ecc), key, info.backup_id, number, missing,
                             self._health, self.timeout, info.storage_id)

    def _block_done(self, result: BlockOutcome | Failure, info: VersionInfo, number: int,
                    missing: frozenset[int]) -> None:
        self._in_flight -= 1
        if isinstance(result, Failure):
            result = BlockOutcome(info.backup_id, number, errors=[f"block {number}: {result.getErrorMessage()}"])
        if not result.ok:
            ecc = EccMap.from_name(info.ecc)
            self._failed_positions.update(ecc.share_owner(i)[0] for i in missing if i not in result.sent)
        self.event("block-done", result)

    def do_count_block(self, outcome: BlockOutcome) -> None:
        self.shares_sent += len(outcome.sent)
        self.bad_pieces += outcome.bad
        if outcome.ok:
            return
        self._pass_errors += 1
        for problem in outcome.errors:
            log.warning("backup_rebuilder: %s: %s", outcome.backup_id, problem)
            self.errors.append(f"{outcome.backup_id}: {problem}")
        del self.errors[:-KEEP_ERRORS]

    def do_end_pass(self, *_args: Any) -> None:
        """Forced positions that got every share they were planned for without an error
        are whole (their Acks prove it), even if their listing is not in yet."""
        done = self.forced - self._failed_positions
        if self.plan is not None:
            done &= self.plan.positions
        self.forced -= done
        self._unrebuilt = set(self._failed_positions)
        log.info("backup_rebuilder: pass %d ended: %d shares sent so far, %d blocks failed", self.passes,
                 self.shares_sent, self._pass_errors)

    def do_report_failure(self, reason: str) -> None:
        log.info("backup_rebuilder: nothing planned: %s", reason)

    def do_stop_all(self, *_args: Any) -> None:
        self._work.clear()
        self.destroy()



def _width(ecc: str) -> int:
    try:
        return EccMap.from_name(ecc).suppliers
    except ValueError:
        return 0


def _open_keys(open_key: Callable[[bytes], bytes], wrapped: dict[str, bytes]) -> dict[str, bytes | str]:
    """In a worker thread: each version's data key, or why it does not open."""
    keys: dict[str, bytes | str] = {}
    for backup_id, blob in wrapped.items():
        try:
            keys[backup_id] = open_key(blob)
        except ValueError as exc:
            keys[backup_id] = str(exc)
    return keys
