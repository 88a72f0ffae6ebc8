"""Step keys and lineage tokens: a versioned contract, pinned by golden values in the tests.

A step key names one version of a step: the session, its normalised code and the fingerprints
of its inputs. Every encoding starts with a tag that carries ``FORMAT_VERSION``, and every field
is length-prefixed, so no two different inputs encode alike (``("ab", "c")`` vs ``("a", "bc")``).
Changing anything here changes every key: bump ``FORMAT_VERSION`` and update the golden values.

>>> len(step_key("s", "code", {"x": "0" * 32}))
32
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import xxhash

#: Version of the key encoding; part of every key, so old records are misses, not wrong hits.
FORMAT_VERSION: Final = 1

_STEP_TAG: Final = f"kitteh_magic/step/{FORMAT_VERSION}"
_VALUE_TAG: Final = f"kitteh_magic/value/{FORMAT_VERSION}"
_CODE_TAG: Final = f"kitteh_magic/code/{FORMAT_VERSION}"


def _hash(*fields: str) -> str:
    """xxh3-128 of length-prefixed UTF-8 fields, as 32 hex digits."""
    h = xxhash.xxh3_128()
    for text in fields:
        data = text.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return str(h.hexdigest())


def step_key(session: str, normalized_code: str, inputs: Mapping[str, str]) -> str:
    """The key of a step run: 32 hex digits.

    Args:
        session: the session name.
        normalized_code: ``CellAnalysis.normalized`` of the cell.
        inputs: input name to fingerprint (or lineage token); order does not matter.
    """
    names = sorted(inputs)
    fields = [_STEP_TAG, session, normalized_code, str(len(names))]
    for name in names:
        fields += (name, inputs[name])
    return _hash(*fields)


def value_token(step_key: str, name: str) -> str:
    """The lineage token of output ``name`` of the step run ``step_key``: 32 hex digits, O(1).

    A value produced by a durable step is identified by where it came from, so a later step that
    reads it needs no content hash as long as no plain cell has touched the name.
    """
    return _hash(_VALUE_TAG, step_key, name)


def code_digest(normalized_code: str) -> str:
    """A digest of normalised code: 32 hex digits, used to name steps that have no name."""
    return _hash(_CODE_TAG, normalized_code)
