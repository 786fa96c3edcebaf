"""JSON case text parsed fast, with the case reader's rules (no key twice in an object).

A batch worker parses one JSON text per case.  The standard library's parser with the
duplicate-key check of :func:`~neb_bayes.case.loader.load_text` (a Python hook called per
object) takes ~35 µs for a full work-up; :mod:`msgspec`'s parser ~8 µs, but it keeps the
last of a repeated key silently.  :func:`parse_json_case` parses with msgspec and checks the
keys in one compiled pass over the text (:func:`_keys_unique`, ~1-2 µs); whenever either is
not sure (msgspec rejects the text, a key has an escape sequence, an object has many keys, a
key is repeated), the text goes through :func:`load_text`, which gives the value or the
error message it always gave.

msgspec and the standard library read every JSON text both accept to the same values
(floats are correctly rounded by both; tested); the texts only the standard library
accepts (``NaN``, ``Infinity``, numbers beyond the float range, lone surrogates) reach it
through the fallback.
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
from numba import njit

from neb_bayes.case.loader import load_text

__all__ = ["key_repeated", "parse_json_case", "same_text"]

#: objects with more keys than this are checked by the standard library (the compiled check
#: compares each key with the object's earlier ones)
MAX_KEYS = 64

_decode = msgspec.json.Decoder().decode


@njit(cache=True, nogil=True)
def same_text(b: np.ndarray, s1: int, e1: int, s2: int, e2: int) -> bool:  # pragma: no cover
    """Whether ``b[s1:e1]`` and ``b[s2:e2]`` are the same bytes."""
    if e1 - s1 != e2 - s2:
        return False
    for m in range(e1 - s1):
        if b[s1 + m] != b[s2 + m]:
            return False
    return True


@njit(cache=True, nogil=True)
def key_repeated(b: np.ndarray, first: int, last: int, start: np.ndarray, stop: np.ndarray,
                 lo: int, hi: int) -> bool:  # pragma: no cover - compiled
    """Whether the key ``b[first:last]`` is one of the keys ``b[start[k]:stop[k]]``, ``lo <=
    k < hi`` (those of the object it is in)."""
    for k in range(lo, hi):
        if same_text(b, start[k], stop[k], first, last):
            return True
    return False


@njit(cache=True, nogil=True)
def _keys_unique(b: np.ndarray, max_keys: int) -> bool:  # pragma: no cover - compiled
    """``True`` when no object of JSON text ``b`` (UTF-8 bytes, already known to be valid
    JSON) has a key twice and no key has an escape sequence; ``False`` when one has, or when
    an object has more than ``max_keys`` keys (then the caller checks another way)."""
    n = b.size
    start = np.empty(n // 2 + 1, np.int64)   # the keys of the open objects, one frame each
    stop = np.empty(n // 2 + 1, np.int64)
    base = np.empty(n // 2 + 2, np.int64)    # each open container's first key
    depth = 0
    base[0] = 0
    nk = 0
    i = 0
    while i < n:
        c = b[i]
        if c == 34:                                   # '"': a string
            i += 1
            first = i
            escaped = False
            while b[i] != 34:
                if b[i] == 92:                        # '\': skip the escaped character
                    escaped = True
                    i += 1
                i += 1
            last = i
            i += 1
            j = i
            while j < n and (b[j] == 32 or b[j] == 9 or b[j] == 10 or b[j] == 13):
                j += 1
            if j < n and b[j] == 58:                  # ':' follows: it is a key
                if (escaped or nk - base[depth] >= max_keys
                        or key_repeated(b, first, last, start, stop, base[depth], nk)):
                    return False
                start[nk] = first
                stop[nk] = last
                nk += 1
            continue
        if c == 123 or c == 91:                       # '{' or '[': a new frame
            depth += 1
            base[depth] = nk
        elif c == 125 or c == 93:                     # '}' or ']': its keys are done
            nk = base[depth]
            depth -= 1
        i += 1
    return True


def parse_json_case(text: str, source: str | None = None) -> Any:
    """The value of one JSON text, as :func:`~neb_bayes.case.loader.load_text` gives it.

    Raises
    ------
    CaseError
        As :func:`load_text` does for malformed JSON or a key given twice in an object.
    """
    try:
        value = _decode(text)
        unique = _keys_unique(np.frombuffer(text.encode(), np.uint8), MAX_KEYS)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeEncodeError):
        unique = False
    return value if unique else load_text(text, "json", source=source)
