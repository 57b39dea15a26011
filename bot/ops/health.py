"""Which part of the assistant is down: ``python -m bot health [--json]``.

Probes, each with a short timeout, on loopback:

* ``rasa``: the Rasa server's ``GET /`` (the HTTP server answers);
* ``rasa_model``: ``GET /status?token=...`` (a model is loaded; needs the API token, skipped without one);
* ``action_server``: the action server's ``GET /health``;
* ``agent_desk``: the desk's ``GET /health`` (its ticket store answers).

Exit code 0 when every probe is up, 1 otherwise.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from typing import List, Optional

LOOPBACK = "127.0.0.1"

PROBE_TIMEOUT = 3.0
"""Seconds one probe may take (a hung server counts as down)."""


@dataclass
class ProbeResult:
    """One probe: ``up`` when the URL answered 200 within the timeout; ``status`` the HTTP status (None when
    nothing answered); ``detail`` a short reason or the first bytes of the answer; ``seconds`` how long it took."""

    name: str
    url: str
    up: bool
    status: Optional[int]
    detail: str
    seconds: float


def probe(name: str, url: str, timeout: float = PROBE_TIMEOUT) -> ProbeResult:
    """GET ``url`` once and describe the outcome (never raises)."""
    started = time.monotonic()
    status: Optional[int] = None
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            status = answer.status
            detail = answer.read(200).decode("utf-8", "replace").strip()
    except urllib.error.HTTPError as err:
        status, detail = err.code, err.reason or ""
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        detail = f"{type(reason).__name__}: {reason}"
    return ProbeResult(name, _without_token(url), status == 200, status, detail, round(time.monotonic() - started, 3))


def _without_token(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.urlencode([(k, "***" if k == "token" else v)
                                    for k, v in urllib.parse.parse_qsl(parts.query)])
    return urllib.parse.urlunsplit(parts._replace(query=query))


def check(rasa_port: int, action_port: int, desk_port: Optional[int], token: Optional[str] = None,
          timeout: float = PROBE_TIMEOUT) -> List[ProbeResult]:
    """Probe every part on its loopback port (the desk only when ``desk_port``; the model only with ``token``)."""
    rasa = f"http://{LOOPBACK}:{rasa_port}"
    results = [probe("rasa", f"{rasa}/", timeout)]
    if token:
        results.append(probe("rasa_model", f"{rasa}/status?{urllib.parse.urlencode({'token': token})}", timeout))
    results.append(probe("action_server", f"http://{LOOPBACK}:{action_port}/health", timeout))
    if desk_port:
        results.append(probe("agent_desk", f"http://{LOOPBACK}:{desk_port}/health", timeout))
    return results


def report(results: List[ProbeResult], as_json: bool = False) -> str:
    """The results as a table (one line per part) or as a JSON object ``{"ok": bool, "parts": [...]}``."""
    if as_json:
        return json.dumps({"ok": all(r.up for r in results), "parts": [asdict(r) for r in results]},
                          ensure_ascii=False, indent=2)
    lines = []
    for r in results:
        state = "up" if r.up else "DOWN"
        lines.append(f"{r.name:<14} {state:<5} {r.status or '-':<4} {r.seconds:>6.2f} s  {r.url}"
                     + ("" if r.up else f"  ({r.detail})"))
    return "\n".join(lines)
