"""Find a seller's details in one user message, before it is masked: the candidate lead (docs/compliance.md).

What is taken, and only when the message attributes it to the seller (data/leads/cues.yml):

* **contacts**: mobile and landline numbers, WeChat ids, QQ numbers and e-mail addresses, as bot.privacy finds
  them (``find_pii_spans``), each kept only when the nearest owner cue before it in its sentence is a seller
  cue (他, 对方, 客服, 中介, 群主, 给我的, ...), or, with no owner cue in its clause, a seller cue follows it at once
  ("138... 打给我的"). The user's own cue (我的, 本人, 家人...) or a third party's (银行, 催收, 法院...) keeps it out,
  and so does no cue at all: the user's own number is never guessed into a lead;
* **names**: a WeChat or QQ group, a company, platform, app or agency named in quotes or as "叫X的群/公司/平台",
  or ending in 有限公司 / 律师事务所; not a generic word ("信用卡公司"), not after the user's own cue in its clause
  (我的, 我们, 本人...) or a third party's, not followed by 上班/工作 (the user's employer is not a lead);
* **where it advertised** (抖音, 小红书, 公众号...) and **fees** (an amount after or before 服务费, 定金,
  交了..., read by bot.quantities, or a percentage after 收/抽/按): recorded with a lead, never a lead by themselves.

Never taken: resident ID numbers, bank cards, verification codes, long numbers (whoever they belong to).
Nothing here stores anything; :func:`extract_candidate` returns the candidate or None.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

from bot import PROJECT_ROOT
from bot.privacy import detection_view, find_pii_spans
from bot.quantities import parse_amount_yuan

CUES_FILE = PROJECT_ROOT / "data" / "leads" / "cues.yml"
"""The owner cues, platforms, organisation words and fee words."""

CONTACT_FIELDS = {"mobile": "phones", "landline": "phones", "wechat_id": "wechat_ids", "qq": "qq_ids",
                  "email": "emails"}
"""bot.privacy kind -> LeadCandidate field. Every other kind (ID, card, code, long number) is never taken."""

MIN_FEE_YUAN = 10
"""Smallest amount read as a fee, in yuan (below it, a number is more likely a count than money)."""

_SENTENCE_BREAK = re.compile(r"[。！？!?\n]")
_CLAUSE_BREAK = re.compile(r"[，,；;。！？!?\n]")
_OPEN, _CLOSE = "“\"「『《‘'", "”\"」』》’'"
_NAME_CHARS = rf"[^\s，。,.!！?？；;{_OPEN}{_CLOSE}的]"
_NAME_SELF_MARKERS = ("我的", "我们", "本人", "我自己", "我家")
_EMPLOYER_AFTER = re.compile(r"^.{0,6}(?:上班|工作|任职|打工)")


@dataclass(frozen=True)
class LeadCandidate:
    """A seller's details from one conversation: each field a tuple of distinct strings, first seen first.

    ``phones`` digits only (``+`` kept), ``fees`` like ``3000元`` or ``6%``.
    """

    phones: Tuple[str, ...] = ()
    wechat_ids: Tuple[str, ...] = ()
    qq_ids: Tuple[str, ...] = ()
    emails: Tuple[str, ...] = ()
    groups: Tuple[str, ...] = ()
    organisations: Tuple[str, ...] = ()
    platforms: Tuple[str, ...] = ()
    fees: Tuple[str, ...] = ()

    IDENTIFYING = ("phones", "wechat_ids", "qq_ids", "emails", "groups", "organisations")

    def identifying(self) -> bool:
        """True if it names the seller somehow (a contact, group or organisation), not only a platform or fee."""
        return any(getattr(self, name) for name in self.IDENTIFYING)

    def kinds(self) -> List[str]:
        """The names of the fields that hold something (no values: safe to log or put into metadata)."""
        return [f.name for f in fields(self) if getattr(self, f.name)]

    def merged(self, other: LeadCandidate) -> LeadCandidate:
        """Both candidates' details, ``self``'s first, without duplicates."""
        return LeadCandidate(**{f.name: _unique([*getattr(self, f.name), *getattr(other, f.name)])
                                for f in fields(self)})

    def as_dict(self) -> Dict[str, List[str]]:
        """Field -> list of values (for storage and export)."""
        return {f.name: list(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> LeadCandidate:
        """The inverse of :meth:`as_dict`; unknown keys and non-string values are ignored."""
        return cls(**{f.name: tuple(str(v) for v in data.get(f.name) or () if isinstance(v, str))
                      for f in fields(cls)})


@dataclass(frozen=True)
class Cues:
    """data/leads/cues.yml, read once."""

    seller: Tuple[str, ...]
    self_: Tuple[str, ...]
    other: Tuple[str, ...]
    seller_after: Tuple[str, ...]
    platforms: Tuple[str, ...]
    organisation_words: Tuple[str, ...]
    group_words: Tuple[str, ...]
    generic_names: frozenset = field(default_factory=frozenset)
    fee_words: Tuple[str, ...] = ()


@lru_cache(maxsize=1)
def load_cues() -> Cues:
    """The cues of CUES_FILE. Raises KeyError naming a missing list, yaml's error for a broken file."""
    raw = yaml.safe_load(CUES_FILE.read_text(encoding="utf-8"))

    def words(key: str) -> Tuple[str, ...]:
        values = raw[key]
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise ValueError(f"{CUES_FILE.name}: {key} must be a list of words")
        return tuple(values)

    return Cues(seller=words("seller"), self_=words("self"), other=words("other"),
                seller_after=words("seller_after"), platforms=words("platforms"),
                organisation_words=words("organisation_words"), group_words=words("group_words"),
                generic_names=frozenset(words("generic_names")), fee_words=words("fee_words"))


def _unique(values: Sequence[str]) -> Tuple[str, ...]:
    seen: List[str] = []
    for value in values:
        if value and value not in seen:
            seen.append(value)
    return tuple(seen)


def _sentence_start(text: str, position: int) -> int:
    breaks = [m.end() for m in _SENTENCE_BREAK.finditer(text, 0, position)]
    return breaks[-1] if breaks else 0


def _clause_start(text: str, position: int) -> int:
    breaks = [m.end() for m in _CLAUSE_BREAK.finditer(text, 0, position)]
    return breaks[-1] if breaks else 0


def nearest_owner(text: str, position: int, cues: Cues) -> Tuple[Optional[str], int]:
    """The owner cue nearest before ``position`` in its sentence: ``("seller" | "self" | "other" | None, where
    it ends)``. Of cues ending at the same place the longest wins, so 给我的 (seller) beats 我的 (self); a seller cue
    right after a third party's (银行客服, 催收公司) is the third party's."""
    start = _sentence_start(text, position)
    window = text[start:position]
    best: Tuple[int, int, Optional[str]] = (-1, 0, None)
    for kind, words in (("seller", cues.seller), ("self", cues.self_), ("other", cues.other)):
        for word in words:
            for match in re.finditer(re.escape(word), window):
                candidate = (match.end(), len(word), kind)
                if candidate[:2] > best[:2]:
                    best = candidate
    end, length, owner = best
    if owner == "seller":  # 银行客服, 催收公司, 银行的客服: the bank's or collector's staff, not the seller's
        before = window[max(0, end - length - 3):end - length]
        if any(word in before for word in cues.other):
            owner = "other"
    return owner, start + end if end >= 0 else start


def _seller_follows(text: str, end: int, cues: Cues) -> bool:
    tail = re.sub(r"^[\s，,这个号码的是]{0,4}", "", text[end:end + 12])
    return any(tail.startswith(word) for word in cues.seller_after)


def _contact_value(text: str, start: int, end: int, kind: str) -> str:
    raw = text[start:end]
    if kind in ("mobile", "landline", "qq"):
        view, _ = detection_view(raw)
        return ("+" if view.lstrip().startswith("+") else "") + re.sub(r"\D", "", view)
    return raw.strip()


def _contacts(text: str, cues: Cues) -> Dict[str, List[str]]:
    found: Dict[str, List[str]] = {}
    for start, end, kind in find_pii_spans(text):
        target = CONTACT_FIELDS.get(kind)
        if target is None:
            continue
        # a WeChat id span is the id only; its owner cue may sit in "他微信" right before it
        owner, cue_end = nearest_owner(text, start, cues)
        in_clause = owner is not None and cue_end > _clause_start(text, start)
        if owner == "seller" or (not in_clause and owner != "self" and _seller_follows(text, end, cues)) or (
                owner is None and _seller_follows(text, end, cues)):
            found.setdefault(target, []).append(_contact_value(text, start, end, kind))
    return found


def _name_allowed(text: str, start: int, name: str, cues: Cues) -> bool:
    clause = text[_clause_start(text, start):start]
    if any(marker in clause for marker in _NAME_SELF_MARKERS):
        return False
    if _EMPLOYER_AFTER.search(text[start + len(name):]):
        return False
    if nearest_owner(text, start, cues)[0] == "other":
        return False
    bare = name.strip()
    for word in ("有限公司", "律师事务所"):
        bare = bare.removesuffix(word)
    return len(bare) >= 2 and bare not in cues.generic_names and not re.fullmatch(r"[\d\W_]+", bare)


def _alternatives(words: Sequence[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


def _names(text: str, cues: Cues) -> Dict[str, List[str]]:
    found: Dict[str, List[str]] = {"groups": [], "organisations": []}
    for target, words in (("groups", cues.group_words), ("organisations", cues.organisation_words)):
        kinds = _alternatives(words)
        patterns = [
            rf"(?:{kinds})(?:名|名字|名称)?(?:叫做?|是|为)?[:：]?\s*[{_OPEN}]([^{_CLOSE}\n]{{2,30}})[{_CLOSE}]",
            rf"[{_OPEN}]([^{_CLOSE}\n]{{2,30}})[{_CLOSE}](?:这个|那个|这家|那家)?(?:{kinds})",
            rf"叫做?({_NAME_CHARS}{{2,20}}?)的(?:{kinds})",
        ]
        for pattern in patterns:
            for match in re.finditer(pattern, text):
                name = match.group(1).strip()
                if _name_allowed(text, match.start(1), name, cues):
                    found[target].append(name)
    for match in re.finditer(r"([\u4e00-\u9fff]{2,16}(?:有限公司|律师事务所))", text):
        name = re.split(r"[叫是个家在了和跟被让说]", match.group(1))[-1]
        if not name.endswith(("有限公司", "律师事务所")):
            continue
        if _name_allowed(text, match.start(1), name, cues):
            found["organisations"].append(name)
    return found


_AMOUNT = (r"(?:\d+(?:\.\d+)?|[零一二两三四五六七八九十百千万]+)\s*(?:[万wWkK千][零一二三四五六七八九\d]?)?\s*"
           r"(?:块钱|块|元|rmb)?")


def _fees(text: str, cues: Cues) -> List[str]:
    fees: List[str] = []
    words = _alternatives(cues.fee_words)
    for match in re.finditer(rf"(?:{words})[^\d零一二两三四五六七八九十百千万\n，,。]{{0,4}}({_AMOUNT})", text):
        amount = match.group(1)
        if re.search(r"[%％]|个点", text[match.end(1):match.end(1) + 2]):
            continue
        yuan = parse_amount_yuan(re.sub(r"\s", "", amount))
        if yuan is not None and yuan >= MIN_FEE_YUAN and len(re.sub(r"\D", "", amount)) <= 8:
            fees.append(f"{yuan}元")
    for match in re.finditer(rf"({_AMOUNT})的?(?:{words})", text):
        yuan = parse_amount_yuan(re.sub(r"\s", "", match.group(1)))
        if yuan is not None and yuan >= MIN_FEE_YUAN and len(re.sub(r"\D", "", match.group(1))) <= 8:
            fees.append(f"{yuan}元")
    for match in re.finditer(r"(?:收|抽|按|要)[^\d\n，,。]{0,8}?(\d+(?:\.\d+)?)\s*(?:%|％|个点)", text):
        fees.append(f"{match.group(1)}%")
    return fees


def extract_candidate(text: str) -> Optional[LeadCandidate]:
    """The seller's details in ``text`` (a user's message before masking), or None when it names no seller
    (no contact, group or organisation attributed to one). Never raises for a string."""
    if not isinstance(text, str) or not text:
        return None
    cues = load_cues()
    contacts = _contacts(text, cues)
    names = _names(text, cues)
    candidate = LeadCandidate(
        phones=_unique(contacts.get("phones", [])), wechat_ids=_unique(contacts.get("wechat_ids", [])),
        qq_ids=_unique(contacts.get("qq_ids", [])), emails=_unique(contacts.get("emails", [])),
        groups=_unique(names["groups"]), organisations=_unique(names["organisations"]),
        platforms=_unique([p for p in cues.platforms if p in text]), fees=_unique(_fees(text, cues)))
    return candidate if candidate.identifying() else None
