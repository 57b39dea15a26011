"""The Rasa launcher adds the API token in-process only, and CORS is granted only to configured origins."""
from __future__ import annotations

import stat

from bot.ops.rasa_launcher import rasa_argv
from bot.ops.servers import cors_arguments, private_directory


def test_the_token_is_added_to_a_run_only_when_set():
    assert rasa_argv(["run", "--port", "1"], "secret") == ["rasa", "run", "--port", "1", "--auth-token", "secret"]
    assert rasa_argv(["run"], "") == ["rasa", "run"]
    assert rasa_argv(["train"], "secret") == ["rasa", "train"]


def test_cors_only_for_configured_origins_and_never_a_wildcard():
    assert cors_arguments({}) == []
    assert cors_arguments({"RASA_CORS_ORIGINS": "*"}) == []
    assert cors_arguments({"RASA_CORS_ORIGINS": "https://bank.example, https://m.bank.example *"}) == [
        "--cors", "https://bank.example", "https://m.bank.example"]


def test_private_directory_is_700_and_its_files_600(tmp_path):
    folder = tmp_path / "var"
    folder.mkdir(mode=0o755)
    (folder / "tracker.db").write_text("x")
    (folder / "tracker.db").chmod(0o644)
    private_directory(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "tracker.db").stat().st_mode) == 0o600


def test_rasas_structured_log_lines_are_masked_without_a_per_message_pipeline(caplog):
    import structlog
    from rasa.utils.log_utils import configure_structlog

    from bot.log_masking import register

    register()
    register()  # once only
    configure_structlog()
    caplog.set_level("INFO")
    mobile, resident_id = "13812345678", "11010519491231002X"
    structlog.get_logger().error("rest.message.received.failure", text=f"我的手机{mobile}，身份证{resident_id}",
                                 tracker_latest_message={"text": mobile})
    printed = caplog.text
    assert "rest.message.received.failure" in printed
    assert mobile not in printed and resident_id not in printed
    from rasa.plugin import plugin_manager

    # No anonymisation plugin: with one, Rasa's processor would read the whole tracker again on every message.
    assert plugin_manager().hook.get_anonymization_pipeline() is None
