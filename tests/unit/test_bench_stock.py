"""The stock baseline's files: rasa init's project, the Chinese pipeline and examples, a stable model key."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.bench.run import parse_clients, project_endpoints
from bot.bench.stock import CHINESE_EXAMPLES, model_key, prepare, stock_server_command, with_chinese_examples


def test_chinese_examples_are_appended_to_their_intents():
    nlu = {"version": "3.1", "nlu": [{"intent": "greet", "examples": "- hi\n- hello\n"},
                                     {"synonym": "bank", "examples": "- 银行\n"}]}
    result = with_chinese_examples(nlu, {"greet": ["你好", "您好"]})
    assert result["nlu"][0]["examples"] == "- hi\n- hello\n- 你好\n- 您好\n"
    assert result["nlu"][1] == nlu["nlu"][1]
    assert nlu["nlu"][0]["examples"] == "- hi\n- hello\n"  # the input is not changed
    with pytest.raises(KeyError, match="mood_unhappy"):
        with_chinese_examples(nlu, {"mood_unhappy": ["难过"]})


def test_prepare_writes_rasa_init_with_a_chinese_pipeline(tmp_path):
    prepare(tmp_path)
    config = yaml.safe_load((tmp_path / "config.yml").read_text(encoding="utf-8"))
    assert config["language"] == "zh"
    assert [c["name"] for c in config["pipeline"]] == ["JiebaTokenizer", "CountVectorsFeaturizer",
                                                       "CountVectorsFeaturizer", "DIETClassifier",
                                                       "EntitySynonymMapper"]
    assert {p["name"] for p in config["policies"]} == {"MemoizationPolicy", "RulePolicy", "TEDPolicy"}
    nlu = yaml.safe_load((tmp_path / "data" / "nlu.yml").read_text(encoding="utf-8"))
    by_intent = {e["intent"]: e["examples"] for e in nlu["nlu"] if "intent" in e}
    assert set(CHINESE_EXAMPLES) == set(by_intent)
    for intent, texts in CHINESE_EXAMPLES.items():
        assert 4 <= len(texts) and all(f"- {t}\n" in by_intent[intent] for t in texts)
    assert "- hello\n" in by_intent["greet"]  # rasa init's own examples stay
    assert (tmp_path / "domain.yml").exists() and (tmp_path / "data" / "stories.yml").exists()
    assert not (yaml.safe_load((tmp_path / "endpoints.yml").read_text()) or {}).get("action_endpoint")  # none
    key = model_key(tmp_path)
    prepare(tmp_path)
    assert model_key(tmp_path) == key  # idempotent: the cached model is found again
    (tmp_path / "data" / "nlu.yml").write_text("changed", encoding="utf-8")
    assert model_key(tmp_path) != key


def test_the_stock_server_is_loopback_with_the_api():
    tmp_model = Path("m.tar.gz")
    command = stock_server_command(tmp_model, 5999)
    assert command[1:4] == ["-m", "rasa", "run"]
    assert "--enable-api" in command and command[command.index("--interface") + 1] == "127.0.0.1"
    assert command[command.index("--model") + 1] == str(tmp_model)


def test_project_endpoints_move_only_the_tracker_file(tmp_path):
    path = project_endpoints(tmp_path)
    text = path.read_text(encoding="utf-8")
    assert f'db: "{tmp_path / "tracker.db"}"' in text and "var/tracker.db" not in text


def test_parse_clients():
    assert parse_clients("1,8,32") == [1, 8, 32]
    assert parse_clients("4") == [4]
    for bad in ("", "0,8", "a", "1,-2"):
        with pytest.raises(ValueError):
            parse_clients(bad)


def test_the_outage_reply_is_recognised():
    from bot.bench.run import outage_reply_flag
    from bot.channels.turns import FALLBACK, FALLBACK_DANGER
    from bot.texts import response_text

    flag = outage_reply_flag()
    for name in (FALLBACK, FALLBACK_DANGER):
        filled = response_text(name).replace("{", "").replace("}", "")
        assert flag([{"recipient_id": "a", "text": "您好"}, {"recipient_id": "a", "text": filled}])
    assert not flag([{"recipient_id": "a", "text": "可以自己直接和银行或贷款机构协商，免费，不需要任何中介。"}])
    assert not flag([]) and not flag(None)


def test_reply_text():
    from bot.bench.run import reply_text

    assert reply_text([{"text": "Here is something to cheer you up:"}, {"image": "https://x/y.jpg"},
                       {"text": "Did that help you?"}]) == \
        "Here is something to cheer you up: / [image] / Did that help you?"
    assert reply_text([{"custom": {"a": 1}}, "junk", {"text": ""}]) == "[custom]"
