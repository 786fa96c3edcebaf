"""JSON case text parsed fast, with the case reader's rules (no key twice in an object).

A batch worker parses one JSON text per case.  The standard library's parser with the
duplicate-key check of :func:`~neb_bayes.case.loader.load_text` (a Python hook called per
object) takes ~35 µs for a full work-up; :mod:`msgspec`'s parser ~8 µs, but it keeps the
last of a repeated key silently.  :func:`parse_json_case` parses with msgspec and checks the
keys in one compiled pass over the text (:func:`skip_value`, ~5 µs; also the batch's
compiled reading of patient sections); whenever either is
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

__all__ = ["MAX_KEYS", "parse_json_case", "same_text", "skip_value", "skip_ws"]

#: objects with more keys than this are checked another way (the compiled check compares
#: each key with the object's earlier ones)
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
def _key_repeated(b: np.ndarray, first: int, last: int, start: np.ndarray, stop: np.ndarray,
                 lo: int, hi: int) -> bool:  # pragma: no cover - compiled
    """Whether the key ``b[first:last]`` is one of the keys ``b[start[k]:stop[k]]``, ``lo <=
    k < hi`` (those of the object it is in)."""
    for k in range(lo, hi):
        if same_text(b, start[k], stop[k], first, last):
            return True
    return False


@njit(cache=True, nogil=True)
def skip_ws(b: np.ndarray, i: int, end: int) -> int:  # pragma: no cover - compiled
    """The first index from ``i`` (before ``end``) that is not JSON whitespace."""
    while i < end and (b[i] == 32 or b[i] == 9 or b[i] == 10 or b[i] == 13):
        i += 1
    return i


@njit(cache=True, nogil=True)
def skip_value(b: np.ndarray, i: int, end: int, max_keys: int, start: np.ndarray,
               stop: np.ndarray, base: np.ndarray) -> int:  # pragma: no cover - compiled
    """The end of the JSON value starting at ``b[i]``, found by matching brackets outside
    strings (its syntax is checked by the parser it is handed to); -1 when it does not end
    before ``end``, or when one of its objects has a key twice, a key with an escape
    sequence or more than ``max_keys`` keys (then the caller checks another way).

    ``start``, ``stop`` (the keys of the open objects) and ``base`` (each open container's
    first key) are scratch space, half the text's length each."""
    c = b[i]
    if c == 34:
        i += 1
        while i < end and b[i] != 34:
            i += 2 if b[i] == 92 else 1
        return i + 1 if i < end else -1
    if c != 123 and c != 91:                   # a number, true, false or null
        while i < end and not (b[i] == 44 or b[i] == 125 or b[i] == 93 or b[i] == 32
                               or b[i] == 9 or b[i] == 10 or b[i] == 13):
            i += 1
        return i
    depth = 0
    nk = 0
    base[0] = 0
    while i < end:
        c = b[i]
        if c == 34:                                   # '"': a string
            i += 1
            first = i
            escaped = False
            while i < end and b[i] != 34:
                if b[i] == 92:                        # '\': skip the escaped character
                    escaped = True
                    i += 1
                i += 1
            if i >= end:
                return -1
            last = i
            i = skip_ws(b, i + 1, end)
            if i < end and b[i] == 58:                # ':' follows: it is a key
                if (escaped or nk >= start.size or nk - base[depth] >= max_keys
                        or _key_repeated(b, first, last, start, stop, base[depth], nk)):
                    return -1
                start[nk] = first
                stop[nk] = last
                nk += 1
            continue
        if c == 123 or c == 91:                       # '{' or '[': a new frame
            depth += 1
            if depth >= base.size:
                return -1
            base[depth] = nk
        elif c == 125 or c == 93:                     # '}' or ']': its keys are done
            nk = base[depth]
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return -1


@njit(cache=True, nogil=True)
def _keys_unique(b: np.ndarray, max_keys: int) -> bool:  # pragma: no cover - compiled
    """``True`` when no object of JSON text ``b`` (UTF-8 bytes, already known to be valid
    JSON) has a key twice and no key has an escape sequence; ``False`` when one has, or when
    an object has more than ``max_keys`` keys (then the caller checks another way)."""
    n = b.size
    half = n // 2 + 2
    i = skip_ws(b, 0, n)
    return i < n and skip_value(b, i, n, max_keys, np.empty(half, np.int64),
                                np.empty(half, np.int64), np.empty(half, np.int64)) >= 0


def parse_json_case(text: str, source: str | None = None) -> Any:
    """The value of one JSON text, as :func:`~neb_bayes.case.loader.load_text` gives it (a
    byte order mark at its start skipped, as there).

    Raises
    ------
    CaseError
        As :func:`load_text` does for malformed JSON or a key given twice in an object.
    """
    text = text.removeprefix("\ufeff")
    try:
        value = _decode(text)
        unique = _keys_unique(np.frombuffer(text.encode(), np.uint8), MAX_KEYS)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeEncodeError):
        unique = False
    return value if unique else load_text(text, "json", source=source)
