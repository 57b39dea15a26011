"""Load and validate the fact files under ``data/knowledge/``, the tactics lexicon included.

Every phone number, article number, time limit and case the bot states comes from these files. Each entry
carries its ``source`` and a ``verified`` date; entries that are not confirmed carry a ``caveat`` that is
always shown with them. The files are validated with pydantic on load: a missing or wrong field raises
:class:`KnowledgeError` naming the file and the field, so a bad file stops start-up instead of leaving a
silent gap in a conversation.

A fact may carry ``valid_until`` (a policy with a deadline): after that day, as reckoned in China (UTC+8),
it is rendered as its ``expired_value`` (what the bot says once the policy has ended) or, without one, it is
withdrawn and every response quoting it is dropped (:func:`bot.replies.drop_withdrawn`). Legal entries
(provisions, cases, figures) also say what text was read on the ``verified`` day (``checked_against``), and
``legal_basis.yml`` names the entries behind responses that state law without quoting it.

Sources of the facts themselves: ``shared/DOMAIN.md`` and the primary texts named in each entry's ``source``.
"""
from __future__ import annotations

import datetime as dt
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Literal, Optional, Union

import yaml
from pydantic import BaseModel, Extra, ValidationError, root_validator, validator

from bot import PROJECT_ROOT

KNOWLEDGE_DIR = PROJECT_ROOT / "data" / "knowledge"
"""Default folder of the knowledge files."""

_KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")

CHINA_TIME = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
"""Mainland China's time (UTC+8 all year, no daylight saving): the day a ``valid_until`` is reckoned in."""


def today() -> dt.date:
    """Today's date in mainland China, the day against which ``valid_until`` is compared."""
    return dt.datetime.now(CHINA_TIME).date()


class KnowledgeError(ValueError):
    """A knowledge file is missing, unreadable or fails its schema; the message names file and field."""


def check_phone_number(value: Optional[str]) -> Optional[str]:
    """``value`` if it is shaped like a Chinese service number (95555, 400-820-5555) or None; else ValueError."""
    if value is not None and not re.fullmatch(r"\d{3,5}(-\d{3,4}){0,2}", value):
        raise ValueError(f"{value!r} is not a phone number")
    return value


class SourcedEntry(BaseModel):
    """Fields every fact carries: where it was read, when it was checked, and whether it is confirmed.

    ``caveat`` is required when ``status`` is ``unconfirmed`` and is shown with the fact.
    """

    source: str
    verified: dt.date
    status: Literal["confirmed", "unconfirmed"]
    caveat: Optional[str] = None

    class Config:
        extra = Extra.forbid

    @validator("source")
    def _source_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("source must not be empty")
        return value



def _join_cjk_lines(text: str) -> str:
    """Drop the spaces YAML folding puts between Chinese line breaks; keep spaces between Latin words."""
    return re.sub(r"(?<=[^\x00-\x7f])\s+|\s+(?=[^\x00-\x7f])", "", text).strip()


class Fact(SourcedEntry):
    """One statable fact: ``key`` is the template variable in domain/, ``value`` the text inserted.

    ``valid_until`` (optional) is the last day the fact holds; after it the fact renders as ``expired_value``
    (what is true once it has ended) or, without one, is withdrawn (:meth:`current_text` returns None).
    Raises (on load): a validation error when ``status`` is ``unconfirmed`` and no ``caveat`` is given, or
    when ``expired_value`` is given without ``valid_until``.
    """

    key: str
    value: str
    valid_until: Optional[dt.date] = None
    expired_value: Optional[str] = None

    @validator("value", "caveat", "expired_value")
    def _tidy_text(cls, value: Optional[str]) -> Optional[str]:
        return _join_cjk_lines(value) if value is not None else None

    @root_validator(skip_on_failure=True)
    def _unconfirmed_needs_caveat(cls, values: dict) -> dict:
        if values.get("status") == "unconfirmed" and not values.get("caveat"):
            raise ValueError("an unconfirmed entry needs a caveat that is shown with it")
        if values.get("expired_value") and not values.get("valid_until"):
            raise ValueError("expired_value is what is said after valid_until: give valid_until too")
        return values

    def expired_on(self, day: dt.date) -> bool:
        """True if ``day`` is after ``valid_until`` (never for a fact without one)."""
        return self.valid_until is not None and day > self.valid_until

    @validator("key")
    def _key_is_identifier(cls, value: str) -> str:
        if not _KEY_PATTERN.match(value):
            raise ValueError(f"key {value!r} must be lower_snake_case")
        return value

    def rendered(self) -> str:
        """The text a user sees while the fact holds: the value, then the caveat in brackets when unconfirmed."""
        return self.with_caveat(self.value)

    def current_text(self, day: dt.date) -> Optional[str]:
        """The text a user sees on ``day``: :meth:`rendered` until ``valid_until``, then ``expired_value`` (with
        the caveat when unconfirmed), or None when the fact has ended and has nothing to say after it."""
        if not self.expired_on(day):
            return self.rendered()
        return self.with_caveat(self.expired_value) if self.expired_value else None

    def with_caveat(self, text: str) -> str:
        """``text`` followed by the caveat in brackets when the fact is unconfirmed."""
        return f"{text}（{self.caveat}）" if self.status == "unconfirmed" else text


class LegalEntry(Fact):
    """A fact a legal statement rests on (provision, figure, case): ``checked_against`` says what text was read
    on the ``verified`` day (the primary text itself, or that the entry was copied from the team's brief and
    its source not re-read), so that a reviewer knows what the date vouches for."""

    checked_against: str

    @validator("checked_against")
    def _checked_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("checked_against must say what was read on the verified day")
        return value


class Channel(Fact):
    """An official channel (hotline, website or mini-program), from shared/DOMAIN.md §4."""

    name: str
    note: str = ""


class Provision(LegalEntry):
    """A legal provision; ``value`` is the citation, ``summary`` what it says (shared/DOMAIN.md §3, §5)."""

    summary: str

    @validator("summary")
    def _tidy_summary(cls, value: str) -> str:
        return _join_cjk_lines(value)


class Figure(LegalEntry):
    """A time limit or amount; ``value`` is written into replies, followed by ``unit`` in the template."""

    unit: str
    meaning: str


class Case(LegalEntry):
    """A reported case or announcement, ``value`` being the sentence the bot writes (shared/DOMAIN.md §3, §5)."""


class Institution(SourcedEntry):
    """A lender in the directory. Numbers are strings as dialled; ``None`` means no sourced number."""

    name: str
    kind: Literal["bank", "online_lender"]
    aliases: List[str]
    service_number: Optional[str] = None
    credit_card_number: Optional[str] = None

    _number_shape = validator("service_number", "credit_card_number", allow_reuse=True)(
        lambda cls, value: check_phone_number(value))


class Deployment(BaseModel):
    """The bank deploying the assistant (data/knowledge/deployment.yml), supplied by that bank itself.

    ``name`` must be an institution in banks.yml; its own numbers, when given, replace the directory's
    (they come from the bank, so they are shown without the unconfirmed caveat).
    """

    name: str
    self_references: List[str]
    hardship_app_path: Optional[str] = None
    service_number: Optional[str] = None
    credit_card_number: Optional[str] = None
    source: str
    verified: dt.date

    class Config:
        extra = Extra.forbid

    _number_shape = validator("service_number", "credit_card_number", allow_reuse=True)(
        lambda cls, value: check_phone_number(value))


class Knowledge(BaseModel):
    """All knowledge files, validated. Shapes: lists of the entry models above; ``deployment`` is None for a
    neutral assistant."""

    channels: List[Channel]
    provisions: List[Provision]
    figures: List[Figure]
    cases: List[Case]
    institutions: List[Institution]
    bank_advice: str
    deployment: Optional[Deployment] = None
    legal_basis: Dict[str, List[str]] = {}

    def facts(self) -> List[Fact]:
        """Every entry usable as a template variable (channels, provisions, figures, cases)."""
        return [*self.channels, *self.provisions, *self.figures, *self.cases]

    def legal_entries(self) -> List[LegalEntry]:
        """The entries legal statements rest on: provisions, figures and cases."""
        return [*self.provisions, *self.figures, *self.cases]

    def template_values(self, on: Optional[dt.date] = None) -> Dict[str, str]:
        """Map of template variable -> text on day ``on`` (default :func:`today`), for filling ``{key}``
        placeholders in domain/ responses. A fact past its ``valid_until`` gives its ``expired_value``; one
        without any is left out (see :meth:`withdrawn_keys`)."""
        day = on or today()
        values = {}
        for fact in self.facts():
            text = fact.current_text(day)
            if text is not None:
                values[fact.key] = text
        return values

    def withdrawn_keys(self, on: Optional[dt.date] = None) -> frozenset:
        """Keys of the facts that have ended by day ``on`` (default today) and have nothing to say after:
        a response quoting one must not be sent."""
        day = on or today()
        return frozenset(fact.key for fact in self.facts() if fact.current_text(day) is None)

    def fact(self, key: str) -> Fact:
        """The fact with this key. Raises KeyError if there is none."""
        for fact in self.facts():
            if fact.key == key:
                return fact
        raise KeyError(key)

    def statable_texts(self) -> List[str]:
        """Every text a reply may take numbers from: fact values, caveats and institution numbers."""
        texts = [fact.rendered() for fact in self.facts()]
        texts += [fact.with_caveat(fact.expired_value) for fact in self.facts() if fact.expired_value]
        numbered: List[Union[Institution, Deployment]] = [*self.institutions]
        if self.deployment:
            numbered.append(self.deployment)
        for inst in numbered:
            texts += [n for n in (inst.service_number, inst.credit_card_number) if n]
        texts.append(self.bank_advice)
        if self.deployment and self.deployment.hardship_app_path:
            texts.append(self.deployment.hardship_app_path)
        return texts


# file name -> (top-level field in that file, field of Knowledge)
_FILES = {
    "channels.yml": "channels",
    "provisions.yml": "provisions",
    "figures.yml": "figures",
    "cases.yml": "cases",
    "banks.yml": "institutions",
}


def _read_yaml(path: Path) -> dict:
    try:
        with path.open(encoding="utf-8") as handle:
            content = yaml.safe_load(handle)
    except FileNotFoundError as err:
        raise KnowledgeError(f"{path}: knowledge file is missing") from err
    except yaml.YAMLError as err:
        raise KnowledgeError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(content, dict):
        raise KnowledgeError(f"{path}: expected a mapping at the top level")
    return content


def load_knowledge(directory: Path = KNOWLEDGE_DIR) -> Knowledge:
    """Read and validate every knowledge file in ``directory``.

    Returns: a :class:`Knowledge`.
    Raises: :class:`KnowledgeError` naming the file and the field (e.g. ``channels.yml: channels.3.source:
    field required``) for a missing file, bad YAML, a schema violation or a duplicate key.
    """
    parsed = {}
    for file_name, field in _FILES.items():
        path = directory / file_name
        content = _read_yaml(path)
        if field not in content:
            raise KnowledgeError(f"{path}: top-level field '{field}' is missing")
        items = content[field]
        if not isinstance(items, list):
            raise KnowledgeError(f"{path}: '{field}' must be a list of mappings")
        model = Knowledge.__fields__[field].type_
        entries = []
        for index, item in enumerate(items):
            try:
                entries.append(model.parse_obj(item))
            except ValidationError as err:
                raise KnowledgeError(f"{path}: {_describe(err, f'{field}: {index}')}") from err
        parsed[field] = entries
    advice = _read_yaml(directory / "banks.yml").get("advice")
    if not isinstance(advice, str) or not advice.strip():
        raise KnowledgeError(f"{directory / 'banks.yml'}: top-level field 'advice' is missing or empty")
    knowledge = Knowledge(**parsed, bank_advice=advice, deployment=_load_deployment(directory),
                          legal_basis=_load_legal_basis(directory))
    _check_unique_keys(knowledge, directory)
    _check_legal_basis(knowledge, directory)
    if knowledge.deployment and knowledge.deployment.name not in {i.name for i in knowledge.institutions}:
        raise KnowledgeError(f"{_deployment_path(directory)}: deploying_institution.name: "
                             f"'{knowledge.deployment.name}' is not an institution in banks.yml")
    return knowledge


def _deployment_path(directory: Path) -> Path:
    override = os.environ.get("DEBT_HELP_DEPLOYMENT")
    return Path(override) if override else directory / "deployment.yml"


def _load_deployment(directory: Path) -> Optional[Deployment]:
    path = _deployment_path(directory)
    content = _read_yaml(path)
    if "deploying_institution" not in content:
        raise KnowledgeError(f"{path}: top-level field 'deploying_institution' is missing")
    if content["deploying_institution"] is None:
        return None
    try:
        return Deployment.parse_obj(content["deploying_institution"])
    except ValidationError as err:
        raise KnowledgeError(f"{path}: {_describe(err, 'deploying_institution')}") from err


def _load_legal_basis(directory: Path) -> Dict[str, List[str]]:
    """``legal_basis.yml``: response name -> the knowledge keys behind the legal statements it makes without
    quoting them. Raises KnowledgeError for a missing file or a wrong shape."""
    path = directory / "legal_basis.yml"
    content = _read_yaml(path)
    responses = content.get("responses")
    if not isinstance(responses, dict) or not all(
            isinstance(keys, list) and keys and all(isinstance(k, str) for k in keys) for keys in responses.values()):
        raise KnowledgeError(f"{path}: 'responses' must map response names to non-empty lists of knowledge keys")
    return {str(name): list(keys) for name, keys in responses.items()}


def _check_legal_basis(knowledge: Knowledge, directory: Path) -> None:
    legal = {entry.key for entry in knowledge.legal_entries()}
    for response, keys in knowledge.legal_basis.items():
        for key in keys:
            if key not in legal:
                raise KnowledgeError(f"{directory / 'legal_basis.yml'}: responses.{response}: '{key}' is not a "
                                     "provision, figure or case")


def _describe(err: ValidationError, where: str) -> str:
    parts = []
    for problem in err.errors():
        location = ".".join(str(p) for p in problem["loc"])
        parts.append(f"{where}.{location}: {problem['msg']}")
    return "; ".join(parts)


def _check_unique_keys(knowledge: Knowledge, directory: Path) -> None:
    seen: Dict[str, str] = {}
    for fact in knowledge.facts():
        if fact.key in seen:
            raise KnowledgeError(f"{directory}: key '{fact.key}' is defined twice")
        seen[fact.key] = fact.value
    names: Dict[str, str] = {}
    for inst in knowledge.institutions:
        for alias in [inst.name, *inst.aliases]:
            if alias in names and names[alias] != inst.name:
                raise KnowledgeError(
                    f"{directory / 'banks.yml'}: alias '{alias}' belongs to both "
                    f"{names[alias]} and {inst.name}"
                )
            names[alias] = inst.name


class TacticFlag(BaseModel):
    """One entry of the tactics lexicon (data/knowledge/tactics.yml, from shared/DOMAIN.md §2): an id, its kind,
    a Chinese label, literal patterns and/or regexes (each must compile), and its source."""

    id: str
    kind: str
    label: str
    patterns: List[str] = []
    regex: List[str] = []
    source: str
    verified: dt.date

    class Config:
        extra = Extra.forbid

    @validator("regex", each_item=True)
    def _compiles(cls, value: str) -> str:
        re.compile(value)
        return value


class TacticsLexicon(BaseModel):
    """The whole lexicon file: the flags, the doubt markers, and what makes a victim event not the user's own
    past act (``not_own_past_act``: group name -> markers searched in the clause before a match;
    ``condition_after``: markers that, right after a match, make it a condition)."""

    flags: List[TacticFlag]
    doubt_markers: List[str]
    not_own_past_act: Dict[str, List[str]] = {}
    condition_after: List[str] = []

    class Config:
        extra = Extra.forbid


def load_lexicon(path: Path = KNOWLEDGE_DIR / "tactics.yml") -> TacticsLexicon:
    """Read and validate the tactics lexicon (the risk engine's patterns, bot.risk). Raises KnowledgeError
    naming the file and the problem."""
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
        return TacticsLexicon.parse_obj(content)
    except FileNotFoundError as err:
        raise KnowledgeError(f"{path}: knowledge file is missing") from err
    except Exception as err:  # yaml and pydantic errors alike become one clear message
        raise KnowledgeError(f"{path}: {err}") from err


@lru_cache(maxsize=1)
def default_knowledge() -> Knowledge:
    """The project's knowledge, loaded once per process. Raises KnowledgeError like load_knowledge."""
    return load_knowledge(KNOWLEDGE_DIR)


def knowledge_version(directory: Path = KNOWLEDGE_DIR) -> str:
    """A short content hash of the files under ``directory`` (16 hex digits of SHA-256 over each file's relative
    path and bytes, in path order): which version of the facts an answer was built from. The compliance record
    stores it with each turn (bot.compliance.record)."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode("utf-8") + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@lru_cache(maxsize=1)
def default_knowledge_version() -> str:
    """:func:`knowledge_version` of the project's knowledge folder, computed once per process (the same process
    loads :func:`default_knowledge` once)."""
    return knowledge_version(KNOWLEDGE_DIR)
