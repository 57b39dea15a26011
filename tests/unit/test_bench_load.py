"""The benchmark's statistics and its closed-loop load generator, against a real aiohttp server on loopback."""
from __future__ import annotations

import asyncio
import json
import socket
from typing import Dict

import numpy
import pytest
from aiohttp import web

from bot.bench.load import (
    SENDERS_PER_CLIENT,
    closed_loop,
    parse_bodies,
    parse_reply_ok,
    percentile,
    rest_bodies,
    rest_reply_ok,
    summarise,
)


@pytest.mark.parametrize("q", [0, 1, 25, 50, 90, 95, 99, 100])
@pytest.mark.parametrize("values", [[5.0], [3.0, 1.0], list(range(1, 101)), [0.2, 0.9, 0.1, 7.5, 3.3, 3.3, 12.0]])
def test_percentile_interpolates_like_numpy(values, q):
    assert percentile(values, q) == pytest.approx(float(numpy.percentile(values, q)))


def test_percentile_by_hand():
    assert percentile([10, 20, 30, 40], 50) == 25
    assert percentile([10, 20, 30, 40], 100) == 40
    assert percentile([40, 10, 30, 20], 0) == 10  # unsorted input
    assert percentile(list(range(1, 101)), 99) == pytest.approx(99.01)


def test_percentile_refuses_nothing_and_out_of_range():
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)
    with pytest.raises(ValueError):
        percentile([1.0], -1)


def test_summarise_rates_and_milliseconds():
    level = summarise(8, [0.1, 0.2, 0.3, 0.4], errors=2, elapsed_s=2.0, error_examples=["HTTP 500"] * 9)
    assert (level.clients, level.ok, level.errors) == (8, 4, 2)
    assert level.per_s == 2.0
    assert level.p50_ms == 250.0
    assert level.p99_ms == pytest.approx(397.0)
    assert len(level.error_examples) == 5
    assert json.loads(json.dumps(level.to_json()))["p95_ms"] == level.p95_ms


def test_summarise_without_success_has_no_percentiles():
    level = summarise(1, [], errors=3, elapsed_s=1.0)
    assert level.per_s == 0 and level.p50_ms is None and level.p99_ms is None
    with pytest.raises(ValueError):
        summarise(1, [0.1], errors=0, elapsed_s=0)


def test_reply_checks():
    assert rest_reply_ok([{"text": "好"}]) and not rest_reply_ok([]) and not rest_reply_ok({"text": "x"})
    assert parse_reply_ok({"intent": {"name": "greet"}}) and not parse_reply_ok({"intent": {"name": None}})
    assert not parse_reply_ok(None)


def test_rest_bodies_give_each_client_five_senders():
    bodies = rest_bodies("run1", "信用卡还不上了怎么办")
    first, second = [json.loads(b) for b in bodies(0)], [json.loads(b) for b in bodies(1)]
    assert [b["sender"] for b in first] == [f"run1-c0-s{k}" for k in range(SENDERS_PER_CLIENT)]
    assert not {b["sender"] for b in first} & {b["sender"] for b in second}
    assert {b["message"] for b in first} == {"信用卡还不上了怎么办"}
    assert json.loads(parse_bodies("你好")(3)[0]) == {"text": "你好"}


class Recorder:
    """A REST-webhook lookalike: answers after ``delay`` seconds, records senders and the peak concurrency.

    Sender ``...-s4`` gets an empty list (an error for the generator); sender ``...-c1-s0`` gets HTTP 500."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.senders: Dict[str, int] = {}
        self.in_flight = 0
        self.peak = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        sender = body["sender"]
        self.senders[sender] = self.senders.get(sender, 0) + 1
        if sender.endswith("-c1-s0"):
            return web.json_response({"error": "boom"}, status=500)
        return web.json_response([] if sender.endswith("-s4") else [{"recipient_id": sender, "text": "好的"}])


async def _serve_and_load(recorder: Recorder, clients: int, duration: float, flag=None):
    app = web.Application()
    app.router.add_post("/webhooks/rest/webhook", recorder.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        return await closed_loop(f"http://127.0.0.1:{port}/webhooks/rest/webhook", rest_bodies("t", "你好"),
                                 clients, duration, rest_reply_ok, flag=flag)
    finally:
        await runner.cleanup()


def test_closed_loop_against_a_loopback_server():
    recorder = Recorder(delay=0.02)
    level = asyncio.run(_serve_and_load(recorder, clients=3, duration=1.0))
    assert level.flagged is None  # no flag given
    answered = sum(recorder.senders.values())
    assert level.ok + level.errors == answered  # every request is counted once, as a success or an error
    assert recorder.peak <= 3  # closed loop: never more requests in flight than clients
    assert set(recorder.senders) <= {f"t-c{c}-s{k}" for c in range(3) for k in range(SENDERS_PER_CLIENT)}
    assert len(recorder.senders) == 15  # each client cycled through its five senders
    empty = sum(n for s, n in recorder.senders.items() if s.endswith("-s4"))
    failed = recorder.senders["t-c1-s0"]
    assert level.errors == empty + failed
    assert any(e.startswith("HTTP 500") for e in level.error_examples)
    assert any(e.startswith("HTTP 200: []") for e in level.error_examples)
    # about 1 s / 20 ms per client, minus overhead: throughput and latency are the server's, in the right units
    assert 30 <= answered <= 160
    assert 1.0 <= level.elapsed_s < 2.0
    assert level.per_s == pytest.approx(level.ok / level.elapsed_s, rel=0.01)
    assert 15 <= level.p50_ms < 500


def test_flagged_answers_are_counted_among_the_successes():
    recorder = Recorder(delay=0.01)
    level = asyncio.run(_serve_and_load(recorder, clients=2, duration=0.5,
                                        flag=lambda body: body[0]["recipient_id"].endswith("-s1")))
    assert level.flagged == sum(n for s, n in recorder.senders.items() if s.endswith("-s1")) > 0
    assert level.flagged < level.ok


def test_closed_loop_counts_refused_connections_without_spinning():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the load starts: nothing listens
    level = asyncio.run(closed_loop(f"http://127.0.0.1:{port}/", rest_bodies("t", "x"), 2, 0.5, rest_reply_ok))
    assert level.ok == 0 and level.p50_ms is None
    assert 1 <= level.errors <= 40  # a pause after each failure, not thousands of retries
    assert "Error" in level.error_examples[0]


def test_closed_loop_refuses_bad_arguments():
    for clients, duration in ((0, 1.0), (1, 0.0)):
        with pytest.raises(ValueError):
            asyncio.run(closed_loop("http://127.0.0.1:9/", rest_bodies("t", "x"), clients, duration, rest_reply_ok))


