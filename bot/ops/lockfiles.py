"""Reading and writing the pip lock files in requirements/ (`name==version` pins with `--hash=sha256:` lines).

A lock file is pip's requirements format as `pip-compile --generate-hashes` writes it: comment lines, and one
requirement per entry whose continuation lines (ending in a backslash) carry its hashes:

    aiohttp==3.9.5 \\
        --hash=sha256:0605cc2c0088fcaae79f01c913a38611ad09ba68ff482402d3410bf59039bfb8 \\
        --hash=sha256:...

scripts/lock_hashes.py fills in the hashes from PyPI; scripts/setup installs with `--require-hashes`, so pip
refuses any file whose sha256 is not listed. tests/unit/test_lock_files.py checks that every entry is pinned and
hashed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?P<extras>\[[^\]]*\])?==(?P<version>[^\s;\\]+)$")
_HASH = re.compile(r"^--hash=sha256:(?P<digest>[0-9a-f]{64})$")


class LockFileError(ValueError):
    """A lock file entry that is not an `==` pin, or a malformed option, with its file and line number."""


@dataclass
class LockEntry:
    """One requirement of a lock file.

    name: the distribution name as written (e.g. "PyYAML"); extras: e.g. "[cryptography]" or "";
    version: the pinned version string; hashes: sha256 hex digests (64 lowercase hex characters each);
    line: the 1-based line number where the entry starts.
    """

    name: str
    extras: str
    version: str
    hashes: list[str] = field(default_factory=list)
    line: int = 0

    @property
    def key(self) -> str:
        """The normalised distribution name (PEP 503: lowercase, runs of -_. as one dash)."""
        return re.sub(r"[-_.]+", "-", self.name).lower()


@dataclass
class LockFile:
    """A parsed lock file: its leading comment block (lines without the newline) and its entries in order."""

    path: Path
    header: list[str]
    entries: list[LockEntry]


def parse_lock(path: Path) -> LockFile:
    """Parse a lock file.

    Comment lines before the first entry form the header; comments between entries are dropped (the writer
    never puts any there). Raises LockFileError for an entry that is not `name[extras]==version`, for a
    continuation token that is not `--hash=sha256:<64 hex>`, or for a file that ends inside an entry.
    """
    header: list[str] = []
    entries: list[LockEntry] = []
    current: LockEntry | None = None
    continued = False
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = raw.strip()
        if continued:
            assert current is not None
            continued = text.endswith("\\")
            token = text.rstrip("\\").strip()
            for part in token.split():
                match = _HASH.match(part)
                if match is None:
                    raise LockFileError(f"{path}:{number}: expected --hash=sha256:<digest>, found {part!r}")
                current.hashes.append(match.group("digest"))
            continue
        if not text:
            continue
        if text.startswith("#"):
            if not entries:
                header.append(raw)
            continue
        continued = text.endswith("\\")
        first, *rest = text.rstrip("\\").split()
        match = _PIN.match(first)
        if match is None:
            raise LockFileError(f"{path}:{number}: not an exact pin (name==version): {first!r}")
        current = LockEntry(match.group("name"), match.group("extras") or "", match.group("version"), [], number)
        for part in rest:
            hash_match = _HASH.match(part)
            if hash_match is None:
                raise LockFileError(f"{path}:{number}: expected --hash=sha256:<digest>, found {part!r}")
            current.hashes.append(hash_match.group("digest"))
        entries.append(current)
    if continued:
        raise LockFileError(f"{path}: ends with a continuation backslash")
    return LockFile(path, header, entries)


def render_lock(lock: LockFile) -> str:
    """The text of a lock file in pip-compile's layout: header, then each entry with one hash per line (sorted)."""
    lines = list(lock.header)
    for entry in lock.entries:
        pin = f"{entry.name}{entry.extras}=={entry.version}"
        digests = sorted(set(entry.hashes))
        if not digests:
            lines.append(pin)
            continue
        lines.append(pin + " \\")
        for index, digest in enumerate(digests):
            tail = " \\" if index < len(digests) - 1 else ""
            lines.append(f"    --hash=sha256:{digest}{tail}")
    return "\n".join(lines) + "\n"
