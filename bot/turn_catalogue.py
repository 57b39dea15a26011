"""Every turn the bot can compose, rendered, for the turn-length limits (bot.details) and ``python -m bot
turn-lengths``.

A turn is what the bot sends between two user messages: the guidance plan of each topic in many states (red
flags, segments, banks, debt types), followed by the hand-over where the rules add one (distress, a victim);
each hardship plan and its channel card; each hand-over on its own; each detail a button opens; each response
the rules and stories send alone; and every turn again with room kept for the crisis reminder. Needs ``rasa``
(texts are rendered with Rasa's interpolator).
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from itertools import product
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from bot.crisis_reminder import REMINDER_RESPONSE
from bot.details import (
    FIRST_BUBBLE_CHARS,
    TURN_BUBBLES,
    TURN_CHARS,
    Details,
    FittedTurn,
    fit_action_turn,
    plan_detail,
    rendered_length,
)
from bot.guidance import TOPIC_RESPONSES, ConversationState, handoff_follows, plan_guidance
from bot.handoff.contract import IntakeAnswer, NewTicket
from bot.handoff.intake import DeskUnavailable, HandoffContext, open_handoff
from bot.hardship import HARDSHIP_REASONS, HardshipCase, build_plan
from bot.knowledge import Knowledge
from bot.replies import ReplyInstruction
from bot.risk import RiskEngine
from bot.texts import render_response

CARD = "<channel card>"
"""A custom message (the hardship plan's channel card): one bubble, no text."""

MESSAGES: Tuple[str, ...] = (
    "", "有人说能帮我停息挂账，靠谱吗", "招商银行的信用卡还不上了", "宇宙银行的网贷还不上了",
    "交了三千服务费，对方说不成功不收费，包上岸", "我把身份证和验证码给了他们", "交了服务费，还把身份证给了他们",
    "他们让我先别还了", "他们让我开假的贫困证明", "他们说可以恶意投诉逼银行减免", "想找反催收团队",
    "催收天天骂我，还打给我家人", "听说催收都是黑社会，好害怕", "我真的不想活了", "最近压力好大",
    "不成功不收费，交了服务费，把身份证给了他们，让我先别还了，开假证明，恶意投诉，反催收，骂我",
)
"""Messages that raise each red flag alone and many at once (masked text, as the actions see it)."""


@dataclass(frozen=True)
class Turn:
    """One rendered turn: ``label`` says how it arises; ``bubbles`` the texts (CARD for a card); ``names`` the
    responses; ``buttons`` the quick-reply titles after it."""

    label: str
    bubbles: Tuple[str, ...]
    names: Tuple[str, ...]
    buttons: Tuple[str, ...]

    @property
    def chars(self) -> int:
        """All characters of the turn's texts."""
        return sum(len(b) for b in self.bubbles if b != CARD)

    def problems(self) -> List[str]:
        """The limits this turn breaks (empty when it keeps them). The crisis reminder the turn supervisor
        appends is safety content and is never cut, so a turn it ends is measured without it (the actions keep
        room for it where the turn allows: bot.details.fit_action_turn)."""
        bubbles = self.bubbles[:-1] if self.names and self.names[-1] == REMINDER_RESPONSE else self.bubbles
        found = []
        if len(bubbles) > TURN_BUBBLES:
            found.append(f"{len(bubbles)} bubbles")
        if bubbles and len(bubbles[0]) > FIRST_BUBBLE_CHARS:
            found.append(f"first bubble {len(bubbles[0])} chars")
        chars = sum(len(b) for b in bubbles if b != CARD)
        if chars > TURN_CHARS:
            found.append(f"{chars} chars")
        return found


def _render(replies: Sequence[ReplyInstruction]) -> Tuple[List[str], List[str], List[str]]:
    texts, names, buttons = [], [], []
    for reply in replies:
        rendered = render_response(reply.response, reply.variables)
        texts.append(str(rendered.get("text") or ""))
        names.append(reply.response)
        buttons += [b["title"] for b in rendered.get("buttons") or []] + [b["title"] for b in reply.buttons]
    return texts, names, buttons


class _Desk:
    """A desk answering every ticket the same way (agents on duty or not), or down."""

    def __init__(self, on_duty: Optional[bool]) -> None:
        self.on_duty = on_duty

    def open_ticket(self, ticket: NewTicket) -> IntakeAnswer:
        if self.on_duty is None:
            raise DeskUnavailable("down")
        from bot.handoff.config import load_settings

        hours = load_settings({}).opening_hours.describe()  # the configured hours, as the desk tells them
        return IntakeAnswer(ticket_id="t", created=True, open_now=self.on_duty, opening_hours=hours,
                            agents_on_duty=self.on_duty, status="queued" if self.on_duty else "follow_up")


def _handoffs(intent: str, bank: Optional[str], knowledge: Knowledge) -> Iterator[Tuple[str, List[ReplyInstruction]]]:
    for channel, on_duty in product(("socketio", "rest"), (True, False, None)):
        context = HandoffContext("catalogue", channel, [], {"bank": bank, "risk_level": "high"}, intent, "转人工")
        yield f"handoff {channel} on_duty={on_duty}", open_handoff(context, _Desk(on_duty), knowledge).replies


class Catalogue:
    """Builds every turn; ``deferred`` collects what the turns moved behind buttons, to render the details."""

    def __init__(self, knowledge: Knowledge, engine: RiskEngine, details: Details) -> None:
        self.knowledge, self.engine, self.details = knowledge, engine, details
        self.pending: Dict[str, List[Dict]] = {}

    def _turn(self, label: str, actions: Sequence[List[ReplyInstruction]], cards: int = 0,
              reminder: bool = False) -> Turn:
        """Fit each action's replies as actions/replies.py does (the hand-over after the first when there are
        two), render them, and append the card and the crisis reminder as the channel would."""
        bubbles: List[str] = []
        names: List[str] = []
        buttons: List[str] = []
        for index, replies in enumerate(actions):
            last = index == len(actions) - 1
            fitted: FittedTurn = fit_action_turn(replies, self.details, names, sum(map(len, bubbles)), reminder,
                                                 cards if last else 0, handoff_follows=not last,
                                                 measure=rendered_length)
            texts, sent, titles = _render(fitted.replies)
            bubbles += texts
            names += sent
            buttons += titles
            for key, deferred in fitted.deferred.items():
                self.pending.setdefault(key, [{"response": r.response, "variables": r.variables} for r in deferred])
        bubbles += [CARD] * cards
        if reminder and not any(self.knowledge.template_values()["psychological_hotline"] in b for b in bubbles):
            bubbles.append(str(render_response(REMINDER_RESPONSE, self.knowledge.template_values())["text"]))
            names.append(REMINDER_RESPONSE)
        return Turn(label, tuple(bubbles), tuple(names), tuple(buttons))

    def guidance_turns(self, reminder: bool = False) -> Iterator[Turn]:
        """Each topic x message x debt type x earlier segment and flags, with the hand-over the rules add."""
        earlier = [(None, ()), ("victim", ("fee_paid",)), ("victim", ("data_handed_over",)),
                   ("victim", ("fee_paid", "data_handed_over")), ("victim", ()), ("misled", ()), ("fuzzy", ())]
        for topic, message, debt_type, (segment, flags) in product(TOPIC_RESPONSES, MESSAGES, (None, "信用卡", "网贷"),
                                                                   earlier):
            state = ConversationState(message, intent=topic, debt_type=debt_type, user_segment=segment,
                                      red_flags=flags)
            plan = plan_guidance(topic, state, self.knowledge, self.engine)
            label = f"{topic} | {message or '(button)'} | {debt_type} | {segment} {','.join(flags)}"
            if handoff_follows(topic, message):
                for how, handoff in _handoffs(topic, plan.slots.get("bank"), self.knowledge):  # type: ignore[arg-type]
                    yield self._turn(f"{label} + {how}", [plan.replies, handoff], reminder=reminder)
            else:
                yield self._turn(label, [plan.replies], reminder=reminder)

    def hardship_turns(self, reminder: bool = False) -> Iterator[Turn]:
        """Each hardship plan (lender x debt type x reason x overdue), the channel card after it."""
        lenders = [inst.name for inst in self.knowledge.institutions] + ["其他"]
        for lender, debt_type, reason, overdue in product(lenders, ("信用卡", "网贷", "房贷", "未说明"),
                                                          (*HARDSHIP_REASONS, "未说明"), ("yes", "no")):
            plan = build_plan(HardshipCase(lender, debt_type, reason, "2000", overdue), self.knowledge)
            yield self._turn(f"hardship plan | {lender} {debt_type} {reason} overdue={overdue}", [plan.replies],
                             cards=1, reminder=reminder)

    def handoff_turns(self) -> Iterator[Turn]:
        """A request for a person on its own, and after repeated misunderstandings, with and without a bank."""
        for intent, bank in product(("request_human", "nlu_fallback"), (None, "招商银行", "宇宙银行")):
            for how, replies in _handoffs(intent, bank, self.knowledge):
                yield self._turn(f"{intent} bank={bank} {how}", [replies])

    def detail_turns(self) -> Iterator[Turn]:
        """Each detail, as planned from what the turns above deferred and as a button pressed later."""
        for key in self.details.details:
            for source, pending in (("deferred", self.pending), ("static", {})):
                replies = plan_detail(key, pending, self.knowledge, self.details)
                yield self._turn(f"detail {key} ({source})", [replies])

    def single_turns(self, names: Sequence[str]) -> Iterator[Turn]:
        """Responses the rules, stories and forms send alone, with the knowledge values."""
        for name in names:
            yield self._turn(f"response {name}", [[ReplyInstruction(name, self.knowledge.template_values())]])

    def all_turns(self, single: Sequence[str] = ()) -> List[Turn]:
        """Every turn above, the guidance and hardship turns also with the crisis reminder's room kept."""
        turns = [*self.guidance_turns(), *self.hardship_turns(), *self.handoff_turns()]
        turns += [*self.guidance_turns(reminder=True), *self.hardship_turns(reminder=True)]
        turns += [*self.detail_turns(), *self.single_turns(single)]
        return turns


def sent_alone() -> List[str]:
    """The responses the rules and stories send as a step of their own (not through a custom action)."""
    from bot.project_files import dialogue_blocks

    names = {step["action"] for block in dialogue_blocks() for step in block.get("steps", [])
             if str(step.get("action", "")).startswith("utter_")}
    return sorted(names)


def summary(turns: Sequence[Turn]) -> str:
    """The longest turn and the distribution of turn and bubble lengths, as text for the CLI."""
    longest = max(turns, key=lambda t: t.chars)
    chars = [t.chars for t in turns]
    firsts = [len(t.bubbles[0]) for t in turns if t.bubbles]
    bubbles = [len(t.bubbles) for t in turns]
    lines = [f"{len(turns)} turns; limits: first bubble <= {FIRST_BUBBLE_CHARS}, turn <= {TURN_CHARS} chars, "
             f"<= {TURN_BUBBLES} bubbles",
             f"longest turn: {longest.chars} chars, {len(longest.bubbles)} bubbles: {longest.label}"]
    lines += [f"  [{i + 1}] {b}" for i, b in enumerate(longest.bubbles)]
    if longest.buttons:
        lines.append(f"  buttons: {' | '.join(longest.buttons)}")
    every = [len(b) for t in turns for b in t.bubbles if b != CARD]
    for title, values in (("turn chars", chars), ("first bubble chars", firsts), ("bubble (response) chars", every)):
        q = statistics.quantiles(values, n=10) if len(values) > 1 else values
        lines.append(f"{title}: min {min(values)}, median {statistics.median(values):.0f}, p90 {q[-1]:.0f}, "
                     f"max {max(values)}")
        edges = list(range(0, max(values) + 50, 50))
        for low in edges:
            count = sum(low <= v < low + 50 for v in values)
            if count:
                lines.append(f"  {low:>4}-{low + 49:<4} {count:>6} {'#' * max(1, round(60 * count / len(values)))}")
    lines.append("bubbles per turn: " + ", ".join(f"{n}: {bubbles.count(n)}" for n in sorted(set(bubbles)))
                 + f" (of which {sum(t.names[-1:] == (REMINDER_RESPONSE,) for t in turns)} end with the crisis "
                 "reminder, never cut)")
    broken = [t for t in turns if t.problems()]
    lines.append(f"turns over a limit: {len(broken)}")
    lines += [f"  {t.label}: {', '.join(t.problems())} {t.names}" for t in broken[:20]]
    return "\n".join(lines)
