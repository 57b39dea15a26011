"""``python -m bot bench``: start the stock baseline, then the project, measure each, write the figures.

One server at a time (the machine may have 2 cores). For each:

1. *start to first answer*: seconds from starting its processes to the first non-empty REST answer to
   :data:`MESSAGE` (the project as ``./scripts/run`` starts it: desk, action server, Rasa server, through
   :func:`bot.ops.servers.start_servers`);
2. RSS of every server process tree once it answers (``rss_idle_mb``);
3. the REST load (:func:`bot.bench.load.run_rest_level`) at each client count, ``duration`` seconds each, with
   sender ids unique to the run;
4. the NLU load on ``/model/parse`` at :data:`PARSE_CLIENTS` clients for ``duration`` seconds;
5. RSS again after the load (``rss_mb``), then the servers are stopped.

The project runs on free loopback ports with the embedded defaults (SQLite tracker, ticket and WeChat stores) in a
temporary folder, so that the checkout's var/ is left alone; its model is the trained one for the current
inputs (``bot.ops.model_store.ensure_model``, which trains only if they changed). The stock baseline is served
from its cache folder (``bot.bench.stock``). The figures go to ``<out>/bench.json``, ``bench.png`` and
``README.md`` (:mod:`bot.bench.report`), and the comparison table to stdout.
"""
from __future__ import annotations

import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from bot import PROJECT_ROOT
from bot.bench.load import SENDERS_PER_CLIENT, LevelResult, run_parse_level, run_rest_level
from bot.bench.rss import tree_rss_mb

MESSAGE = "信用卡还不上了怎么办"
"""What every benchmark request says (a hardship question both assistants answer)."""

DEFAULT_CLIENTS = (1, 8, 32)
"""The REST client counts, one level each."""

DEFAULT_DURATION_S = 20.0
"""Seconds per load level."""

PARSE_CLIENTS = 8
"""Clients of the ``/model/parse`` level."""

START_TIMEOUT_S = 400.0
"""A server that has not answered its first REST message this long after its start is a failure."""

PAUSE_BETWEEN_LEVELS_S = 2.0
"""Quiet seconds between two load levels (the server finishes writing and logging the previous one)."""

SERVERS = ("stock", "project")
"""The two systems measured, in the order they run."""

DEFAULT_OUT = PROJECT_ROOT / "reports" / "perf"
"""Where bench.json, bench.png and README.md are written."""


class BenchError(RuntimeError):
    """A server could not be built, did not start or stopped answering; the message says which and where its
    log is."""


def _post_json(url: str, body: Dict[str, Any], timeout: float) -> tuple[int, Any]:
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            status, raw = answer.status, answer.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, None


def reply_text(messages: List[Any]) -> str:
    """The bot messages of a REST answer as one line: their texts (``[image]``, ``[buttons]`` or ``[custom]``
    for a message without text) joined by `` / ``."""
    parts = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        text = str(message.get("text") or "").strip()
        kind = next((k for k in ("image", "buttons", "custom") if message.get(k)), "")
        parts.append(text or (f"[{kind}]" if kind else ""))
    return " / ".join(p for p in parts if p)


def wait_first_answer(base_url: str, alive: Callable[[], bool], started: float, sender: str,
                      timeout_s: float = START_TIMEOUT_S) -> tuple[float, str]:
    """Poll ``<base_url>/webhooks/rest/webhook`` with :data:`MESSAGE` as ``sender`` until it answers 200 with a
    non-empty list of messages; returns ``(seconds since started, the reply's text)``, where ``started`` is a
    ``time.monotonic()`` reading taken just before the server's processes were started.

    Raises BenchError if ``alive()`` turns false or nothing answers within ``timeout_s`` seconds of ``started``.
    """
    while time.monotonic() - started < timeout_s:
        if not alive():
            raise BenchError("the server exited before its first answer")
        try:
            status, body = _post_json(f"{base_url}/webhooks/rest/webhook", {"sender": sender, "message": MESSAGE},
                                      timeout=30)
        except (urllib.error.URLError, ConnectionError, OSError):
            status, body = 0, None
        if status == 200 and isinstance(body, list) and body:
            took = time.monotonic() - started
            return round(took, 1), reply_text(body)
        time.sleep(0.25)
    raise BenchError(f"no REST answer within {timeout_s:.0f} s")


def outage_reply_flag() -> Callable[[Any], bool]:
    """A ``flag`` for :func:`bot.bench.load.closed_loop`: True for a REST answer holding the project's outage
    reply (``utter_outage_fallback`` or its danger variant, recognised by their text up to the first
    placeholder), which the turn supervisor sends when a turn misses its deadline or fails."""
    from bot.channels.turns import FALLBACK, FALLBACK_DANGER
    from bot.texts import response_text

    prefixes = tuple(response_text(name).split("{")[0] for name in (FALLBACK, FALLBACK_DANGER))

    def flag(body: Any) -> bool:
        return isinstance(body, list) and any(
            isinstance(m, dict) and str(m.get("text", "")).startswith(prefixes) for m in body)

    return flag


def measure(name: str, base_url: str, token: str, pids: Callable[[], Dict[str, int]], alive: Callable[[], bool],
            clients: Sequence[int], duration_s: float, run_id: str,
            log: Callable[[str], None] = print, flag: Optional[Callable[[Any], bool]] = None,
            growth_turns: int = 0) -> Dict[str, Any]:
    """Steps 2-5 of the module docstring on a server that has answered once: RSS, the conversation growth
    (``growth_turns`` turns of one sender, :mod:`bot.bench.growth`; skipped when 0), the REST levels (none when
    ``clients`` is empty), the parse level (with the REST levels), RSS. ``pids()`` gives the current pid of
    each server process by name; ``alive()`` says whether all still run; ``flag`` picks out REST answers to
    count (the outage reply). Returns the figures as JSON-ready dicts (``rest``: one per client count,
    ``parse``, ``growth``, ``rss_idle_mb``/``rss_mb``: MB per process, ``rss_total_mb``). Raises BenchError if
    a server exits or a growth turn fails."""
    from bot.bench.growth import GrowthError, run_growth

    figures: Dict[str, Any] = {"rss_idle_mb": {proc: tree_rss_mb(pid) for proc, pid in pids().items()}}
    if growth_turns:
        log(f"  {name}: one conversation, {growth_turns} turns...")
        try:
            growth = run_growth(base_url, MESSAGE, growth_turns, f"bench-{run_id}-{name}-growth", log=log)
        except GrowthError as err:
            raise BenchError(f"the {name} server failed a growth turn: {err}") from None
        log(f"    turn 10: {growth['early_ms']} ms, turn {growth_turns}: {growth['late_ms']} ms "
            f"(x{growth['ratio']})")
        figures["growth"] = growth
        if not alive():
            raise BenchError(f"the {name} server exited during the growth measurement")
    if not clients:
        figures["rss_mb"] = {proc: tree_rss_mb(pid) for proc, pid in pids().items()}
        figures["rss_total_mb"] = round(sum(figures["rss_mb"].values()), 1)
        return figures
    rest: List[Dict[str, Any]] = []
    for count in clients:
        log(f"  {name}: REST, {count} client(s), {duration_s:g} s...")
        level = run_rest_level(base_url, MESSAGE, count, duration_s, prefix=f"bench-{run_id}-{name}-n{count}",
                               flag=flag)
        _log_level(log, level, "msg/s")
        rest.append(level.to_json())
        if not alive():
            raise BenchError(f"the {name} server exited during the {count}-client level")
        time.sleep(PAUSE_BETWEEN_LEVELS_S)
    figures["rest"] = rest
    log(f"  {name}: NLU /model/parse, {PARSE_CLIENTS} clients, {duration_s:g} s...")
    parse = run_parse_level(base_url, MESSAGE, PARSE_CLIENTS, duration_s, token)
    _log_level(log, parse, "parse/s")
    figures["parse"] = parse.to_json()
    figures["rss_mb"] = {proc: tree_rss_mb(pid) for proc, pid in pids().items()}
    figures["rss_total_mb"] = round(sum(figures["rss_mb"].values()), 1)
    if not alive():
        raise BenchError(f"the {name} server exited during the parse level")
    return figures


def _log_level(log: Callable[[str], None], level: LevelResult, unit: str) -> None:
    flagged = "" if level.flagged is None else f", {level.flagged} outage replies"
    log(f"    {level.per_s:g} {unit}, p50 {level.p50_ms} ms, p99 {level.p99_ms} ms, {level.errors} errors{flagged}")


def bench_stock(clients: Sequence[int], duration_s: float, run_id: str,
                log: Callable[[str], None] = print, growth_turns: int = 0) -> Dict[str, Any]:
    """Build (or reuse) and train (or reuse) the stock baseline, serve it on a free loopback port, measure it
    (:func:`measure`) and stop it. Returns its figures plus ``label``, ``start_to_first_answer_s`` and
    ``first_reply``. Raises BenchError (naming the log) if it does not start or exits."""
    from rasa import __version__ as rasa_version

    from bot.bench.stock import default_folder, ensure_stock_model, stock_env, stock_server_command
    from bot.ops.servers import free_port

    folder = default_folder()
    model = ensure_stock_model(folder)
    port = free_port()
    server_log = folder / "server.log"
    log(f"Starting the stock Rasa {rasa_version} baseline on port {port} (log: {server_log})...")
    with server_log.open("wb") as handle:
        started = time.monotonic()
        process = subprocess.Popen(stock_server_command(model, port), cwd=folder, env=stock_env(), stdout=handle,
                                   stderr=subprocess.STDOUT)
        try:
            base_url = f"http://127.0.0.1:{port}"
            alive = lambda: process.poll() is None  # noqa: E731
            took, reply = wait_first_answer(base_url, alive, started, f"bench-{run_id}-stock-first")
            log(f"  stock: first answer after {took:g} s: {reply[:60]}")
            figures = measure("stock", base_url, "", lambda: {"rasa_server": process.pid}, alive, clients,
                              duration_s, run_id, log, growth_turns=growth_turns)
        except BenchError as err:
            raise BenchError(f"stock baseline: {err}; see {server_log}") from None
        finally:
            _stop(process)
    return {"label": f"stock Rasa {rasa_version} (rasa init, Chinese pipeline, no action server, in-memory "
                     "tracker)", "start_to_first_answer_s": took, "first_reply": reply, **figures}


def _stop(process: subprocess.Popen, timeout: float = 20.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def project_endpoints(directory: Path) -> Path:
    """The project's endpoints.yml, byte for byte except that its SQLite tracker store file is
    ``directory/tracker.db``; written to ``directory/endpoints.yml``, whose path is returned.

    Raises BenchError if endpoints.yml no longer has the default SQLite path.
    """
    original = (PROJECT_ROOT / "endpoints.yml").read_text(encoding="utf-8")
    default_db = 'db: "var/tracker.db"'
    if default_db not in original:
        raise BenchError(f"endpoints.yml no longer has {default_db}: update bot/bench/run.py")
    path = directory / "endpoints.yml"
    path.write_text(original.replace(default_db, f'db: "{directory / "tracker.db"}"'), encoding="utf-8")
    return path


def bench_project(clients: Sequence[int], duration_s: float, run_id: str,
                  log: Callable[[str], None] = print, growth_turns: int = 0) -> Dict[str, Any]:
    """Start the project as ``./scripts/run`` does (agent desk, action server, Rasa server; SQLite stores) on
    free loopback ports in a temporary folder, measure it (:func:`measure`) and stop it. Returns its figures
    plus ``label``, ``start_to_first_answer_s`` and ``first_reply``. The temporary folder is removed on
    success and kept (its path in the error) on failure. Raises BenchError if a server does not start or
    exits; training, when the inputs changed, happens before the clock starts."""
    from bot.ops.model_store import ensure_model
    from bot.ops.servers import ServerConfig, ServerStartError, free_port, start_servers

    model = ensure_model(quiet=True)
    directory = Path(tempfile.mkdtemp(prefix="bot-bench-"))
    extra_env = {"WECHAT_STORE_URL": f"sqlite:///{directory / 'wechat.db'}", "RASA_TELEMETRY_ENABLED": "false"}
    token = secrets.token_urlsafe(24)
    config = ServerConfig(model=model, rasa_port=free_port(), action_port=free_port(), desk_port=free_port(),
                          token=token, endpoints=str(project_endpoints(directory)), log_dir=directory / "logs",
                          handoff_database_url=f"sqlite:///{directory / 'handoff.db'}", extra_env=extra_env)
    log(f"Starting the project (desk, action server, Rasa server) on port {config.rasa_port} "
        f"(logs: {config.log_dir})...")
    started = time.monotonic()
    try:
        servers = start_servers(config, timeout=START_TIMEOUT_S)
    except ServerStartError as err:
        raise BenchError(f"project: {err}") from None
    try:
        def pids() -> Dict[str, int]:
            found = {"rasa_server": servers.rasa_server.pid, "action_server": servers.action_server.pid}
            if servers.desk_server is not None:
                found["agent_desk"] = servers.desk_server.pid
            return found

        alive = lambda: all(p.poll() is None for p in servers.processes)  # noqa: E731
        took, reply = wait_first_answer(servers.rasa_url, alive, started, f"bench-{run_id}-project-first")
        log(f"  project: first answer after {took:g} s: {reply[:60]}")
        figures = measure("project", servers.rasa_url, token, pids, alive, clients, duration_s, run_id, log,
                          flag=outage_reply_flag(), growth_turns=growth_turns)
    except BenchError as err:
        servers.stop()
        raise BenchError(f"project: {err}; see {config.log_dir}") from None
    servers.stop()
    shutil.rmtree(directory, ignore_errors=True)
    return {"label": "this project (./scripts/run: desk, action server, Rasa server; SQLite stores)",
            "start_to_first_answer_s": took, "first_reply": reply, **figures}


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def commit_label() -> str:
    """The checkout's short commit, with ``+changes`` when tracked files outside reports/ differ from it;
    ``unknown`` outside git."""
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    changed = [line for line in _git("status", "--porcelain", "--untracked-files=no").splitlines()
               if not line[3:].startswith("reports/")]
    return commit + ("+changes" if changed else "")


def run_bench(clients: Sequence[int] = DEFAULT_CLIENTS, duration_s: float = DEFAULT_DURATION_S,
              only: Optional[str] = None, log: Callable[[str], None] = print,
              growth_turns: int = 0) -> Dict[str, Any]:
    """Measure the stock baseline and the project (or ``only`` one of them, a name in SERVERS), one after the
    other; with ``growth_turns``, also one conversation that long on each (``clients`` may then be empty:
    no load levels). Returns the whole benchmark as a JSON-ready dict: ``measured`` (UTC, ISO 8601), ``commit``,
    ``cpu_count``, ``load_average_before`` (1, 5, 15 min), ``duration_s``, ``clients``, ``parse_clients``,
    ``senders_per_client``, ``message``, ``rasa_version``, ``python`` and ``servers`` (name → figures).
    Raises BenchError (ValueError for bad arguments)."""
    from rasa import __version__ as rasa_version

    if only is not None and only not in SERVERS:
        raise ValueError(f"--only must be one of {', '.join(SERVERS)}")
    if (not clients and not growth_turns) or any(c < 1 for c in clients) or duration_s <= 0:
        raise ValueError("client counts must be positive and the duration above zero")
    if growth_turns < 0:
        raise ValueError("the growth turns must not be negative")
    run_id = datetime.now(UTC).strftime("%Y%m%d%H%M%S") + "-" + secrets.token_hex(3)
    result: Dict[str, Any] = {
        "measured": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit_label(),
        "cpu_count": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "duration_s": duration_s,
        "clients": list(clients),
        "parse_clients": PARSE_CLIENTS,
        "senders_per_client": SENDERS_PER_CLIENT,
        "message": MESSAGE,
        "rasa_version": str(rasa_version),
        "python": platform.python_version(),
        "servers": {},
    }
    for name in SERVERS:
        if only and name != only:
            continue
        bench = bench_stock if name == "stock" else bench_project
        result["servers"][name] = bench(clients, duration_s, run_id, log, growth_turns)
    return result


def write_results(result: Dict[str, Any], out: Path) -> List[Path]:
    """Write ``bench.json``, the chart ``bench.png`` and ``README.md`` into ``out`` (created); returns them."""
    from bot.bench.report import write_chart, write_readme

    out.mkdir(parents=True, exist_ok=True)
    data = out / "bench.json"
    data.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return [data, write_chart(result, out / "bench.png"), write_readme(result, out / "README.md")]


def parse_clients(text: str) -> List[int]:
    """``"1,8,32"`` → ``[1, 8, 32]``. Raises ValueError for anything but comma-separated positive integers."""
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or any(c < 1 for c in counts):
        raise ValueError(f"not a list of positive client counts: {text!r}")
    return counts


def main(clients: Sequence[int], duration_s: float, only: Optional[str], out: Path,
         report_only: bool = False, growth_turns: int = 0) -> int:
    """The ``bench`` command: run (or with ``report_only`` re-render from ``out/bench.json``), print the table,
    write the files. Returns the exit code: 0, or 1 with the reason on stderr."""
    from bot.bench.report import console_table

    if report_only:
        source = out / "bench.json"
        if not source.exists():
            print(f"{source} does not exist: run python -m bot bench first", file=sys.stderr)
            return 1
        result = json.loads(source.read_text(encoding="utf-8"))
    else:
        try:
            result = run_bench(clients, duration_s, only, growth_turns=growth_turns)
        except (BenchError, ValueError) as err:
            print(f"Benchmark failed: {err}", file=sys.stderr)
            return 1
    written = write_results(result, out)
    print()
    print(console_table(result))
    print("\nWritten: " + ", ".join(str(p) for p in written))
    return 0
