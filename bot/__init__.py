"""The debt-help assistant's own library: knowledge, privacy, risk, guidance, channels and the CLI.

Everything here is importable and testable without a running Rasa server; `actions/` and the channel
classes are thin adapters around it.
"""
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""Absolute path of the repository root (the folder holding config.yml and domain/)."""
