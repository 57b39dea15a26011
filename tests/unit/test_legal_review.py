"""docs/legal-review.md matches the knowledge, every legal statement maps to an entry, and the statements
issue 19 found wrong are gone."""
from __future__ import annotations

import re

import pytest

from bot import PROJECT_ROOT
from bot.legal_review import REVIEW_PATH, render_review, statement_basis, unmapped_legal_responses
from bot.texts import domain_responses


def test_the_review_file_is_generated_from_the_current_knowledge(knowledge):
    assert REVIEW_PATH.read_text(encoding="utf-8") == render_review(knowledge, domain_responses()), \
        "docs/legal-review.md is stale: run python -m bot legal-review"


def test_every_legal_sounding_response_rests_on_a_knowledge_entry(knowledge):
    assert unmapped_legal_responses(knowledge, domain_responses()) == []


def test_the_review_lists_each_legal_response_and_each_entry_with_its_source(knowledge):
    text = REVIEW_PATH.read_text(encoding="utf-8")
    for name in statement_basis(knowledge, domain_responses()):
        assert f"| `{name}` |" in text
    for entry in knowledge.legal_entries():
        assert f"| `{entry.key}` |" in text and entry.verified.isoformat() in text
    assert "《刑法》第二百九十三条之一" in text and "不适用于银行" in text


def test_the_readme_links_the_review():
    assert "(docs/legal-review.md)" in (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")


def _all_text() -> str:
    return "\n".join(str(v.get("text") or "") for variants in domain_responses().values() for v in variants)


@pytest.mark.parametrize("claim", ["不会因此坐牢", "只有一条", "责任最后也会落到", "打一个电话就能", "侦破",
                                   "向法院起诉"])
def test_the_unsourced_or_wrong_claims_are_gone(knowledge, claim):
    assert claim not in _all_text()
    assert all(claim not in fact.rendered() for fact in knowledge.facts())


def test_the_illegal_debt_article_is_cited_only_for_illegal_debts():
    for name, variants in domain_responses().items():
        for variant in variants:
            text = str(variant.get("text") or "")
            if "{crime_illegal_collection}" in text:
                clause = re.split(r"[。\n]", text[:text.index("{crime_illegal_collection}")])[-1]
                assert "非法债务" in clause or "高利贷" in clause, name


def test_the_instalment_plan_answer_says_what_the_agreement_settles_about_interest():
    text = domain_responses()["utter_hardship_plan_art70_terms"][0]["text"]
    assert "是否继续收取利息和费用" in text and "没有义务" in text
