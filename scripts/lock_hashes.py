"""Write the sha256 hashes of every pinned distribution into the lock files in requirements/.

Usage (from the repository root, with any Python 3.11 that has `packaging`, e.g. the project's venv):

    .venv/bin/python scripts/lock_hashes.py                      # every requirements/*.lock
    .venv/bin/python scripts/lock_hashes.py requirements/dev.lock
    .venv/bin/python scripts/lock_hashes.py --pin pip==26.3      # change a pin (in whichever lock has it), then hash

For each `name==version` entry it reads PyPI's JSON API (https://pypi.org/pypi/<name>/json, the release's
file list with PyPI's own sha256 digests) and keeps the hashes of the files pip may pick on Linux with
CPython 3.11 (any CPU): the sdist, and the wheels tagged py3/py2.py3/cp311/abi3 for `any` or a Linux
platform. This is what `pip-compile --generate-hashes` records, less the Windows and macOS wheels and other
Pythons. Nothing else in the files changes. scripts/setup then installs with `--require-hashes`.

Exit status 1 if a pinned version is not on PyPI or has no file for this platform.
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import urllib.request
from pathlib import Path

from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.ops.lockfiles import LockFile, parse_lock, render_lock  # noqa: E402

PYPI_JSON = "https://pypi.org/pypi/{name}/json"


def _wheel_fits(tag: Tag) -> bool:
    """Whether a wheel tag can install on CPython 3.11 on Linux (any CPU)."""
    python_ok = tag.interpreter in {"py3", "py2", "py311", "cp311"} or (
        tag.abi == "abi3" and tag.interpreter.startswith("cp3") and int(tag.interpreter[3:] or 0) <= 11
    )
    abi_ok = tag.abi in {"none", "abi3", "cp311"}
    platform_ok = tag.platform == "any" or tag.platform.startswith(("manylinux", "musllinux", "linux"))
    return python_ok and abi_ok and platform_ok


def release_hashes(name: str, version: str, cache: dict[str, dict]) -> list[str]:
    """sha256 digests of the usable files of `name==version` on PyPI (see the module docstring).

    Raises LookupError if PyPI has no such release or no usable file in it.
    """
    key = canonicalize_name(name)
    if key not in cache:
        context = ssl.create_default_context()
        with urllib.request.urlopen(PYPI_JSON.format(name=key), timeout=120, context=context) as response:
            cache[key] = json.load(response)
    files = cache[key]["releases"].get(version)
    if not files:
        raise LookupError(f"{name}=={version} is not on PyPI")
    digests = []
    for item in files:
        filename = item["filename"]
        if item["packagetype"] == "sdist":
            digests.append(item["digests"]["sha256"])
            continue
        try:
            tags = parse_wheel_filename(filename)[3]
        except InvalidWheelFilename:
            continue
        if any(_wheel_fits(tag) for tag in tags):
            digests.append(item["digests"]["sha256"])
    if not digests:
        raise LookupError(f"{name}=={version} has no file for CPython 3.11 on Linux")
    return sorted(set(digests))


def main(argv: list[str] | None = None) -> int:
    """Rewrite the given lock files (default: requirements/*.lock) with fresh hashes; 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--pin", action="append", default=[], help="name==version to set before hashing")
    args = parser.parse_args(argv)
    paths = args.files or sorted((ROOT / "requirements").glob("*.lock"))
    pins = {}
    for pin in args.pin:
        name, _, version = pin.partition("==")
        pins[canonicalize_name(name)] = version
    cache: dict[str, dict] = {}
    failed = False
    locks: list[LockFile] = [parse_lock(path) for path in paths]
    for lock in locks:
        for entry in lock.entries:
            entry.version = pins.get(entry.key, entry.version)
            try:
                entry.hashes = release_hashes(entry.name, entry.version, cache)
            except LookupError as error:
                print(f"lock_hashes: {lock.path.name}: {error}", file=sys.stderr)
                failed = True
        lock.path.write_text(render_lock(lock), encoding="utf-8")
        print(f"lock_hashes: {lock.path.relative_to(ROOT)}: {len(lock.entries)} pins hashed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
