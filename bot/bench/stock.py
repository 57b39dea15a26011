"""The stock Rasa baseline of the benchmark: ``rasa init``'s project with a plain Chinese pipeline.

Built from the installed Rasa, never downloaded: the files are the ones ``rasa init --no-prompt`` copies (Rasa's
own ``rasa.cli.scaffold.create_initial_project``, called directly so that ``rasa init`` does not first train an
English model that would be thrown away), then

* ``config.yml`` is replaced by :data:`STOCK_CONFIG` (language ``zh``: JiebaTokenizer, two CountVectorsFeaturizers,
  DIETClassifier, EntitySynonymMapper; MemoizationPolicy, RulePolicy, TEDPolicy; no ResponseSelector);
* ``data/nlu.yml`` gets the Chinese examples of :data:`CHINESE_EXAMPLES` added to each intent, so that the
  benchmark's message (a hardship complaint) is understood as ``mood_unhappy`` and answered;
* the domain, rules, stories, credentials.yml and endpoints.yml stay as ``rasa init`` writes them: no action
  server, conversations in memory.

The folder is ``var/bench/stock-<Rasa version>/``; the model is trained once and kept as
``models/<key>.tar.gz`` in it, where the key hashes the Rasa version and the baseline's training files, so a
change to this module or a Rasa upgrade trains a new one and an unchanged baseline is reused.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Mapping, Sequence

import yaml

from bot import PROJECT_ROOT

STOCK_CONFIG = """\
# The benchmark's stock baseline (bot/bench/stock.py): Rasa's default pipeline for a language without
# whitespace, nothing of the project's own.
recipe: default.v1
assistant_id: stock_zh_baseline
language: zh

pipeline:
  - name: JiebaTokenizer
  - name: CountVectorsFeaturizer
  - name: CountVectorsFeaturizer
    analyzer: char_wb
    min_ngram: 1
    max_ngram: 4
  - name: DIETClassifier
    epochs: 100
  - name: EntitySynonymMapper

policies:
  - name: MemoizationPolicy
  - name: RulePolicy
  - name: TEDPolicy
    max_history: 5
    epochs: 100
"""
"""The baseline's config.yml."""

CHINESE_EXAMPLES: Dict[str, List[str]] = {
    "greet": ["你好", "您好", "嗨", "早上好", "晚上好", "在吗", "哈喽"],
    "goodbye": ["再见", "拜拜", "回头见", "晚安", "下次再聊", "先这样吧再见"],
    "affirm": ["是的", "对", "好的", "没错", "当然", "嗯嗯可以"],
    "deny": ["不是", "不要", "不用了", "算了吧", "没有", "不行"],
    "mood_great": ["我很好", "挺好的", "心情不错", "太棒了", "我很开心", "今天特别顺利"],
    "mood_unhappy": ["我很难过", "心情不好", "欠了很多钱还不上", "信用卡逾期了好焦虑", "我还不起贷款了",
                     "最近压力很大", "网贷还不上怎么办"],
    "bot_challenge": ["你是机器人吗", "我是在跟真人说话吗", "你是人工客服吗", "你是真人吗"],
}
"""Chinese examples added to each intent of ``rasa init``'s NLU data (a handful per intent)."""

TRAINING_FILES = ("config.yml", "domain.yml", "data/nlu.yml", "data/rules.yml", "data/stories.yml")
"""The baseline's files that define its model (relative to its folder); their bytes make the model key."""


def rasa_version() -> str:
    """The installed Rasa's version string, e.g. ``"3.6.21"``."""
    from rasa import __version__

    return str(__version__)


def default_folder() -> Path:
    """Where the baseline is built and cached: ``<project>/var/bench/stock-<Rasa version>/``."""
    return PROJECT_ROOT / "var" / "bench" / f"stock-{rasa_version()}"


def with_chinese_examples(nlu: Mapping, examples: Mapping[str, Sequence[str]] = CHINESE_EXAMPLES) -> dict:
    """``nlu`` (a parsed Rasa NLU file: ``{"version", "nlu": [{"intent", "examples": "- a\\n- b\\n"}]}``) with
    ``examples[intent]`` appended to the examples of each intent it names; other entries are kept as they are.

    Raises KeyError if ``examples`` names an intent the file does not have.
    """
    result = dict(nlu)
    entries = [dict(entry) for entry in nlu.get("nlu", [])]
    seen = set()
    for entry in entries:
        intent = entry.get("intent")
        if isinstance(intent, str) and intent in examples:
            seen.add(intent)
            extra = "".join(f"- {text}\n" for text in examples[intent])
            entry["examples"] = str(entry.get("examples", "")).rstrip("\n") + "\n" + extra
    missing = set(examples) - seen
    if missing:
        raise KeyError(f"the NLU data has no intent {', '.join(sorted(missing))}")
    result["nlu"] = entries
    return result


class _LiteralDumper(yaml.SafeDumper):
    pass


def _literal_strings(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _literal_strings)


def prepare(folder: Path) -> None:
    """Write the baseline's project into ``folder`` (created if needed): ``rasa init``'s files, then the Chinese
    config and examples. Idempotent: the same installed Rasa always writes the same bytes. Its ``models/`` and
    Rasa's ``.rasa/`` cache in the folder are kept."""
    from rasa.cli.scaffold import scaffold_path

    source = Path(scaffold_path())
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.rglob("*")):
        if "__pycache__" in path.parts or not path.is_file():
            continue
        target = folder / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    (folder / "config.yml").write_text(STOCK_CONFIG, encoding="utf-8")
    nlu = yaml.safe_load((source / "data" / "nlu.yml").read_text(encoding="utf-8"))
    (folder / "data" / "nlu.yml").write_text(
        yaml.dump(with_chinese_examples(nlu), Dumper=_LiteralDumper, allow_unicode=True, sort_keys=False),
        encoding="utf-8")


def model_key(folder: Path) -> str:
    """Hex SHA-256 (first 16 characters) of the Rasa version and the paths and bytes of TRAINING_FILES in
    ``folder``. Raises FileNotFoundError if one is missing (call :func:`prepare` first)."""
    digest = hashlib.sha256(f"rasa {rasa_version()}\n".encode())
    for name in TRAINING_FILES:
        digest.update(name.encode() + b"\0" + (folder / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def stock_env() -> Dict[str, str]:
    """The environment the baseline is trained and served with: ours, TensorFlow quiet, Rasa's telemetry off
    (nothing leaves the machine)."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", "RASA_TELEMETRY_ENABLED": "false"}


def ensure_stock_model(folder: Path | None = None, quiet: bool = False) -> Path:
    """The baseline's trained model (``<folder>/models/<key>.tar.gz``), preparing the folder and training it
    first (``rasa train``, a few minutes on 2 cores) when no model for the current key exists.

    ``folder`` defaults to :func:`default_folder`. Raises subprocess.CalledProcessError if training fails.
    """
    folder = folder or default_folder()
    prepare(folder)
    key = model_key(folder)
    target = folder / "models" / f"{key}.tar.gz"
    if target.exists():
        if not quiet:
            print(f"Stock baseline model is cached: {target}", flush=True)
        return target
    print(f"Training the stock Rasa baseline once ({target}; a few minutes on 2 cores)...", flush=True)
    partial = f"{key}-partial"
    with (folder / "train.log").open("wb") as log:
        subprocess.run(
            [sys.executable, "-m", "rasa", "train", "--config", "config.yml", "--domain", "domain.yml",
             "--data", "data", "--out", "models", "--fixed-model-name", partial],
            cwd=folder, env=stock_env(), check=True, stdout=log, stderr=subprocess.STDOUT,
        )
    (folder / "models" / f"{partial}.tar.gz").rename(target)
    return target


def stock_server_command(model: Path, port: int) -> List[str]:
    """The command line that serves the baseline as ``rasa run`` would after ``rasa init``: the REST channel and
    the HTTP API (``--enable-api``, no token) on 127.0.0.1:``port``, the folder's credentials and endpoints."""
    return [sys.executable, "-m", "rasa", "run", "--enable-api", "--interface", "127.0.0.1", "--port", str(port),
            "--model", str(model), "--credentials", "credentials.yml", "--endpoints", "endpoints.yml"]
