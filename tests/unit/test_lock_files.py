"""The lock files in requirements/ are exact and hashed, scripts/setup installs every one with --require-hashes,
and no pin with a published advisory falls back below the version chosen for it (README, "Dependencies and
hashes")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.version import Version

from bot.ops.lockfiles import LockEntry, LockFileError, parse_lock, render_lock

ROOT = Path(__file__).resolve().parents[2]
LOCKS = sorted((ROOT / "requirements").glob("*.lock"))

# The version chosen for each pin that has (or had) a published advisory: the fixed release where Rasa 3.6.21
# allows it (pip), else the highest release Rasa's bound allows (README's "Pins held back" table).
ADVISORY_FLOORS = {
    "pip": "26.3",
    "aiohttp": "3.9.5",
    "protobuf": "4.23.3",
    "dnspython": "2.3.0",
    "sentry-sdk": "1.14.0",
    "pydantic": "1.10.9",
    "setuptools": "70.3.0",
    "pymongo": "4.3.3",
    "skops": "0.9.0",
    "keras": "2.12.0",
    "scikit-learn": "1.1.3",
    "wheel": "0.45.1",
    "pytest": "8.4.2",
}


def _all_entries() -> list[tuple[Path, LockEntry]]:
    return [(lock, entry) for lock in LOCKS for entry in parse_lock(lock).entries]


def test_the_lock_files_are_found() -> None:
    names = {lock.name for lock in LOCKS}
    assert {"bootstrap.lock", "rasa-deps.lock", "rasa.lock", "dev.lock"} <= names


@pytest.mark.parametrize("lock", LOCKS, ids=lambda path: path.name)
def test_every_line_is_a_comment_or_part_of_a_hashed_pin(lock: Path) -> None:
    entries = parse_lock(lock).entries
    assert entries, f"{lock.name} pins nothing"
    for entry in entries:
        assert entry.hashes, f"{lock.name}:{entry.line}: {entry.name}=={entry.version} has no --hash"
    # Line by line: nothing but comments, pins ending in a continuation, and hash lines.
    lines = [line.strip() for line in lock.read_text(encoding="utf-8").splitlines() if line.strip()]
    for number, line in enumerate(lines):
        if line.startswith("#"):
            continue
        if line.startswith("--hash=sha256:"):
            assert re.fullmatch(r"--hash=sha256:[0-9a-f]{64}( \\)?", line), f"{lock.name}: {line!r}"
            continue
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?==\S+ \\", line), (
            f"{lock.name}: {line!r} is not a pin followed by its hashes"
        )
        assert lines[number + 1].startswith("--hash=sha256:")


def test_a_package_pinned_in_two_lock_files_has_one_version_and_one_set_of_hashes() -> None:
    seen: dict[str, tuple[Path, LockEntry]] = {}
    for lock, entry in _all_entries():
        if entry.key in seen:
            other_lock, other = seen[entry.key]
            assert (entry.version, sorted(entry.hashes)) == (other.version, sorted(other.hashes)), (
                f"{entry.name} differs between {lock.name} and {other_lock.name}"
            )
        seen[entry.key] = (lock, entry)


def test_no_advisory_pin_falls_below_its_chosen_version() -> None:
    pinned = {entry.key: entry.version for _, entry in _all_entries()}
    for name, floor in ADVISORY_FLOORS.items():
        assert name in pinned, f"{name} is no longer pinned in requirements/*.lock"
        assert Version(pinned[name]) >= Version(floor), f"{name} {pinned[name]} is below {floor}"


def test_the_readme_lists_each_held_back_pin_at_its_locked_version() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("**Pins held back.**", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| ([A-Za-z0-9._-]+) \| ([0-9][^ |]*) \|", section, flags=re.MULTILINE))
    pinned = {entry.key: entry.version for _, entry in _all_entries()}
    assert set(rows) == set(ADVISORY_FLOORS) - {"pip"}
    for name, version in rows.items():
        assert pinned[name] == version, f"README says {name} {version}, the lock pins {pinned[name]}"


def test_setup_installs_every_lock_file_with_require_hashes() -> None:
    setup = (ROOT / "scripts" / "setup").read_text(encoding="utf-8")
    # Join continuation lines, then look at every command that runs pip.
    commands = setup.replace("\\\n", " ").splitlines()
    pip_runs = [line for line in commands if "pip install" in line]
    assert pip_runs, "scripts/setup no longer runs pip install"
    assert all("--require-hashes" in line for line in pip_runs), pip_runs
    installed = set(re.findall(r"-r requirements/([\w.-]+\.lock)", setup))
    assert installed == {lock.name for lock in LOCKS}


def test_parse_refuses_a_range_and_a_malformed_hash(tmp_path: Path) -> None:
    ranged = tmp_path / "ranged.lock"
    ranged.write_text("aiohttp>=3.9 \\\n    --hash=sha256:" + "a" * 64 + "\n", encoding="utf-8")
    with pytest.raises(LockFileError, match="not an exact pin"):
        parse_lock(ranged)
    short = tmp_path / "short.lock"
    short.write_text("aiohttp==3.9.5 \\\n    --hash=sha256:abc\n", encoding="utf-8")
    with pytest.raises(LockFileError, match="expected --hash"):
        parse_lock(short)


def test_render_round_trips_a_lock_file() -> None:
    for lock in LOCKS:
        assert render_lock(parse_lock(lock)) == lock.read_text(encoding="utf-8"), lock.name
