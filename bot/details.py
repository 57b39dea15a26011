"""Short turns, details on request: the limits of one bot turn, and the details kept behind quick-reply buttons.

A turn is every message the bot sends between two user messages. It answers first and briefly: the first
bubble at most :data:`FIRST_BUBBLE_CHARS` characters and the direct answer, at most :data:`TURN_BUBBLES`
bubbles and :data:`TURN_CHARS` characters in all. Whatever does not fit goes behind a button whose payload is
``/ask_detail{"detail":"<id>"}``; ``action_give_detail`` (actions/detail_actions.py) sends it.

``data/details.yml`` holds the content side (no text: the texts are domain responses):

* ``details``: id -> ``title`` (the button) and ``responses`` (the domain responses it sends, in order). A
  response listed under a detail is *deferrable*: a planned turn shows it inline while there is room and
  otherwise moves it behind that detail's button (:func:`fit_turn`).
* ``urgent``: responses never moved behind a button (crisis hotlines, a victim's stop-loss steps).
* ``covered_by``: response -> responses that already say the same; it is left out of a turn holding one of them.
* ``offers``: response -> the details it always offers (buttons), whether or not anything was moved out.

The deferred replies, with the values they were planned with, are kept in the ``pending_details`` slot so that
the button answers with exactly what was planned (a hardship plan's lender, a bank's number).
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

from bot import PROJECT_ROOT
from bot.knowledge import Knowledge
from bot.replies import ReplyInstruction, drop_withdrawn
from bot.texts import domain_responses, placeholders

DETAILS_PATH = PROJECT_ROOT / "data" / "details.yml"
"""The details file (see the module docstring)."""

FIRST_BUBBLE_CHARS = 120
"""The first bubble of a turn: at most this many characters (issue 19: "about 120")."""

TURN_CHARS = 350
"""All bubbles of a turn together: at most this many characters."""

TURN_BUBBLES = 3
"""At most this many bubbles in a turn (a custom card counts as one)."""

DETAIL_INTENT = "ask_detail"
"""The intent of a detail button's payload."""

DETAIL_ENTITY = "detail"
"""The payload's entity naming the detail id."""

PENDING_SLOT = "pending_details"
"""Slot: detail id -> the deferred replies as ``[{"response", "variables"}]``."""


HANDOFF_RESERVE_CHARS = 130
"""Room a guidance action keeps for the hand-over the rules run after it in the same turn (a victim, danger):
the longest hand-over reply (domain/handoff.yml) with the opening hours."""


class DetailsError(ValueError):
    """data/details.yml is malformed or names a response the domain lacks; the message says where."""


@dataclass(frozen=True)
class Detail:
    """One detail: ``id`` (ASCII, in the payload), ``title`` (the button), ``responses`` (domain responses)."""

    id: str
    title: str
    responses: Tuple[str, ...]


@dataclass(frozen=True)
class Details:
    """The validated details file: ``details`` by id, the ``urgent`` responses, ``covered_by`` and ``offers``."""

    details: Dict[str, Detail]
    urgent: frozenset
    covered_by: Dict[str, Tuple[str, ...]]
    offers: Dict[str, Tuple[str, ...]] = field(default_factory=dict)

    def detail_of(self, response: str) -> Optional[Detail]:
        """The detail a deferrable ``response`` belongs to, or None (then it is never deferred)."""
        for detail in self.details.values():
            if response in detail.responses:
                return detail
        return None


def load_details(path: Path = DETAILS_PATH, responses: Optional[Mapping[str, Any]] = None) -> Details:
    """Read and check ``path``: every id ASCII, every title non-empty, every response in the domain, a response
    under one detail at most and never both urgent and deferrable. Raises DetailsError naming the problem."""
    known = responses if responses is not None else domain_responses()
    content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    details: Dict[str, Detail] = {}
    seen: Dict[str, str] = {}
    for key, entry in (content.get("details") or {}).items():
        if not str(key).isascii() or not str(key).replace("_", "").isalpha():
            raise DetailsError(f"{path}: detail id {key!r} must be ASCII letters and underscores")
        title = str((entry or {}).get("title") or "").strip()
        names = tuple((entry or {}).get("responses") or ())
        if not title or not names:
            raise DetailsError(f"{path}: detail {key}: a title and at least one response are required")
        for name in names:
            if name not in known:
                raise DetailsError(f"{path}: detail {key}: no response {name!r} in domain/")
            if name in seen:
                raise DetailsError(f"{path}: response {name} is under both {seen[name]} and {key}")
            seen[name] = key
        details[key] = Detail(key, title, names)
    urgent = frozenset(content.get("urgent") or ())
    for name in urgent:
        if name not in known:
            raise DetailsError(f"{path}: urgent: no response {name!r} in domain/")
        if name in seen:
            raise DetailsError(f"{path}: {name} is urgent and cannot be under detail {seen[name]}")
    covered = {str(k): tuple(v) for k, v in (content.get("covered_by") or {}).items()}
    offers = {str(k): tuple(v) for k, v in (content.get("offers") or {}).items()}
    for name, ids in offers.items():
        if name not in known or not set(ids) <= set(details):
            raise DetailsError(f"{path}: offers: {name} is not a response or offers an unknown detail: {ids}")
    return Details(details, urgent, covered, offers)


@lru_cache(maxsize=1)
def default_details() -> Details:
    """:func:`load_details` of the project's file, read once."""
    return load_details()


def detail_button(detail: Detail) -> Dict[str, str]:
    """The quick-reply button opening ``detail``: ``{"title", "payload": '/ask_detail{"detail":"<id>"}'}``."""
    payload = json.dumps({DETAIL_ENTITY: detail.id}, separators=(",", ":"))
    return {"title": detail.title, "payload": f"/{DETAIL_INTENT}{payload}"}


@dataclass(frozen=True)
class FittedTurn:
    """A turn cut to the limits: ``replies`` to send now (the last one carries the detail buttons) and
    ``deferred``: detail id -> the replies moved behind its button."""

    replies: List[ReplyInstruction]
    deferred: Dict[str, List[ReplyInstruction]] = field(default_factory=dict)


Measure = Callable[[ReplyInstruction], int]
"""The rendered length of one reply, in characters."""


def rendered_length(reply: ReplyInstruction) -> int:
    """The characters of ``reply``'s text as Rasa's NLG fills it (bot.texts.render_response; needs ``rasa``)."""
    from bot.texts import render_response

    return len(render_response(reply.response, reply.variables).get("text") or "")


def template_length(reply: ReplyInstruction) -> int:
    """The characters of ``reply``'s text filled by plain substitution (rasa-sdk only, as the action server
    runs): the same count as :func:`rendered_length` for every response, whose placeholders are all given."""
    text = str(domain_responses()[reply.response][0].get("text") or "")
    for key in set(placeholders(reply.response)):
        text = text.replace("{" + key + "}", str(reply.variables.get(key, "{" + key + "}")))
    return len(text)


def fit_turn(replies: Sequence[ReplyInstruction], details: Details, measure: Measure = template_length,
             before: Sequence[str] = (), reserved_bubbles: int = 0, reserved_chars: int = 0) -> FittedTurn:
    """Cut the ``replies`` an action planned to the turn limits.

    ``before``: the names of the responses this turn already sent (an earlier action of the same turn, e.g. the
    crisis answer before the hand-over), whose length ``measure`` cannot know, so they count as whole bubbles
    of their own: their characters are passed in ``reserved_chars``; ``reserved_bubbles``/``reserved_chars``:
    room kept for messages sent after the action (the crisis reminder, a channel card). The first reply of the
    turn, urgent and non-deferrable replies are always sent; a deferrable one is sent while the turn has room
    and otherwise goes behind its detail's button; a reply ``covered_by`` one already in the turn is dropped.
    The buttons of the details the sent replies offer (``offers``) and of every deferred detail follow the
    last reply sent, once each.
    """
    present = set(before)
    candidates = [r for r in replies if not present & set(details.covered_by.get(r.response, ()))]
    lengths = [measure(r) for r in candidates]
    first_is_new = not before
    must = [(i == 0 and first_is_new) or details.detail_of(r.response) is None or r.response in details.urgent
            for i, r in enumerate(candidates)]
    bubbles = len(before) + reserved_bubbles + sum(must)
    chars = reserved_chars + sum(n for n, m in zip(lengths, must, strict=True) if m)
    keep = list(must)
    deferred: Dict[str, List[ReplyInstruction]] = {}
    for i, reply in enumerate(candidates):  # the deferrable ones, in order, while the turn has room
        if keep[i]:
            continue
        if bubbles + 1 <= TURN_BUBBLES and chars + lengths[i] <= TURN_CHARS:
            keep[i] = True
            bubbles += 1
            chars += lengths[i]
        else:
            detail = details.detail_of(reply.response)
            assert detail is not None
            deferred.setdefault(detail.id, []).append(reply)
    kept = [r for r, k in zip(candidates, keep, strict=True) if k]
    present |= {r.response for r in kept}
    offered = [key for reply in kept for key in details.offers.get(reply.response, ())
               if not present & set(details.details[key].responses)]
    wanted = [key for i, key in enumerate([*offered, *deferred]) if key not in [*offered, *deferred][:i]]
    if wanted and kept:
        last = kept[-1]
        buttons = tuple(last.buttons) + tuple(detail_button(details.details[key]) for key in wanted)
        kept[-1] = ReplyInstruction(last.response, last.variables, buttons)
    return FittedTurn(kept, deferred)


def fit_action_turn(replies: Sequence[ReplyInstruction], details: Details, before: Sequence[str] = (),
                    before_chars: int = 0, reminder_follows: bool = False, cards_follow: int = 0,
                    handoff_follows: bool = False, measure: Measure = template_length) -> FittedTurn:
    """:func:`fit_turn` for one action of a turn: ``before``/``before_chars`` what the turn already sent,
    ``reminder_follows`` whether the turn supervisor may append ``utter_crisis_reminder`` (room is kept for it),
    ``cards_follow`` custom messages the action sends after these (a hardship plan's channel card);
    ``handoff_follows``: the rules run ``action_handoff`` next in this turn (room for one reply is kept)."""
    from bot.crisis_reminder import REMINDER_RESPONSE
    from bot.texts import response_text

    reserved_bubbles, reserved_chars = cards_follow, before_chars
    if handoff_follows:
        reserved_bubbles += 1
        reserved_chars += HANDOFF_RESERVE_CHARS
    if reminder_follows:
        reserved_bubbles += 1
        reserved_chars += len(response_text(REMINDER_RESPONSE))
    return fit_turn(replies, details, measure, before=before, reserved_bubbles=reserved_bubbles,
                    reserved_chars=reserved_chars)


def pending_value(fitted: FittedTurn, previous: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The ``pending_details`` slot after ``fitted``: ``previous`` updated with its deferred replies, each
    stored with only the variables its response uses (so the slot holds no unneeded facts)."""
    value: Dict[str, Any] = dict(previous or {})
    for key, replies in fitted.deferred.items():
        value[key] = [{"response": r.response,
                       "variables": {k: r.variables[k] for k in set(placeholders(r.response)) if k in r.variables}}
                      for r in replies]
    return value


def plan_detail(detail_id: Optional[str], pending: Optional[Mapping[str, Any]], knowledge: Knowledge,
                details: Details, on: Optional[dt.date] = None) -> List[ReplyInstruction]:
    """The replies answering the button of ``detail_id``.

    In the detail's order: what the turn deferred (``pending``, the slot) with its planned values, framed by the
    detail's own ``utter_detail_*`` texts; with nothing deferred, every response of the detail whose
    placeholders the knowledge files fill alone (a bank line or a hardship plan bubble needs the planned
    values, so it is not guessed). Facts withdrawn by day ``on`` are left out (bot.replies.drop_withdrawn).
    An unknown id, or nothing to send, gives ``utter_detail_unknown``.
    """
    facts = knowledge.template_values(on)
    detail = details.details.get(detail_id or "")
    stored = [item for item in (pending or {}).get(detail_id or "") or [] if item.get("response") in domain_responses()]
    replies: List[ReplyInstruction] = []
    if detail is None:
        return [ReplyInstruction("utter_detail_unknown", dict(facts))]
    for name in detail.responses:  # the detail's order; its own utter_detail_* texts frame what was deferred
        planned = [item for item in stored if item["response"] == name]
        replies += [ReplyInstruction(name, {**facts, **dict(item.get("variables") or {})}) for item in planned]
        fillable = set(placeholders(name)) <= set(facts)
        if not planned and fillable and (not stored or name.startswith("utter_detail_")):
            replies.append(ReplyInstruction(name, dict(facts)))
    replies = drop_withdrawn(replies, knowledge, on)
    return replies or [ReplyInstruction("utter_detail_unknown", dict(facts))]
