"""The README's main job: a whole BitDust network on loopback, a backup, half the
suppliers killed, a restore, and a byte-for-byte check.

1. ``bitdust localnet``: a seed (identity server, DHT seed) and 4 nodes, as separate
   daemons under a temporary folder, 2048-bit keys.
2. ``node1`` is the customer with ``ecc/4x4``: its 4 suppliers are the 4 other nodes.
   The seed may be one of them (it is a full node too; with 5 nodes there is no other
   choice); it is never one of the two killed, so the identity server stays up.
3. A sample folder (nested folders, non-ASCII names, an empty file and folder, one file
   of several MB of random data) is backed up with ``bitdust backup`` in 1 MB blocks,
   so the big file spans several blocks.
4. Two of the four suppliers are killed with SIGKILL, by pid: no goodbye to anyone.
5. ``bitdust restore`` into another folder; every file is compared byte for byte.
6. A summary; the network is stopped whatever happened; exit 1 on any difference.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bitdust import localnet
from bitdust.netjobs import (
    NetJobError,
    api,
    cli,
    compare_trees,
    hire_suppliers,
    kill,
    make_sample,
    tree_stats,
    wait_offline,
)
from bitdust.util.units import format_size

SUPPLIERS = 4
BLOCK_SIZE = "1 MB"
BACKUP_LINE = re.compile(r"^backup (?P<id>\S+) done: .* in (?P<seconds>[\d.]+) s \((?P<rate>[\d.]+) MB/s\)$", re.M)
RESTORE_LINE = re.compile(r"^restore (?P<id>\S+) done into .* in (?P<seconds>[\d.]+) s \((?P<rate>[\d.]+) MB/s\)$",
                          re.M)


def _step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def _run(home: Path, *args: str) -> str:
    """A user-visible ``bitdust`` command: echoed, its bar on our stderr, its output shown."""
    print(f"$ bitdust {' '.join(args)}", flush=True)
    done = cli(home, *args, show=True)
    print(done.stdout, end="", flush=True)
    if done.returncode != 0:
        raise NetJobError(f"bitdust {' '.join(args)} failed (exit {done.returncode})")
    return done.stdout


def _parsed(output: str, pattern: re.Pattern[str]) -> dict[str, Any]:
    """The figures of the last line of ``bitdust backup``/``restore`` (the demo runs them
    without ``--json`` so the user sees their progress bars)."""
    match = pattern.search(output)
    if match is None:
        raise NetJobError(f"unexpected output: {output!r}")
    return {"backupid": match["id"], "seconds": float(match["seconds"]), "mb_per_s": float(match["rate"])}


def _version(home: Path, backup_id: str) -> dict[str, Any]:
    path_id, _, version = backup_id.rpartition("/")
    for item in api(home, "backups_list"):
        for entry in item["versions"]:
            if item["id"] == path_id and entry["version"] == version:
                return dict(entry)
    raise NetJobError(f"{backup_id} is not in backups_list")


def run(work: Path, big_mb: float) -> dict[str, Any]:
    """The whole job; returns the figures of the summary (``result`` is OK or FAILED)."""
    net = work / "net"
    _step("starting a local network: a seed and 4 nodes on 127.0.0.1 (bitdust localnet start)")
    started = time.monotonic()
    nodes = localnet.start(net, SUPPLIERS, key_size=2048)
    for node in nodes:
        print(f"   {node['name']:<6} pid {node['pid']:<7} {node['idurl']}")
    print(f"   {len(nodes)} nodes online in {time.monotonic() - started:.1f} s")
    by_idurl = {node["idurl"]: node for node in nodes}
    customer = Path(nodes[1]["home"])

    _step(f"node1 is the customer: ecc/{SUPPLIERS}x{SUPPLIERS}, {BLOCK_SIZE} blocks; hiring its suppliers")
    api(customer, "config_set", "services/backups/block-size", BLOCK_SIZE)
    started = time.monotonic()
    suppliers = hire_suppliers(customer, SUPPLIERS)
    for idurl in suppliers:
        print(f"   supplier {by_idurl[idurl]['name']:<6} {idurl}")
    print(f"   {len(suppliers)} suppliers online in {time.monotonic() - started:.1f} s")

    sample = work / "sample"
    made = make_sample(sample, int(big_mb * 2**20))
    _step(f"backing up {sample}: {made.files} files, {made.folders} folders, {format_size(made.bytes)}")
    backup = _parsed(_run(customer, "backup", str(sample)), BACKUP_LINE)
    version = _version(customer, backup["backupid"])
    _run(customer, "files")

    victims = [by_idurl[i] for i in suppliers if by_idurl[i]["name"] != "seed"][:SUPPLIERS // 2]
    _step(f"killing {len(victims)} of {SUPPLIERS} suppliers with SIGKILL: "
          + ", ".join(f"{v['name']} (pid {v['pid']})" for v in victims))
    for victim in victims:
        kill(int(victim["pid"]))
    started = time.monotonic()
    gone = wait_offline(customer, [v["idurl"] for v in victims])
    print(f"   node1 sees {gone} of its suppliers offline after {time.monotonic() - started:.1f} s")

    dest = work / "restored"
    _step(f"restoring {backup['backupid']} into {dest}")
    restore = _parsed(_run(customer, "restore", backup["backupid"], str(dest)), RESTORE_LINE)

    _step("comparing byte for byte")
    problems = compare_trees(sample, dest / sample.name)
    for problem in problems[:20]:
        print(f"   DIFFERENT: {problem}")
    got = tree_stats(dest / sample.name) if (dest / sample.name).is_dir() else None
    return {
        "files": made.files, "folders": made.folders, "bytes": made.bytes,
        "blocks": version.get("blocks"), "stored": version.get("size"), "backupid": backup["backupid"],
        "backup_seconds": backup["seconds"], "backup_mb_s": backup["mb_per_s"],
        "restore_seconds": restore["seconds"], "restore_mb_s": restore["mb_per_s"],
        "killed": [v["name"] for v in victims], "suppliers": [by_idurl[i]["name"] for i in suppliers],
        "restored_files": got.files if got else 0, "differences": len(problems),
        "result": "OK" if not problems else "FAILED",
    }


def _summary(figures: dict[str, Any]) -> None:
    print("\n== summary")
    rows = [
        ("sample", f"{figures['files']} files, {figures['folders']} folders, {format_size(figures['bytes'])}"),
        ("backup", f"{figures['backupid']}: {figures['blocks']} blocks of {BLOCK_SIZE}, ecc/{SUPPLIERS}x{SUPPLIERS},"
                   f" {figures['stored']} on the suppliers"),
        ("backup time", f"{figures['backup_seconds']:.2f} s, {figures['backup_mb_s']} MB/s"),
        ("suppliers", ", ".join(figures["suppliers"])),
        ("killed", ", ".join(figures["killed"]) + f" ({len(figures['killed'])} of {SUPPLIERS}, SIGKILL)"),
        ("restore time", f"{figures['restore_seconds']:.2f} s, {figures['restore_mb_s']} MB/s"),
        ("restored", f"{figures['restored_files']} files, {figures['differences']} differences"),
        ("result", figures["result"]),
    ]
    for name, value in rows:
        print(f"   {name + ':':<14}{value}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="BitDust on loopback: backup, lose half the suppliers, restore.")
    parser.add_argument("--big-mb", type=float, default=6.0, help="size of the big random file (default 6 MB)")
    parser.add_argument("--keep", action="store_true", help="leave the work folder (homes, logs) in place")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bitdust-demo-"))
    started = time.monotonic()
    figures: dict[str, Any] | None = None
    try:
        figures = run(work, args.big_mb)
    except (NetJobError, localnet.LocalnetError, KeyError) as exc:
        print(f"\nthe demo failed: {exc}", file=sys.stderr)
    finally:
        _step("stopping the network")
        for line in localnet.stop(work / "net") if (work / "net").is_dir() else []:
            print(f"   {line}")
        if args.keep:
            print(f"   work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if figures is not None:
        _summary(figures)
    print(f"\ndemo finished in {time.monotonic() - started:.1f} s")
    return 0 if figures is not None and figures["result"] == "OK" else 1


if __name__ == "__main__":
    sys.exit(main())
