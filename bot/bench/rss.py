"""Resident memory of a process and its descendants, read from ``/proc`` (Linux only; no psutil).

A process's RSS is the ``VmRSS`` line of ``/proc/<pid>/status`` (kB); a tree's is the sum over the process and
every descendant found through the ``PPid`` lines. Pages shared between the processes are counted once per
process, as ``ps`` and ``top`` count them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

PROC = Path("/proc")
"""The proc file system the functions read unless a test passes another folder of the same layout."""


def _status_fields(pid: int, proc: Path) -> Optional[Dict[str, str]]:
    try:
        text = (proc / str(pid) / "status").read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip()] = value.strip()
    return fields


def vmrss_kb(pid: int, proc: Path = PROC) -> int:
    """``VmRSS`` of process ``pid`` in kB (1024 bytes); 0 if the process is gone or has no resident memory line
    (a zombie, a kernel thread). Never raises for a vanished process."""
    fields = _status_fields(pid, proc)
    if not fields or "VmRSS" not in fields:
        return 0
    number, _, _unit = fields["VmRSS"].partition(" ")
    try:
        return int(number)
    except ValueError:
        return 0


def descendants(pid: int, proc: Path = PROC) -> List[int]:
    """Every live descendant of ``pid`` (children, their children, ...), by scanning the ``PPid`` of each
    ``/proc/<n>/status``; sorted. Processes that exit during the scan are skipped."""
    children: Dict[int, List[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _status_fields(int(entry.name), proc)
        if not fields:
            continue
        try:
            parent = int(fields.get("PPid", ""))
        except ValueError:
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found: List[int] = []
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in found:
                found.append(child)
                pending.append(child)
    return sorted(found)


def tree_rss_mb(pid: int, proc: Path = PROC) -> float:
    """RSS of ``pid`` and all its descendants, in MB (10^6 bytes), rounded to 0.1; 0.0 if the process is gone."""
    total_kb = vmrss_kb(pid, proc) + sum(vmrss_kb(child, proc) for child in descendants(pid, proc))
    return round(total_kb * 1024 / 1e6, 1)
