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
