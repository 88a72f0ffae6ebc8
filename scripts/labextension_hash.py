"""Hash of the lab extension's sources, stamped beside the committed build.

``scripts/build-labextension.sh`` writes it to ``kitteh_magic/labextension/source-hash.txt``;
``tests/test_labextension_build.py`` recomputes it and fails when the sources changed without a
rebuild. (Rebuilding and diffing is not reliable: a build in another folder gives other module ids.)

Usage: ``python scripts/labextension_hash.py [--write]``.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("labextension/src", "labextension/style", "labextension/schema",
           "labextension/package.json", "labextension/tsconfig.json")
STAMP = ROOT / "kitteh_magic" / "labextension" / "source-hash.txt"


def source_files(root: Path = ROOT) -> list[Path]:
    """The files whose content decides the build, sorted."""
    found: list[Path] = []
    for name in SOURCES:
        path = root / name
        found.extend([p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path])
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def source_hash(root: Path = ROOT) -> str:
    """SHA-256 over each source's relative path and bytes."""
    digest = hashlib.sha256()
    for path in source_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


if __name__ == "__main__":
    value = source_hash()
    if "--write" in sys.argv[1:]:
        STAMP.write_text(value + "\n")
    print(value)
