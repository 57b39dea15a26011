"""The hand-over's lifecycle without servers: the pause decision, presence, the store's transitions over a real
SQLite store, the timers against a fake Rasa, the paused-conversation gate's plan and its work on a real Rasa
tracker store, and delivery honesty in the channel outputs."""
from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any, Dict, List

import pytest

from bot.db import upgrade_database
from bot.handoff.config import load_settings
from bot.handoff.contract import ContractError, IntakeAnswer, PausedAnswer, PausedMessage
from bot.handoff.decision import channel_can_receive_agent, intake_status, read_paused_message
from bot.handoff.delivery import AgentMessageNotDelivered
from bot.handoff.intake import DeskUnavailable, HandoffContext, open_handoff, should_pause
from bot.handoff.paused import gate_paused_message, plan_paused_reply
from bot.handoff.presence import AgentPresence
from bot.handoff.store import SYSTEM_AGENT, NewTicket, TicketConflict, TicketStore
from bot.handoff.timeouts import release_silent, return_unclaimed
from tests.support.handoff import InProcessDesk, always_open_config


# ----- decisions -----------------------------------------------------------------------------------------------
def test_only_push_channels_can_receive_an_agent_and_be_queued():
    assert channel_can_receive_agent("socketio") and channel_can_receive_agent("wechat_miniprogram")
    assert not channel_can_receive_agent("rest") and not channel_can_receive_agent(None)
    assert intake_status(True, "socketio") == "queued"
    assert intake_status(False, "socketio") == "follow_up"
    assert intake_status(True, "rest") == "follow_up"


def _answer(**fields):
    base = {"ticket_id": "t1", "created": True, "open_now": True, "opening_hours": "每天全天（北京时间）"}
    return IntakeAnswer.from_json({**base, **fields})


def test_the_intake_answer_tolerates_an_earlier_desk_and_never_pauses_on_its_word_alone():
    earlier = _answer()  # no agents_on_duty, no status: an earlier desk only knew the hours
    assert (earlier.agents_on_duty, earlier.status) == (False, "follow_up")
    assert not should_pause(earlier, "socketio")
    assert should_pause(_answer(agents_on_duty=True, status="queued"), "socketio")
    assert not should_pause(_answer(agents_on_duty=True, status="queued"), "rest")
    assert not should_pause(_answer(agents_on_duty=False, status="queued"), "socketio")
    assert should_pause(_answer(agents_on_duty=False, status="claimed"), "socketio")  # an agent holds it
    with pytest.raises(ContractError, match="'status'"):
        _answer(status="paused")
    with pytest.raises(ContractError, match="'agents_on_duty'"):
        _answer(agents_on_duty="yes")


@pytest.mark.parametrize("text, kind", [
    ("不等了", "leave"), ("算了，继续和机器人聊吧", "leave"), ("不用人工了", "leave"), ("/restart", "leave"),
    ("我不想活了", "danger"), ("不等了，我不想活了", "danger"),  # danger outranks leaving
    ("请问多久能有人回复我？", "message"), ("我等了很久，人工客服为什么还没来，我不等了就要去投诉你们银行", "message"),
])
def test_messages_to_a_paused_conversation_are_read_as_danger_leave_or_message(text, kind):
    assert read_paused_message(text) == kind


def test_presence_counts_agents_seen_within_the_window():
    now = [100.0]
    presence = AgentPresence(30, clock=lambda: now[0])
    assert not presence.any_present()
    presence.seen("王敏")
    now[0] += 29
    assert presence.present() == ["王敏"] and presence.present(exclude="王敏") == []
    now[0] += 2
    assert not presence.any_present()


# ----- the action's plan ---------------------------------------------------------------------------------------
@pytest.fixture
def store(tmp_path):
    url = f"sqlite:///{tmp_path / 'lifecycle.db'}"
    upgrade_database(url, "handoff")
    return TicketStore.from_url(url)


def _context(channel="socketio", sender="life-user", intent="request_human"):
    return HandoffContext(sender_id=sender, channel=channel, events=[], slots={"bank": None},
                          latest_intent=intent, latest_text="转人工")


def test_no_agent_at_the_desk_means_a_follow_up_record_and_no_pause(store, knowledge, tmp_path):
    settings = load_settings({"HANDOFF_CONFIG": str(always_open_config(tmp_path))})
    result = open_handoff(_context(), InProcessDesk(store, settings, agents_present=False), knowledge)
    assert not result.queued and result.follow_up
    assert [r.response for r in result.replies] == ["utter_handoff_follow_up"]
    assert store.get(result.ticket_id).status == "follow_up"
    # An agent arrives; asking again promotes the record to the queue and pauses.
    again = open_handoff(_context(), InProcessDesk(store, settings, agents_present=True), knowledge)
    assert again.queued and again.ticket_id == result.ticket_id and store.get(result.ticket_id).status == "queued"


def test_rest_is_never_paused_nor_promised_a_reply_here(store, knowledge, tmp_path, domain):
    settings = load_settings({"HANDOFF_CONFIG": str(always_open_config(tmp_path))})
    result = open_handoff(_context("rest", intent="express_distress"), InProcessDesk(store, settings), knowledge)
    assert not result.queued
    names = [r.response for r in result.replies]
    assert names == ["utter_handoff_follow_up_no_push", "utter_handoff_distress_reminder"]
    text = domain["responses"]["utter_handoff_follow_up_no_push"][0]["text"]
    assert "在这里回复您" not in text and "转接人工客服，请稍候" not in text


def test_no_text_promises_a_transfer_unless_the_conversation_is_paused(domain):
    promising = {name for name, variants in domain["responses"].items()
                 if any("我已经为您转接人工客服" in (v.get("text") or "") for v in variants)}
    assert promising == {"utter_handoff_queued"}


# ----- store transitions ---------------------------------------------------------------------------------------
def _new(sender="s1", channel="socketio", priority=3):
    return NewTicket(sender, channel, priority, "user_request", {"reason": "user_request"}, [])


class _Clock:
    def __init__(self):
        self.now = dt.datetime(2026, 12, 2, 3, 0, 0)

    def __call__(self):
        return self.now


@pytest.fixture
def timed(store):
    clock = _Clock()
    return TicketStore(store.engine, clock=clock), clock


def test_claim_silence_release_and_the_queue_timer_restart(timed):
    store, clock = timed
    ticket, _ = store.create_ticket(_new())
    store.claim(ticket.id, "王敏")
    clock.now += dt.timedelta(seconds=50)
    store.record_reply(ticket.id, "王敏", "您好", lambda t: None)
    clock.now += dt.timedelta(seconds=50)
    assert store.tickets_due_for_release(60) == []  # 50 s since the last reply
    clock.now += dt.timedelta(seconds=20)
    (due,) = store.tickets_due_for_release(60)
    told: List[Any] = []
    released = store.release(due.id, SYSTEM_AGENT, "silence", "王敏", told.append)
    assert released.status == "queued" and released.claimed_by is None and released.queued_at == clock.now
    assert told[0].claimed_by == "王敏"  # the side effect names who left
    assert store.tickets_due_for_return(60) == []  # the queue time starts again at the release
    with pytest.raises(TicketConflict):
        store.release(ticket.id, SYSTEM_AGENT, "silence", "王敏")  # not claimed any more
    clock.now += dt.timedelta(seconds=61)
    (back,) = store.tickets_due_for_return(60)
    assert store.return_to_bot(back.id, told.append)
    assert not store.return_to_bot(back.id)  # once
    assert store.get(ticket.id).status == "follow_up"
    assert [e.action for e in reversed(store.audit_log(ticket.id))] == [
        "create", "claim", "reply", "release", "return_to_bot"]


def test_a_failed_side_effect_rolls_the_transition_back(timed):
    store, _ = timed
    ticket, _ = store.create_ticket(_new())
    store.claim(ticket.id, "王敏")

    def fail(_ticket):
        raise RuntimeError("rasa down")

    with pytest.raises(RuntimeError):
        store.release(ticket.id, "王敏", "agent", None, fail)
    assert store.get(ticket.id).claimed_by == "王敏"
    assert "release" not in [e.action for e in store.audit_log(ticket.id)]


def test_the_user_leaves_and_follow_up_tickets_can_be_claimed(timed):
    store, _ = timed
    left, _ = store.create_ticket(_new("leaver"))
    closed = store.leave("leaver")
    assert closed is not None and closed.outcome == "user_left" and closed.status == "closed"
    assert store.leave("leaver") is None
    record, _ = store.create_ticket(_new("later"), "follow_up")
    claimed = store.claim(record.id, "李强")
    assert claimed.status == "claimed"
    assert store.audit_log(record.id)[0].detail == {"from": "follow_up"}


def test_a_danger_alert_puts_the_ticket_first_with_its_sentence(timed):
    store, clock = timed
    first, _ = store.create_ticket(_new("a", priority=1))
    clock.now += dt.timedelta(seconds=1)
    later, _ = store.create_ticket(_new("b", priority=3))
    assert [t.id for t in store.queue()] == [first.id, later.id]
    alerted = store.raise_alert("b", "我不想活了")
    assert alerted is not None and alerted.priority == 1 and alerted.alert_text == "我不想活了"
    assert [t.id for t in store.queue()] == [later.id, first.id]
    assert store.raise_alert("nobody", "x") is None


# ----- timers against a fake Rasa ------------------------------------------------------------------------------
class _Rasa:
    def __init__(self, fail=False):
        self.appended: Dict[str, List[Dict[str, Any]]] = {}
        self.fail = fail

    def append_events(self, sender, events):
        from bot.handoff.rasa_client import RasaUnavailable

        if self.fail:
            raise RasaUnavailable("down")
        self.appended.setdefault(sender, []).extend(events)
        return {}

    def append_state_events(self, sender, events):
        self.append_events(sender, events)
        return True


def test_the_timers_resume_the_bot_and_release_silent_agents(timed):
    store, clock = timed
    queued, _ = store.create_ticket(_new("q", priority=1))
    held, _ = store.create_ticket(_new("h"))
    rest, _ = store.create_ticket(_new("r", channel="rest"), "follow_up")
    store.claim(held.id, "王敏")
    clock.now += dt.timedelta(seconds=120)
    down = _Rasa(fail=True)
    assert return_unclaimed(store, down, 60) == 0 and store.get(queued.id).status == "queued"  # retried later
    rasa = _Rasa()
    assert release_silent(store, rasa, 60) == 1
    assert return_unclaimed(store, rasa, 60) == 1  # the released one has just re-entered the queue
    resume, listen, told, hotlines = rasa.appended["q"]
    assert resume == {"event": "resume"} and told["data"]["custom"]["status"] == "returned_to_bot"
    assert "12356" in hotlines["text"]
    (released,) = rasa.appended["h"]
    assert released["data"]["custom"] == {"type": "handoff", "status": "released", "ticket_id": held.id,
                                          "agent_name": "王敏"}
    assert "r" not in rasa.appended and store.get(rest.id).status == "follow_up"


# ----- the paused-conversation gate ----------------------------------------------------------------------------
HELD = PausedAnswer(ticket_id="t1", status="queued", hold=True)


@pytest.mark.parametrize("text, answer, replies, resume, pass_on", [
    ("还有人吗", HELD, [], False, True),
    ("还有人吗", None, ["utter_handoff_desk_unreachable"], True, True),
    ("还有人吗", PausedAnswer(None, None, hold=False), ["utter_handoff_no_open_ticket"], True, True),
    ("还有人吗", PausedAnswer("t1", "follow_up", hold=False), ["utter_handoff_returned_to_bot"], True, True),
    ("我不想活了", PausedAnswer("t1", "queued", hold=True, prioritised=True),
     ["utter_handoff_distress_while_waiting"], False, True),
    ("我不想活了", None, ["utter_handoff_distress_reminder", "utter_handoff_desk_unreachable"], True, True),
    ("不等了", PausedAnswer("t1", "closed", hold=False, closed=True), ["utter_handoff_user_left"], True, False),
    ("不等了", None, ["utter_handoff_desk_unreachable"], True, False),
    ("/restart", PausedAnswer("t1", "closed", hold=False, closed=True), [], True, True),
])
def test_the_gate_plans_an_answer_for_every_case(text, answer, replies, resume, pass_on):
    plan = plan_paused_reply(text, answer)
    assert (plan.replies, plan.resume, plan.pass_on) == (replies, resume, pass_on)


class _Desk:
    def __init__(self, answer=None, error=None):
        self.answer, self.error, self.seen = answer, error, []

    def report(self, message: PausedMessage) -> PausedAnswer:
        self.seen.append(message)
        if self.error:
            raise self.error
        return self.answer


class _Output:
    def __init__(self):
        self.sent = []

    async def send_response(self, recipient_id, message):
        self.sent.append(message)


def _paused_agent(sender):
    from types import SimpleNamespace

    from rasa.core.lock_store import InMemoryLockStore
    from rasa.core.tracker_store import InMemoryTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, ConversationPaused, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    domain = Domain.empty()
    tracker_store = InMemoryTrackerStore(domain)
    tracker = DialogueStateTracker(sender, [])
    for event in (ActionExecuted("action_listen"), UserUttered("转人工"), ConversationPaused()):
        tracker.update(event)
    asyncio.run(tracker_store.save(tracker))
    processor = SimpleNamespace(_has_session_expired=lambda t: False)
    return SimpleNamespace(tracker_store=tracker_store, lock_store=InMemoryLockStore(), processor=processor)


def _run_gate(agent, sender, text, desk):
    from rasa.core.channels.channel import UserMessage

    output, passed = _Output(), []

    async def on_new_message(message):
        passed.append(message.text)

    async def go():
        handled = await gate_paused_message(UserMessage(text, output, sender), on_new_message, desk, agent)
        return handled, await agent.tracker_store.retrieve(sender)

    handled, tracker = asyncio.run(go())
    return handled, tracker, output.sent, passed


def test_the_gate_resumes_the_bot_when_the_desk_is_gone():
    agent = _paused_agent("g1")
    handled, tracker, sent, passed = _run_gate(agent, "g1", "还有人吗", _Desk(error=DeskUnavailable("down")))
    assert handled and not tracker.is_paused() and passed == ["还有人吗"]
    assert sent[0]["custom"]["status"] == "returned_to_bot" and "暂时连接不上" in sent[0]["text"]
    assert any(e.type_name == "bot" and "暂时连接不上" in e.text for e in tracker.events)


def test_the_gate_answers_danger_at_once_and_keeps_the_conversation_for_the_agent():
    agent = _paused_agent("g2")
    desk = _Desk(PausedAnswer("t1", "queued", hold=True, prioritised=True))
    handled, tracker, sent, passed = _run_gate(agent, "g2", "我真的不想活了", desk)
    assert handled and tracker.is_paused() and passed == ["我真的不想活了"]
    assert desk.seen == [PausedMessage("g2", "danger", "我真的不想活了")]
    (care,) = sent
    assert "12356" in care["text"] and "110" in care["text"] and "120" in care["text"]


def test_the_gate_closes_and_resumes_when_the_user_leaves_and_ignores_unpaused_conversations():
    agent = _paused_agent("g3")
    desk = _Desk(PausedAnswer("t1", "closed", hold=False, closed=True))
    handled, tracker, sent, passed = _run_gate(agent, "g3", "不等了", desk)
    assert handled and not tracker.is_paused() and passed == []
    assert desk.seen == [PausedMessage("g3", "leave", None)]  # an ordinary sentence is not sent to the desk
    assert sent[0]["custom"]["status"] == "closed"
    handled, _, sent, passed = _run_gate(agent, "g3", "征信怎么查", desk)
    assert not handled and sent == [] and passed == []  # not paused any more: the caller passes it on


def test_the_gate_keeps_an_ordinary_message_quietly_for_the_agent():
    agent = _paused_agent("g4")
    desk = _Desk(HELD)
    handled, tracker, sent, passed = _run_gate(agent, "g4", "请问多久能有人回复我？", desk)
    assert handled and tracker.is_paused() and sent == [] and passed == ["请问多久能有人回复我？"]
    assert desk.seen == [PausedMessage("g4", "message", None)]


# ----- delivery honesty ----------------------------------------------------------------------------------------
class _Manager:
    def __init__(self, rooms):
        self.rooms = rooms

    def get_participants(self, namespace, room):
        yield from self.rooms.get(room, {}).items()


class _Sio:
    def __init__(self, rooms):
        self.manager = _Manager(rooms)
        self.emitted = []

    async def emit(self, event, data=None, room=None, **kwargs):
        self.emitted.append((event, data, room))


def test_an_agent_message_to_a_gone_widget_is_not_delivered():
    from bot.channels.socketio import OutOfTurnSocketIOOutput

    sio = _Sio({"here": {"sid1": "eio1"}})
    output = OutOfTurnSocketIOOutput(sio, "bot_uttered")
    asyncio.run(output.send_response("here", {"text": "您好"}))
    assert sio.emitted == [("bot_uttered", {"text": "您好"}, "here")]
    with pytest.raises(AgentMessageNotDelivered, match="handoff-not-delivered"):
        asyncio.run(output.send_response("gone", {"text": "您好"}))
    assert len(sio.emitted) == 1


def test_a_wechat_message_over_the_quota_is_not_delivered():
    from bot.channels.wechat.delivery import WeChatOutputChannel
    from bot.channels.wechat.render import RenderedTurn

    class _Delivery:
        def __init__(self, turn):
            self.turn = turn

        async def deliver(self, user_id, messages):
            return self.turn

    async def send(turn):
        async def delivery():
            return _Delivery(turn)

        await WeChatOutputChannel(delivery).send_response("u1", {"text": "您好"})

    asyncio.run(send(RenderedTurn(messages=[{"msgtype": "text"}])))
    with pytest.raises(AgentMessageNotDelivered):
        asyncio.run(send(RenderedTurn(dropped=1)))
    with pytest.raises(AgentMessageNotDelivered):
        asyncio.run(send(RenderedTurn(messages=[{"msgtype": "text"}], failed=1)))



def test_a_paused_conversation_whose_session_expired_is_left_to_rasa_which_starts_it_unpaused():
    agent = _paused_agent("g5")
    agent.processor._has_session_expired = lambda tracker: True
    desk = _Desk(HELD)
    handled, tracker, sent, passed = _run_gate(agent, "g5", "你好", desk)
    assert not handled and desk.seen == [] and sent == [] and passed == []  # the caller passes it on
    assert tracker.is_paused()  # unchanged here; Rasa's new session (SessionStarted) resets it
