"""The benchmark's conversation-growth measurement: does a turn cost more as one conversation gets longer?

One sender sends the benchmark message ``turns`` times in a row, each after the previous answer (one client,
nothing else running against the server), and the latency of every turn is kept. The figures compare an early
turn with the last ones: ``early_ms`` is the median latency of turns 6-15 ("turn 10"), ``late_ms`` the median of
the last 10 turns ("turn N"), ``ratio`` = late / early. Medians of ten, so that one slow turn (a garbage
collection, another process on the machine) does not decide the figure. ``buckets`` keeps the median of every
block of ``bucket`` turns, for the shape of the curve.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from statistics import median
from typing import Any, Callable, Dict, List, Optional, Sequence

EARLY_TURNS = (6, 15)
"""The turns (1-based, inclusive) whose median latency is "turn 10"."""

LATE_WINDOW = 10
"""How many of the last turns give the median latency of "turn N"."""

TURN_TIMEOUT_S = 60.0
"""A turn still unanswered after this long fails the measurement."""


class GrowthError(RuntimeError):
    """A turn failed (no answer, a status other than 200, an empty list): the conversation did not grow."""


def summarise_growth(latencies_ms: Sequence[float], bucket: int = 100) -> Dict[str, Any]:
    """The growth figures from the latency of every turn (ms, turn 1 first): ``turns``, ``early_ms``,
    ``late_ms``, ``ratio`` (late / early, to 0.01) and ``buckets`` (median ms of each block of ``bucket`` turns;
    the last block may be shorter). Raises ValueError for fewer than EARLY_TURNS[1] + LATE_WINDOW turns."""
    if len(latencies_ms) < EARLY_TURNS[1] + LATE_WINDOW:
        raise ValueError(f"need at least {EARLY_TURNS[1] + LATE_WINDOW} turns")
    early = median(latencies_ms[EARLY_TURNS[0] - 1:EARLY_TURNS[1]])
    late = median(latencies_ms[-LATE_WINDOW:])
    return {"turns": len(latencies_ms), "early_ms": round(early, 1), "late_ms": round(late, 1),
            "ratio": round(late / early, 2) if early > 0 else None,
            "bucket": bucket,
            "buckets": [round(median(latencies_ms[i:i + bucket]), 1) for i in range(0, len(latencies_ms), bucket)]}


def _post(url: str, body: bytes) -> Any:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=TURN_TIMEOUT_S) as answer:
        if answer.status != 200:
            raise GrowthError(f"HTTP {answer.status}")
        return json.loads(answer.read())


def run_growth(base_url: str, message: str, turns: int, sender: str, bucket: int = 100,
               log: Optional[Callable[[str], None]] = None,
               post: Callable[[str, bytes], Any] = _post) -> Dict[str, Any]:
    """Send ``message`` ``turns`` times as ``sender`` to ``<base_url>/webhooks/rest/webhook``, one turn after
    the other, and summarise the latencies (:func:`summarise_growth`). ``log`` gets a progress line every 10 %.
    Raises GrowthError when a turn fails (error, non-200, empty answer) and ValueError for too few turns."""
    if turns < EARLY_TURNS[1] + LATE_WINDOW:
        raise ValueError(f"need at least {EARLY_TURNS[1] + LATE_WINDOW} turns")
    url = f"{base_url}/webhooks/rest/webhook"
    body = json.dumps({"sender": sender, "message": message}, ensure_ascii=False).encode("utf-8")
    latencies: List[float] = []
    for turn in range(1, turns + 1):
        began = time.perf_counter()
        try:
            answer = post(url, body)
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise GrowthError(f"turn {turn}: {type(err).__name__}: {err}") from None
        latencies.append((time.perf_counter() - began) * 1000)
        if not (isinstance(answer, list) and answer):
            raise GrowthError(f"turn {turn}: an empty answer")
        if log is not None and turns >= 10 and turn % (turns // 10) == 0:
            log(f"    turn {turn}: {latencies[-1]:.0f} ms")
    return summarise_growth(latencies, bucket)
