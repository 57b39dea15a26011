"""Train the Rasa model only when its inputs changed, keyed by a content hash.

The key is a SHA-256 over the files that define the model (config.yml, domain/, the NLU data, the rules and
stories in data/dialogue/ and the jieba dictionary) plus the Rasa version. The model is stored as
``models/<key>.tar.gz``; an unchanged project finds it and starts without retraining.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterable, List

from bot import PROJECT_ROOT

MODEL_DIR = PROJECT_ROOT / "models"
"""Where trained models are kept."""

TRAINING_INPUTS = ("config.yml", "domain", "data/nlu", "data/dialogue", "data/jieba")
"""Files and folders (relative to the project root) whose content defines the model."""


def _files(root: Path, entries: Iterable[str]) -> List[Path]:
    files: List[Path] = []
    for entry in entries:
        path = root / entry
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"training input {path} is missing")
    return files


def training_key(root: Path = PROJECT_ROOT) -> str:
    """Hex SHA-256 (first 16 chars) of the training inputs' paths and bytes plus the Rasa version.

    Raises FileNotFoundError if a training input is missing.
    """
    from rasa import __version__ as rasa_version

    digest = hashlib.sha256(f"rasa {rasa_version}\n".encode())
    for path in _files(root, TRAINING_INPUTS):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def model_path(root: Path = PROJECT_ROOT) -> Path:
    """Where the model for the current training inputs is (or will be) stored."""
    return root / "models" / f"{training_key(root)}.tar.gz"


def ensure_model(root: Path = PROJECT_ROOT, quiet: bool = False) -> Path:
    """Return the model for the current inputs, training it first (``rasa train``) if it does not exist.

    Raises subprocess.CalledProcessError if training fails.
    """
    target = model_path(root)
    if target.exists():
        if not quiet:
            print(f"Model is up to date: {target.relative_to(root)}")
        return target
    print(f"Training inputs changed; training {target.relative_to(root)} (a few minutes on 2 cores)...")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name.replace(".tar.gz", "-partial"))
    subprocess.run(
        [sys.executable, "-m", "rasa", "train", "--out", str(target.parent),
         "--fixed-model-name", partial.name, "--config", "config.yml", "--domain", "domain",
         "--data", "data/nlu", "data/dialogue"],
        cwd=root, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    Path(str(partial) + ".tar.gz").rename(target)
    return target
