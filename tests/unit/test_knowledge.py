"""The knowledge files load, and a bad file fails at load with the file and the field named."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from bot.knowledge import KNOWLEDGE_DIR, KnowledgeError, load_knowledge


def test_every_entry_has_source_and_verified_date(knowledge):
    entries = [*knowledge.facts(), *knowledge.institutions]
    assert len(entries) >= 40
    for entry in entries:
        assert entry.source.strip()
        assert entry.verified.year >= 2026


def test_unconfirmed_facts_are_rendered_with_their_caveat(knowledge):
    unconfirmed = [fact for fact in knowledge.facts() if fact.status == "unconfirmed"]
    assert unconfirmed, "the one-time credit repair announcement is unconfirmed and must be marked so"
    for fact in unconfirmed:
        assert fact.caveat in knowledge.template_values()[fact.key]


def test_distress_hotline_is_the_sourced_one(knowledge):
    assert knowledge.fact("psychological_hotline").value == "12356"
    assert knowledge.fact("nfra_hotline").value == "12378"


def _copy_knowledge(tmp_path: Path) -> Path:
    target = tmp_path / "knowledge"
    shutil.copytree(KNOWLEDGE_DIR, target)
    return target


def _edit(path: Path, change) -> None:
    content = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(content)
    path.write_text(yaml.safe_dump(content, allow_unicode=True), encoding="utf-8")


def test_missing_source_names_file_and_field(tmp_path):
    directory = _copy_knowledge(tmp_path)
    _edit(directory / "channels.yml", lambda c: c["channels"][2].pop("source"))
    with pytest.raises(KnowledgeError) as error:
        load_knowledge(directory)
    assert "channels.yml" in str(error.value)
    assert "channels: 2.source: field required" in str(error.value)


def test_bad_date_names_file_and_field(tmp_path):
    directory = _copy_knowledge(tmp_path)
    _edit(directory / "figures.yml", lambda c: c["figures"][0].update(verified="last week"))
    with pytest.raises(KnowledgeError, match=r"figures.yml: figures: 0.verified"):
        load_knowledge(directory)


def test_unconfirmed_without_caveat_is_rejected(tmp_path):
    directory = _copy_knowledge(tmp_path)
    _edit(directory / "channels.yml", lambda c: c["channels"][0].update(status="unconfirmed"))
    with pytest.raises(KnowledgeError, match="needs a caveat"):
        load_knowledge(directory)


def test_alias_shared_by_two_banks_is_rejected(tmp_path):
    directory = _copy_knowledge(tmp_path)
    _edit(directory / "banks.yml", lambda c: c["institutions"][1]["aliases"].append("工行"))
    with pytest.raises(KnowledgeError, match="alias '工行' belongs to both"):
        load_knowledge(directory)


def test_malformed_yaml_and_missing_file(tmp_path):
    directory = _copy_knowledge(tmp_path)
    (directory / "cases.yml").write_text("cases: [unclosed", encoding="utf-8")
    with pytest.raises(KnowledgeError, match="cases.yml: not valid YAML"):
        load_knowledge(directory)
    (directory / "cases.yml").unlink()
    with pytest.raises(KnowledgeError, match="cases.yml: knowledge file is missing"):
        load_knowledge(directory)


def test_invalid_phone_number_in_directory_is_rejected(tmp_path):
    directory = _copy_knowledge(tmp_path)
    _edit(directory / "banks.yml", lambda c: c["institutions"][0].update(service_number="call us"))
    with pytest.raises(KnowledgeError, match="institutions: 0.service_number"):
        load_knowledge(directory)


def test_check_command_reports_a_bad_file(tmp_path, monkeypatch, capsys):
    import bot.__main__ as cli
    import bot.knowledge as knowledge_module

    directory = _copy_knowledge(tmp_path)
    _edit(directory / "provisions.yml", lambda c: c["provisions"][0].pop("summary"))
    monkeypatch.setattr(knowledge_module, "KNOWLEDGE_DIR", directory)
    monkeypatch.setattr(cli, "default_knowledge", lambda: load_knowledge(directory))
    assert cli.main(["check"]) == 1
    assert "provisions.yml" in capsys.readouterr().err


def test_expired_value_without_valid_until_is_rejected(tmp_path):
    directory = _copy_knowledge(tmp_path)
    _edit(directory / "cases.yml", lambda c: c["cases"][-1].pop("valid_until"))
    with pytest.raises(KnowledgeError, match="give valid_until too"):
        load_knowledge(directory)


def test_legal_entries_say_what_was_read_on_the_verified_day(tmp_path, knowledge):
    for entry in knowledge.legal_entries():
        assert entry.checked_against.strip(), entry.key
    directory = _copy_knowledge(tmp_path)
    _edit(directory / "provisions.yml", lambda c: c["provisions"][0].pop("checked_against"))
    with pytest.raises(KnowledgeError, match="provisions: 0.checked_against: field required"):
        load_knowledge(directory)


def test_legal_basis_must_name_legal_entries(tmp_path):
    directory = _copy_knowledge(tmp_path)
    _edit(directory / "legal_basis.yml", lambda c: c["responses"].update(utter_segment_fuzzy=["nfra_hotline"]))
    with pytest.raises(KnowledgeError, match="'nfra_hotline' is not a provision, figure or case"):
        load_knowledge(directory)


def test_criminal_articles_and_cases_cite_the_text_or_the_report_not_the_teams_notes(knowledge):
    for entry in [*knowledge.provisions, *knowledge.cases]:
        if entry.key.startswith("crime_") or entry.key.startswith("case_"):
            assert "shared/DOMAIN.md" not in entry.source.split(";")[0], entry.key


def test_the_illegal_debt_collection_article_is_only_for_illegal_debts(knowledge):
    summary = knowledge.fact("crime_illegal_collection").summary
    assert "非法债务" in summary and "不适用于银行" in summary


def test_a_policy_past_its_deadline_says_it_has_ended(knowledge):
    import datetime as dt

    policy = knowledge.fact("policy_one_time_credit_repair")
    assert policy.valid_until == dt.date(2026, 3, 31)
    before = knowledge.template_values(dt.date(2026, 3, 31))["policy_one_time_credit_repair"]
    after = knowledge.template_values(dt.date(2026, 4, 1))["policy_one_time_credit_repair"]
    assert "如已在2026年3月31日前足额还款" in before
    assert "期限已经过了" in after and "如已在" not in after
    assert policy.caveat in before and policy.caveat in after  # still unconfirmed either way


def test_a_policy_with_nothing_to_say_after_its_deadline_is_withdrawn(tmp_path):
    import datetime as dt

    directory = _copy_knowledge(tmp_path)
    _edit(directory / "cases.yml", lambda c: c["cases"][-1].pop("expired_value"))
    knowledge = load_knowledge(directory)
    assert "policy_one_time_credit_repair" in knowledge.template_values(dt.date(2026, 3, 31))
    assert "policy_one_time_credit_repair" not in knowledge.template_values(dt.date(2026, 4, 1))
    assert knowledge.withdrawn_keys(dt.date(2026, 4, 1)) == {"policy_one_time_credit_repair"}
