"""Every alias in the lender directory resolves to its institution; unknown names resolve to nothing."""
from __future__ import annotations

from bot.directory import find_institutions_in_text, institution_numbers, resolve_institution


def test_every_alias_resolves_to_its_institution(knowledge):
    for institution in knowledge.institutions:
        for alias in [institution.name, *institution.aliases]:
            assert resolve_institution(alias, knowledge) is institution, alias


def test_unknown_and_empty_names_resolve_to_none(knowledge):
    for name in ("宇宙银行", "", None, "某某网贷"):
        assert resolve_institution(name, knowledge) is None


def test_institutions_are_found_inside_a_sentence(knowledge):
    found = find_institutions_in_text("招行和工行的信用卡都逾期了", knowledge)
    assert [i.name for i in found] == ["招商银行", "中国工商银行"]


def test_longest_alias_wins_and_latin_aliases_need_word_boundaries(knowledge):
    assert [i.name for i in find_institutions_in_text("中国银行的卡", knowledge)] == ["中国银行"]
    assert find_institutions_in_text("my email is cabcd@x.com", knowledge) == []
    assert [i.name for i in find_institutions_in_text("ICBC card", knowledge)] == ["中国工商银行"]


def test_numbers_shown_for_an_institution(knowledge):
    cmb = resolve_institution("招行", knowledge)
    assert institution_numbers(cmb) == ["95555", "信用卡 400-820-5555"]
    assert institution_numbers(resolve_institution("邮储", knowledge)) == []
