"""The turn supervisor (bot/channels/turns.py) and the action server's watch (bot/channels/action_watch.py),
without a Rasa server: fake turns, Rasa's in-memory stores, and a loopback HTTP server playing the action
server."""
from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiohttp import web
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.lock_store import InMemoryLockStore
from rasa.core.tracker_store import FailSafeTrackerStore, InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, UserUttered
from rasa.utils.endpoints import EndpointConfig

from bot.channels import action_watch
from bot.channels.action_watch import ActionServerWatch, WatchedActionEndpoint, health_url
from bot.channels.turns import (
    FALLBACK,
    FALLBACK_DANGER,
    Outcome,
    TurnServices,
    TurnSupervisor,
    WatchedOutput,
    fallback_response,
    judge,
    primary_tracker_store,
    record_fallback,
    render_fallback,
)

ANSWER = {"text": "正常的回答"}


@pytest.fixture(autouse=True)
def _quick_record_retries(monkeypatch):
    """Retry a failed record every 10 ms and give up after 0.5 s, so that stores that never come back (the
    fakes below) cost a test half a second rather than RECORD_TIMEOUT."""
    import bot.channels.turns as turns

    monkeypatch.setattr(turns, "RECORD_RETRY_SECONDS", 0.01)
    monkeypatch.setattr(turns, "RECORD_TIMEOUT", 0.5)


def _services(agent=None, deadline=0.5, watch=None):
    return TurnServices(agent=lambda: agent, watch=watch or ActionServerWatch(), deadline=deadline)


def _run(supervisor, text="你好", sender="u1"):
    output = CollectingOutputChannel()
    message = UserMessage(text, output, sender)

    async def go():
        started = time.monotonic()
        await supervisor(message)
        elapsed = time.monotonic() - started
        await asyncio.gather(*supervisor.background)
        return elapsed

    elapsed = asyncio.run(go())
    return message, [m.get("text") for m in output.messages], elapsed


async def _answers(message):
    await message.output_channel.send_response(message.sender_id, dict(ANSWER))


async def _silent(message):
    return None


async def _raises(message):
    raise ConnectionError("lock store unreachable")


async def _hangs(message):
    await asyncio.sleep(30)
    await message.output_channel.send_response(message.sender_id, {"text": "迟到的回答"})


def test_judge_ranks_the_outcomes():
    base = dict(raised=False, timed_out=False, sent=1, action_failures=0, action_server_down=False)
    assert judge(**base) is Outcome.ANSWERED
    assert judge(**{**base, "action_failures": 1}) is Outcome.DEGRADED
    assert judge(**{**base, "action_server_down": True}) is Outcome.DEGRADED
    assert judge(**{**base, "sent": 0}) is Outcome.SILENT
    assert judge(**{**base, "sent": 0, "raised": True}) is Outcome.FAILED
    assert judge(**{**base, "raised": True, "timed_out": True}) is Outcome.TIMED_OUT


def test_a_normal_turn_passes_untouched(knowledge):
    supervisor = TurnSupervisor(_answers, _services())
    _, replies, _ = _run(supervisor)
    assert replies == [ANSWER["text"]] and supervisor.last_outcome is Outcome.ANSWERED


def test_the_outage_reply_names_the_official_route_from_the_knowledge_files(knowledge):
    text = render_fallback(FALLBACK)["text"]
    assert knowledge.fact("nfra_hotline").value in text and "金融消费者保护服务平台" in text
    assert "银行卡背面" in text and "{" not in text
    danger = render_fallback(FALLBACK_DANGER)["text"]
    for key in ("psychological_hotline", "police_hotline", "medical_emergency_hotline", "nfra_hotline"):
        assert knowledge.fact(key).value in danger


def _down_watch():
    watch = ActionServerWatch()
    watch.record_failure("connection refused")
    return watch


@pytest.mark.parametrize("turn, outcome, watch", [(_silent, Outcome.SILENT, _down_watch),
                                                  (_raises, Outcome.FAILED, ActionServerWatch)])
def test_a_silent_turn_in_an_outage_or_a_failed_turn_gets_the_outage_reply(turn, outcome, watch):
    supervisor = TurnSupervisor(turn, _services(watch=watch()))
    _, replies, _ = _run(supervisor, "我想问问信用卡分期")
    assert replies == [render_fallback(FALLBACK)["text"]] and supervisor.last_outcome is outcome


def test_a_silent_turn_while_nothing_is_down_asks_again_unless_it_reads_as_danger():
    supervisor = TurnSupervisor(_silent, _services())
    _, replies, _ = _run(supervisor, "嗯嗯")
    assert replies == [render_fallback("utter_clarify")["text"]] and supervisor.last_outcome is Outcome.SILENT
    _, replies, _ = _run(supervisor, "我真的不想活了")
    assert replies == [render_fallback(FALLBACK_DANGER)["text"]]


def test_a_hung_turn_is_answered_at_the_deadline_and_cancelled_so_no_late_reply_follows():
    supervisor = TurnSupervisor(_hangs, _services(deadline=0.3))
    output = CollectingOutputChannel()
    message = UserMessage("你好", output, "u1")

    async def go():
        started = time.monotonic()
        await supervisor(message)
        elapsed = time.monotonic() - started
        await asyncio.sleep(0.2)  # give a surviving turn the chance to send
        return elapsed

    elapsed = asyncio.run(go())
    assert elapsed < 5, "answered at the deadline, not when the turn ends"
    assert [m["text"] for m in output.messages] == [render_fallback(FALLBACK)["text"]]
    assert supervisor.last_outcome is Outcome.TIMED_OUT


def test_a_sealed_output_drops_late_replies():
    inner = CollectingOutputChannel()
    watched = WatchedOutput(inner)
    asyncio.run(watched.send_response("u1", {"text": "先到"}))
    watched.seal()
    asyncio.run(watched.send_response("u1", {"text": "迟到"}))
    assert [m["text"] for m in inner.messages] == ["先到"] and watched.name() == inner.name()
    assert watched.messages is inner.messages, "other attributes are the inner channel's"


def test_danger_gets_the_crisis_outage_reply_by_lexicon_or_by_intent():
    assert fallback_response("我真的不想活了", None) == FALLBACK_DANGER
    assert fallback_response("还不上钱好烦", "express_distress") == FALLBACK_DANGER
    assert fallback_response("你好", "greet") == FALLBACK

    class ParsingAgent:
        action_endpoint = None

        async def parse_message(self, text):
            return {"intent": {"name": "express_distress"}}

    supervisor = TurnSupervisor(_silent, _services(agent=_NoRecord(ParsingAgent())))
    _, replies, _ = _run(supervisor, "撑不住了")
    assert replies == [render_fallback(FALLBACK_DANGER)["text"]]


class _NoRecord:
    """An agent whose stores always fail: the reply goes out, the record is skipped."""

    def __init__(self, inner):
        self._inner = inner
        self.action_endpoint = None

    async def parse_message(self, text):
        return await self._inner.parse_message(text)

    @property
    def lock_store(self):
        raise ConnectionError("no store")


def test_a_reply_while_the_action_server_is_down_gets_the_outage_reply_after_it():
    watch = ActionServerWatch()
    watch.record_failure("connection refused")
    supervisor = TurnSupervisor(_answers, _services(watch=watch))
    _, replies, _ = _run(supervisor)
    assert replies == [ANSWER["text"], render_fallback(FALLBACK)["text"]]
    assert supervisor.last_outcome is Outcome.DEGRADED


class _Agent:
    """Enough of rasa.core.agent.Agent for record_fallback: Rasa's in-memory stores and an NLU stub."""

    def __init__(self, store=None):
        self.tracker_store = FailSafeTrackerStore(store or InMemoryTrackerStore(Domain.empty()))
        self.lock_store = InMemoryLockStore()
        self.action_endpoint = None
        self.processor = self

    async def parse_message(self, text):
        return {"text": text, "intent": {"name": "greet", "confidence": 0.9}, "entities": []}

    async def fetch_tracker_with_initial_session(self, sender_id):
        return await self.tracker_store.get_or_create_tracker(sender_id)


def test_a_timed_out_turn_is_recorded_with_the_users_message_and_the_outage_reply():
    agent = _Agent()
    supervisor = TurnSupervisor(_hangs, _services(agent=agent, deadline=0.2))
    message, replies, _ = _run(supervisor, "你好")
    tracker = asyncio.run(agent.tracker_store.retrieve("u1"))
    users = [e for e in tracker.events if isinstance(e, UserUttered)]
    bots = [e for e in tracker.events if isinstance(e, BotUttered)]
    assert [(u.text, u.message_id, u.intent_name) for u in users] == [("你好", message.message_id, "greet")]
    assert [b.text for b in bots] == replies and bots[0].metadata == {"outage_fallback": True}
    assert isinstance(tracker.events[-1], ActionExecuted) and tracker.events[-1].action_name == "action_listen"


def test_a_silent_turn_already_recorded_gets_only_the_outage_reply_appended():
    agent = _Agent()

    async def silent_but_recorded(message):
        tracker = await agent.tracker_store.get_or_create_tracker(message.sender_id)
        tracker.update(SessionStarted())
        tracker.update(UserUttered(message.text, {"name": "greet"}, message_id=message.message_id))
        await agent.tracker_store.save(tracker)

    supervisor = TurnSupervisor(silent_but_recorded, _services(agent=agent))
    _run(supervisor, "你好")
    tracker = asyncio.run(agent.tracker_store.retrieve("u1"))
    names = [type(e).__name__ for e in tracker.events]
    assert names[-3:] == ["SessionStarted", "UserUttered", "BotUttered"] and names.count("UserUttered") == 1


def test_a_failing_store_skips_the_record_without_raising():
    class Down(InMemoryTrackerStore):
        async def retrieve(self, sender_id):
            raise ConnectionError("tracker store down")

    agent = _Agent(Down(Domain.empty()))
    message = UserMessage("你好", CollectingOutputChannel(), "u1")
    assert asyncio.run(record_fallback(agent, message, [{"text": "x"}])) is False
    assert not agent.tracker_store.fallback_tracker_store.store, "nothing written to the fail-safe's memory"


def test_an_outage_reply_is_recorded_once_the_lock_store_is_back():
    agent = _Agent()
    failures = {"left": 3}
    real_lock = agent.lock_store.lock

    def flaky_lock(sender_id, *args, **kwargs):
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("lock store restarting")
        return real_lock(sender_id, *args, **kwargs)

    agent.lock_store.lock = flaky_lock
    message, replies, _ = _run(TurnSupervisor(_raises, _services(agent=agent)), "你好")
    tracker = asyncio.run(agent.tracker_store.retrieve("u1"))
    assert failures["left"] == 0
    assert [e.message_id for e in tracker.events if isinstance(e, UserUttered)] == [message.message_id]
    assert [b.text for b in tracker.events if isinstance(b, BotUttered)] == replies


def test_primary_tracker_store_unwraps_rasas_fail_safe():
    inner = InMemoryTrackerStore(Domain.empty())
    assert primary_tracker_store(FailSafeTrackerStore(inner)) is inner
    assert primary_tracker_store(inner) is inner


def test_health_url_of_the_webhook():
    assert health_url("http://127.0.0.1:5055/webhook") == "http://127.0.0.1:5055/health"
    assert health_url("http://127.0.0.1:5055/webhook/") == "http://127.0.0.1:5055/health"


class _ActionServer:
    """A loopback aiohttp server answering /webhook and /health as ``mode`` says: ok, error (500) or hang."""

    def __init__(self, mode):
        self.mode = mode
        self.calls = 0

    async def handle(self, request):
        self.calls += 1
        if self.mode == "hang":
            await asyncio.sleep(30)
        if self.mode == "error":
            return web.Response(status=500, text="boom")
        return web.json_response({"events": [], "responses": []})

    async def __aenter__(self):
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc):
        await self.runner.cleanup()


@pytest.mark.parametrize("mode", ["error", "hang"])
def test_a_failing_action_server_is_marked_down_and_then_not_called_again(mode):
    async def go():
        async with _ActionServer(mode) as server:
            watch = ActionServerWatch()
            endpoint = WatchedActionEndpoint(EndpointConfig(f"{server.url}/webhook"), watch, timeout=0.5)
            failures = action_watch.begin_turn()
            started = time.monotonic()
            with pytest.raises(aiohttp.ClientError):
                await endpoint.request(json={}, method="post")
            assert time.monotonic() - started < 5, "bounded by the endpoint's timeout, not Rasa's 5 minutes"
            assert watch.down and len(failures) == 1
            with pytest.raises(aiohttp.ClientConnectionError):
                await endpoint.request(json={}, method="post")
            assert server.calls == 1, "while down, calls fail at once"
            server.mode = "ok"
            assert await watch.probe(f"{server.url}/health") and not watch.down
            assert await endpoint.request(json={}, method="post") == {"events": [], "responses": []}

    asyncio.run(go())


def test_install_wraps_the_agents_endpoint_once_with_the_configured_timeout():
    class Agent:
        def __init__(self):
            self.action_endpoint = EndpointConfig("http://127.0.0.1:9/webhook", timeout=2)
            self.processor = type("P", (), {"action_endpoint": self.action_endpoint})()

    async def go():
        agent, watch = Agent(), ActionServerWatch()
        assert action_watch.install(agent, watch)
        first = agent.action_endpoint
        assert isinstance(first, WatchedActionEndpoint) and first.timeout == 2
        assert agent.processor.action_endpoint is first
        assert action_watch.install(agent, watch) and agent.action_endpoint is first
        watch._probe.cancel()

    asyncio.run(go())


def test_a_turn_needing_no_custom_action_still_learns_of_an_outage_from_the_probe_alongside_it():
    from bot.ops.servers import free_port

    watch = ActionServerWatch()
    watch.health_url = f"http://127.0.0.1:{free_port()}/health"  # nothing listens: the server is down
    supervisor = TurnSupervisor(_answers, _services(watch=watch))
    _, replies, _ = _run(supervisor, "你好")
    assert replies == [ANSWER["text"], render_fallback(FALLBACK)["text"]] and watch.down


def test_a_silent_turn_of_a_conversation_paused_for_a_human_agent_stays_silent():
    from rasa.shared.core.events import ConversationPaused

    agent = _Agent()

    async def pause():
        tracker = await agent.tracker_store.get_or_create_tracker("u1")
        tracker.update(ConversationPaused())
        await agent.tracker_store.save(tracker)

    asyncio.run(pause())
    supervisor = TurnSupervisor(_silent, _services(agent=agent))
    _, replies, _ = _run(supervisor, "客服还在吗")
    assert replies == [] and supervisor.last_outcome is Outcome.PAUSED
    supervisor = TurnSupervisor(_silent, _services(agent=_Agent(), watch=_down_watch()))
    _, replies, _ = _run(supervisor, "客服还在吗")
    assert replies == [render_fallback(FALLBACK)["text"]], "not paused: silence is an outage"


def _after_the_crisis_answer(agent, *later):
    """A conversation in ``agent``'s store: the crisis answer, then the ``later`` events."""
    async def write():
        tracker = await agent.tracker_store.get_or_create_tracker("u1")
        tracker.update(UserUttered("我不想活了", {"name": "express_distress"}))
        tracker.update(BotUttered("……12356……", metadata={"utter_action": "utter_support_distress"}))
        for event in later:
            tracker.update(event)
        await agent.tracker_store.save(tracker)

    asyncio.run(write())


def _answers_and_records(agent, text="是哪一类欠款？"):
    async def turn(message):
        tracker = await agent.tracker_store.get_or_create_tracker(message.sender_id)
        tracker.update(UserUttered(message.text, {"name": "inform"}, message_id=message.message_id))
        tracker.update(BotUttered(text))
        await agent.tracker_store.save(tracker)
        await message.output_channel.send_response(message.sender_id, {"text": text})

    return turn


def test_after_the_crisis_answer_a_turn_without_the_hotline_is_followed_by_the_reminder():
    agent = _Agent()
    _after_the_crisis_answer(agent)
    supervisor = TurnSupervisor(_answers_and_records(agent), _services(agent=agent))
    _, replies, _ = _run(supervisor, "招商银行的")
    reminder = render_fallback("utter_crisis_reminder")["text"]
    assert replies == ["是哪一类欠款？", reminder] and "12356" in reminder
    tracker = asyncio.run(agent.tracker_store.retrieve("u1"))
    assert tracker.events[-1].metadata == {"crisis_reminder": True}


def test_no_reminder_once_an_agent_has_joined_or_when_the_turn_names_the_hotline():
    agent = _Agent()
    joined = BotUttered("人工客服已接入", metadata={"handoff": {"kind": "agent_joined", "ticket_id": "t"}})
    _after_the_crisis_answer(agent, joined)
    _, replies, _ = _run(TurnSupervisor(_answers_and_records(agent), _services(agent=agent)), "你好")
    assert replies == ["是哪一类欠款？"]
    other = _Agent()
    _after_the_crisis_answer(other)
    _, replies, _ = _run(TurnSupervisor(_answers_and_records(other, "请拨打12356"), _services(agent=other)), "嗯")
    assert replies == ["请拨打12356"]
