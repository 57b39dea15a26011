"""The benchmark's closed-loop load generator (aiohttp) and its statistics.

Closed loop: each of N clients sends a request, waits for the answer, and sends the next at once, until the
level's duration is over; a request started before the end is waited for and counted. Each REST client talks
as 5 senders in turn (``<prefix>-c<client>-s<k>``), so every conversation grows by one turn per 5 requests of its
client. The generator runs in one asyncio loop with one connection per client (keep-alive) and pre-encoded
request bodies, so that it costs the machine little next to the server it measures.

A request is an *error* when it raises (refused, reset, timed out) or answers a status other than 200, or, for
REST, with an empty list of bot messages, or, for ``/model/parse``, without an ``intent``. Latencies are those
of the successful requests only; throughput is successful requests per second of the level's wall time. A
successful answer can also be *flagged* (the project's outage reply, sent when a turn misses its deadline): it
counts as answered, and the level says how many were.
"""
from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

import aiohttp

SENDERS_PER_CLIENT = 5
"""How many sender ids each REST client cycles through."""

REQUEST_TIMEOUT_SECONDS = 60.0
"""A request still unanswered after this long counts as an error."""

ERROR_PAUSE_SECONDS = 0.05
"""How long a client waits after a failed connection before its next request."""


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values``, by linear interpolation between the two nearest ranks
    (numpy's default ``linear`` method: rank ``q/100 * (n - 1)`` of the sorted values, counted from 0).

    Raises ValueError for an empty ``values`` or a ``q`` outside 0..100.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    ordered = sorted(values)
    rank = q / 100 * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class LevelResult:
    """The figures of one load level. Times in milliseconds (latencies) and seconds (``elapsed_s``);
    the percentiles are None when no request succeeded."""

    clients: int
    ok: int
    errors: int
    flagged: Optional[int]
    """Answered requests whose answer the level's ``flag`` picked out (None: the level had no flag)."""
    elapsed_s: float
    per_s: float
    p50_ms: Optional[float]
    p95_ms: Optional[float]
    p99_ms: Optional[float]
    error_examples: List[str]

    def to_json(self) -> Dict[str, Any]:
        """The result as a JSON-ready dict (the field names above)."""
        return asdict(self)


def summarise(clients: int, latencies_s: Sequence[float], errors: int, elapsed_s: float,
              error_examples: Sequence[str] = (), flagged: Optional[int] = None) -> LevelResult:
    """Figures of a level from its successful requests' latencies (seconds), its error count and its wall time
    (seconds, > 0): requests per second to 0.01, percentiles in ms to 0.1; ``flagged`` is passed through.
    Raises ValueError if ``elapsed_s`` is not positive."""
    if elapsed_s <= 0:
        raise ValueError("elapsed time must be positive")

    def ms(q: float) -> Optional[float]:
        return round(percentile(latencies_s, q) * 1000, 1) if latencies_s else None

    return LevelResult(clients=clients, ok=len(latencies_s), errors=errors, flagged=flagged,
                       elapsed_s=round(elapsed_s, 2),
                       per_s=round(len(latencies_s) / elapsed_s, 2), p50_ms=ms(50), p95_ms=ms(95), p99_ms=ms(99),
                       error_examples=list(error_examples)[:5])


def rest_reply_ok(body: Any) -> bool:
    """True if ``body`` (the parsed JSON of a REST webhook answer) is a non-empty list of bot messages."""
    return isinstance(body, list) and len(body) > 0


def parse_reply_ok(body: Any) -> bool:
    """True if ``body`` (the parsed JSON of a ``/model/parse`` answer) names an intent."""
    return isinstance(body, dict) and isinstance(body.get("intent"), dict) and bool(body["intent"].get("name"))


async def closed_loop(url: str, bodies: Callable[[int], List[bytes]], clients: int, duration_s: float,
                      accept: Callable[[Any], bool], timeout_s: float = REQUEST_TIMEOUT_SECONDS,
                      flag: Optional[Callable[[Any], bool]] = None) -> LevelResult:
    """Run ``clients`` concurrent closed-loop clients POSTing JSON to ``url`` for ``duration_s`` seconds.

    ``bodies(i)`` gives client ``i`` (0-based) its request bodies (UTF-8 JSON bytes), which it sends in turn;
    ``accept(parsed_json)`` says whether a 200 answer counts as a success, and ``flag(parsed_json)``, if given,
    whether a success is to be counted in ``flagged``. Returns the level's figures
    (:func:`summarise`). Raises ValueError if ``clients`` < 1 or ``duration_s`` <= 0; connection failures are
    counted as errors, never raised.
    """
    if clients < 1 or duration_s <= 0:
        raise ValueError("need at least one client and a positive duration")
    latencies: List[float] = []
    errors = 0
    flagged = 0
    examples: List[str] = []
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        end = start + duration_s

        def failed(example: str) -> None:
            nonlocal errors
            errors += 1
            if len(examples) < 5:
                examples.append(example)

        async def client(index: int) -> None:
            nonlocal flagged
            own = bodies(index)
            sent = 0
            while time.perf_counter() < end:
                body = own[sent % len(own)]
                sent += 1
                began = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=headers) as answer:
                        raw = await answer.read()
                        status = answer.status
                except (TimeoutError, aiohttp.ClientError, OSError) as err:
                    failed(f"{type(err).__name__}: {err}"[:200])
                    await asyncio.sleep(ERROR_PAUSE_SECONDS)  # a refused connection must not spin the loop
                    continue
                took = time.perf_counter() - began
                try:
                    parsed = json.loads(raw)
                except ValueError:
                    parsed = None
                if status == 200 and accept(parsed):
                    latencies.append(took)
                    if flag is not None and flag(parsed):
                        flagged += 1
                else:
                    failed(f"HTTP {status}: {raw[:150].decode('utf-8', 'replace')}")

        await asyncio.gather(*(client(i) for i in range(clients)))
        elapsed = time.perf_counter() - start
    return summarise(clients, latencies, errors, elapsed, examples, flagged if flag is not None else None)


def rest_bodies(prefix: str, message: str,
                senders_per_client: int = SENDERS_PER_CLIENT) -> Callable[[int], List[bytes]]:
    """Bodies for :func:`closed_loop` on a REST webhook: client ``i`` sends ``message`` as the senders
    ``<prefix>-c<i>-s0`` .. ``-s<senders_per_client - 1>`` in turn. ``prefix`` should be unique per run."""

    def bodies(index: int) -> List[bytes]:
        return [json.dumps({"sender": f"{prefix}-c{index}-s{k}", "message": message},
                           ensure_ascii=False).encode("utf-8") for k in range(senders_per_client)]

    return bodies


def parse_bodies(message: str) -> Callable[[int], List[bytes]]:
    """Bodies for :func:`closed_loop` on ``/model/parse``: every client sends ``{"text": message}``."""
    encoded = json.dumps({"text": message}, ensure_ascii=False).encode("utf-8")
    return lambda _index: [encoded]


def run_rest_level(base_url: str, message: str, clients: int, duration_s: float, prefix: str,
                   flag: Optional[Callable[[Any], bool]] = None) -> LevelResult:
    """One REST level: ``clients`` closed-loop clients on ``<base_url>/webhooks/rest/webhook`` for
    ``duration_s`` seconds, 5 senders each, ids starting with ``prefix``; ``flag`` as for :func:`closed_loop`.
    Blocks; runs its own event loop."""
    return asyncio.run(closed_loop(f"{base_url}/webhooks/rest/webhook", rest_bodies(prefix, message), clients,
                                   duration_s, rest_reply_ok, flag=flag))


def run_parse_level(base_url: str, message: str, clients: int, duration_s: float, token: str = "") -> LevelResult:
    """One NLU level: ``clients`` closed-loop clients on ``<base_url>/model/parse`` (``?token=`` when ``token``
    is set) for ``duration_s`` seconds. Blocks; runs its own event loop."""
    url = f"{base_url}/model/parse" + (f"?token={token}" if token else "")
    return asyncio.run(closed_loop(url, parse_bodies(message), clients, duration_s, parse_reply_ok))
