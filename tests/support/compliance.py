"""Helpers for the compliance page's tests: a compliance record filled from the generated sample
(bot.compliance.sample), ``python -m bot report`` run as a user runs it, and an agent desk over that record."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from bot import PROJECT_ROOT
from bot.compliance.sample import Expected, generate

SAMPLE_END = dt.date(2026, 11, 30)
"""The last day of the tests' sample (China time)."""


def fill_compliance_record(url: str, days: int = 14, per_day: int = 6,
                           end: dt.date = SAMPLE_END) -> Tuple[Expected, List[str]]:
    """Create the compliance store at ``url`` and record a generated sample of ``days`` days up to ``end``
    through the consumer's own Recorder (as the consumer would); returns what was generated and the sender ids."""
    from bot.compliance.record import Recorder
    from bot.compliance.store import open_store
    from bot.risk import default_risk_engine

    events, expected = next(generate(days=days, per_day=per_day, end=end))
    engine = open_store(url)
    try:
        recorder = Recorder(default_risk_engine())
        with engine.begin() as connection:
            for event in events:
                recorder.apply_event(connection, event)
    finally:
        engine.dispose()
    return expected, sorted({e["sender_id"] for e in events})


def cli_report(url: str, start: str, end: str, by: str, output: str = "csv",
               charts: Optional[Path] = None) -> bytes:
    """The stdout of ``python -m bot report --db url --from start --to end --by by --format output`` (and
    ``--charts``), run in a fresh interpreter. Fails unless it exits 0."""
    argv: List[str] = [sys.executable, "-m", "bot", "report", "--db", url, "--from", start, "--to", end,
                       "--by", by, "--format", output]
    if charts is not None:
        argv += ["--charts", str(charts)]
    env: Dict[str, str] = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run(argv, cwd=PROJECT_ROOT, env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")[-2000:]
    return done.stdout
