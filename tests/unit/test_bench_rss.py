"""The benchmark's RSS reader: VmRSS of /proc/<pid>/status, summed over a process tree."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bot.bench.rss import descendants, tree_rss_mb, vmrss_kb


def _fake_process(proc: Path, pid: int, parent: int, rss_kb: int | None) -> None:
    folder = proc / str(pid)
    folder.mkdir(parents=True)
    lines = [f"Name:\tp{pid}", "State:\tS (sleeping)", f"Pid:\t{pid}", f"PPid:\t{parent}"]
    if rss_kb is not None:
        lines.append(f"VmRSS:\t{rss_kb:>8} kB")
    (folder / "status").write_text("\n".join(lines) + "\n")


def test_a_fake_tree_is_summed(tmp_path):
    proc = tmp_path / "proc"
    _fake_process(proc, 100, 1, 500_000)     # the server
    _fake_process(proc, 101, 100, 200_000)   # its child
    _fake_process(proc, 102, 101, 100_000)   # a grandchild
    _fake_process(proc, 103, 100, None)      # a zombie child: no VmRSS line
    _fake_process(proc, 200, 1, 999_999)     # unrelated
    (proc / "self").mkdir()                  # non-numeric entries are skipped
    assert vmrss_kb(100, proc) == 500_000
    assert vmrss_kb(103, proc) == 0
    assert vmrss_kb(999, proc) == 0          # gone
    assert descendants(100, proc) == [101, 102, 103]
    assert tree_rss_mb(100, proc) == round(800_000 * 1024 / 1e6, 1)
    assert tree_rss_mb(102, proc) == round(100_000 * 1024 / 1e6, 1)
    assert tree_rss_mb(999, proc) == 0.0


def test_the_real_proc_of_this_process():
    own = vmrss_kb(os.getpid())
    assert own > 10_000  # a Python interpreter with pytest loaded holds more than 10 MB
    assert tree_rss_mb(os.getpid()) >= round(own * 1024 / 1e6, 1)


def test_a_real_grandchild_is_counted():
    grandchild = "import time; x = b'x' * 80_000_000; time.sleep(60)"
    child = (f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {grandchild!r}]); "
             "time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", child], start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if len(descendants(parent.pid)) == 1 and tree_rss_mb(parent.pid) >= 80:
                break
            time.sleep(0.1)
        assert len(descendants(parent.pid)) == 1
        assert tree_rss_mb(parent.pid) >= 80  # the grandchild's 80 MB of touched bytes plus two interpreters
        assert vmrss_kb(parent.pid) * 1024 / 1e6 < 80  # ... which the parent alone does not hold
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()
