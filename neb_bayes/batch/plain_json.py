"""Plain cases read from their JSON text by one compiled pass over a chunk.

In a batch of plain cases (:mod:`neb_bayes.batch.plain`) most of a worker's reading time
went to Python objects: the parser's dicts, strings and floats for every result (~300 per
full work-up), the reader's pass over them, and freeing them (together ~85 µs of ~230 µs of
CPU per case).  :func:`scan_chunk` reads the cases' texts in one compiled pass instead and
gives, per case, where its id and patient section are in the text and its symptoms as
(state, distinct name) pairs and, per result, its value and day and which distinct *form*
it has (analyte, specimen, unit and collection time as written); the reader then resolves
each distinct form and name once per chunk and converts the values as arrays (:meth:`PlainReader.add_texts
<neb_bayes.batch.plain.PlainReader.add_texts>`).

The pass accepts only what it reads exactly, and leaves every other case to the usual path
(parse, then :meth:`PlainReader.add <neb_bayes.batch.plain.PlainReader.add>` or the full
reader), so a case reads the same either way.  It reads strictly: the top level an object of
the case format's keys, each at most once (``case_format`` the number ``1``, ``id`` a
string without escape sequences); ``measurements`` a list of objects with ``analyte``,
``value``, ``unit`` and optionally ``specimen``, ``collected`` (strings, decoded by msgspec
where they have escape sequences), ``day`` (a number), each key once, ``value`` a JSON number
or a string without escapes; ``symptoms`` ``null`` or an object of ``present``, ``absent``
and ``unknown`` lists of names (strings without escapes; each distinct name kept once per
chunk, the reader maps it to its symptom); nothing after the object.  ``patient`` is any
JSON value: the pass finds where it ends (and refuses a key given twice or escaped in it)
and the reader parses it with msgspec, which checks its syntax, once per distinct text.
"""

from __future__ import annotations

import msgspec
import numpy as np
from numba import njit

from neb_bayes.batch.json_text import MAX_KEYS, same_text, skip_value, skip_ws
from neb_bayes.case.symptoms import SYMPTOM_STATES

__all__ = ["TEXT_WIDTH", "ScannedChunk", "scan_chunk"]

#: numbers longer than this (bytes) are left to the usual path
TEXT_WIDTH = 32
#: distinct result forms per chunk the compiled pass keeps (more: the usual path)
MAX_FORMS = 2048

_numbers = msgspec.json.Decoder(list[float]).decode
_string = msgspec.json.Decoder(str).decode

_TOP_KEYS = ("case_format", "id", "patient", "measurements", "symptoms")
_RESULT_KEYS = ("analyte", "specimen", "value", "unit", "collected", "day")


def _key_table(keys: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(k) for k in keys)
    text = np.zeros((len(keys), width), np.uint8)
    size = np.array([len(k) for k in keys], np.int64)
    for i, k in enumerate(keys):
        text[i, :len(k)] = np.frombuffer(k.encode(), np.uint8)
    return text, size


_TOP_TEXT, _TOP_SIZE = _key_table(_TOP_KEYS)
_RES_TEXT, _RES_SIZE = _key_table(_RESULT_KEYS)
_SYM_TEXT, _SYM_SIZE = _key_table(SYMPTOM_STATES)


@njit(cache=True, nogil=True)
def _next(b, j, end, close):  # pragma: no cover - compiled
    """After a list's or object's item that ends at ``b[j]``: ``(start of the next item,
    True)`` after a comma, ``(the index after the closing byte close, False)``, or ``(-1,
    False)`` for anything else."""
    i = skip_ws(b, j, end)
    if i < end and b[i] == 44:
        return skip_ws(b, i + 1, end), True
    if i < end and b[i] == close:
        return i + 1, False
    return -1, False


@njit(cache=True, nogil=True)
def _plain_string(b, i, end):  # pragma: no cover - compiled
    """The end (after the closing quote) of the string at ``b[i] == '"'``, or -1 when it
    has an escape sequence or a control character (or does not end)."""
    i += 1
    while i < end:
        c = b[i]
        if c == 34:
            return i + 1
        if c == 92 or c < 32:
            return -1
        i += 1
    return -1


@njit(cache=True, nogil=True)
def _any_string(b, i, end):  # pragma: no cover - compiled
    """The end of the string at ``b[i] == '"'`` (escape sequences skipped over: the text is
    decoded by msgspec, which checks them), or -1 for a control character or no end."""
    i += 1
    while i < end:
        c = b[i]
        if c == 34:
            return i + 1
        if c < 32:
            return -1
        i += 2 if c == 92 else 1
    return -1


@njit(cache=True, nogil=True)
def _number(b, i, end):  # pragma: no cover - compiled
    """The end of the JSON number at ``b[i]``, or -1."""
    if i < end and b[i] == 45:
        i += 1
    if i >= end:
        return -1
    if b[i] == 48:
        i += 1
    elif 49 <= b[i] <= 57:
        while i < end and 48 <= b[i] <= 57:
            i += 1
    else:
        return -1
    if i < end and b[i] == 46:
        i += 1
        if not (i < end and 48 <= b[i] <= 57):
            return -1
        while i < end and 48 <= b[i] <= 57:
            i += 1
    if i < end and (b[i] == 101 or b[i] == 69):
        i += 1
        if i < end and (b[i] == 43 or b[i] == 45):
            i += 1
        if not (i < end and 48 <= b[i] <= 57):
            return -1
        while i < end and 48 <= b[i] <= 57:
            i += 1
    return i


@njit(cache=True, nogil=True)
def _which(b, s, e, text, size):  # pragma: no cover - compiled
    """Index of the key ``b[s:e]`` in a key table, or -1."""
    n = e - s
    for k in range(size.size):
        if size[k] == n:
            same = True
            for m in range(n):
                if b[s + m] != text[k, m]:
                    same = False
                    break
            if same:
                return k
    return -1


@njit(cache=True, nogil=True)
def _distinct(b, sp, table, rows, n):  # pragma: no cover - compiled
    """The id of a tuple of texts among the chunk's distinct ones (``sp``: each text's
    start and end in ``b``, -1 when absent; ``rows``: the first occurrence of each, a hash
    table ``table`` over them); a new one is added.  Returns ``(id, number of distinct
    ones)``; id -1 when ``rows`` is full."""
    h = np.uint64(14695981039346656037)
    for p in range(sp.size // 2):
        s, e = sp[2 * p], sp[2 * p + 1]
        h = (h ^ np.uint64(256 + (e - s if s >= 0 else 4096 + p))) * np.uint64(1099511628211)
        for m in range(s, e if s >= 0 else s):
            h = (h ^ np.uint64(b[m])) * np.uint64(1099511628211)
    mask = table.size - 1
    slot = np.int64(h & np.uint64(mask))
    while True:
        f = table[slot]
        if f < 0:
            break
        same = True
        for p in range(sp.size // 2):
            s1, e1 = rows[f, 2 * p], rows[f, 2 * p + 1]
            s2, e2 = sp[2 * p], sp[2 * p + 1]
            if (s1 < 0) != (s2 < 0) or (s1 >= 0 and not same_text(b, s1, e1, s2, e2)):
                same = False
                break
        if same:
            return f, n
        slot = (slot + 1) & mask
    if n >= rows.shape[0]:
        return -1, n
    table[slot] = n
    for p in range(sp.size):
        rows[n, p] = sp[p]
    return n, n + 1


@njit(cache=True, nogil=True)
def _symptom_lists(b, i, end, sym, ns, ntable, names, nn, nsp):  # pragma: no cover
    """The symptoms value at ``b[i]``: ``null``, or an object of ``present``, ``absent`` and
    ``unknown`` (each at most once) lists of strings without escapes.  Each name goes to
    ``sym[ns:]`` as ``(state, name id)``.  Returns ``(end, ns, nn)``, end -1 when the value
    is anything else."""
    if b[i] == 110:                                   # null
        if i + 4 <= end and b[i + 1] == 117 and b[i + 2] == 108 and b[i + 3] == 108:
            return i + 4, ns, nn
        return -1, ns, nn
    if b[i] != 123:
        return -1, ns, nn
    i = skip_ws(b, i + 1, end)
    if i < end and b[i] == 125:
        return i + 1, ns, nn
    seen = 0
    while True:
        if i >= end or b[i] != 34:
            return -1, ns, nn
        j = _plain_string(b, i, end)
        if j < 0:
            return -1, ns, nn
        state = _which(b, i + 1, j - 1, _SYM_TEXT, _SYM_SIZE)
        if state < 0 or seen & (1 << state):
            return -1, ns, nn
        seen |= 1 << state
        i = skip_ws(b, j, end)
        if i >= end or b[i] != 58:
            return -1, ns, nn
        i = skip_ws(b, i + 1, end)
        if i >= end or b[i] != 91:
            return -1, ns, nn
        i = skip_ws(b, i + 1, end)
        if i < end and b[i] == 93:
            i += 1
        else:
            while True:
                if i >= end or b[i] != 34 or ns >= sym.shape[0]:
                    return -1, ns, nn
                j = _plain_string(b, i, end)
                if j < 0:
                    return -1, ns, nn
                nsp[0], nsp[1] = i + 1, j - 1
                k, nn = _distinct(b, nsp, ntable, names, nn)
                if k < 0:
                    return -1, ns, nn
                sym[ns, 0] = state
                sym[ns, 1] = k
                ns += 1
                i, more = _next(b, j, end, 93)
                if i < 0:
                    return -1, ns, nn
                if not more:
                    break
        i, more = _next(b, i, end, 125)
        if i < 0 or not more:
            return i, ns, nn


@njit(cache=True, nogil=True)
def _result(b, i, end, res, nr, table, forms, nf, sp):  # pragma: no cover
    """One result object at ``b[i]``: returns ``(end, nf)``, end -1 when it is not plain."""
    if b[i] != 123:
        return -1, nf
    i = skip_ws(b, i + 1, end)
    seen = 0
    for p in range(8):
        sp[p] = -1
    vs = ve = ds = de = -1
    text = 0
    while True:
        if i >= end or b[i] != 34:
            return -1, nf
        j = _plain_string(b, i, end)
        if j < 0:
            return -1, nf
        key = _which(b, i + 1, j - 1, _RES_TEXT, _RES_SIZE)
        if key < 0 or seen & (1 << key):
            return -1, nf
        seen |= 1 << key
        i = skip_ws(b, j, end)
        if i >= end or b[i] != 58:
            return -1, nf
        i = skip_ws(b, i + 1, end)
        if i >= end:
            return -1, nf
        if key == 2 and b[i] == 34:                   # a value as text ("<0.01", "3.5")
            j = _plain_string(b, i, end)
            if j < 0 or j - i - 2 > TEXT_WIDTH:
                return -1, nf
            vs, ve = i + 1, j - 1
            text = 1
        elif key == 2 or key == 5:                    # value, day: numbers
            j = _number(b, i, end)
            if j < 0 or j - i > TEXT_WIDTH:
                return -1, nf
            if key == 2:
                vs, ve = i, j
            else:
                ds, de = i, j
        else:                                         # analyte, specimen, unit, collected
            if b[i] != 34:
                return -1, nf
            j = _any_string(b, i, end)
            if j < 0:
                return -1, nf
            p = (0, 1, -1, 2, 3)[key]
            sp[2 * p] = i + 1
            sp[2 * p + 1] = j - 1
        i, more = _next(b, j, end, 125)
        if i < 0:
            return -1, nf
        if not more:
            break
    if seen & 0b1101 != 0b1101:                       # analyte, value and unit
        return -1, nf
    f, nf = _distinct(b, sp, table, forms, nf)
    if f < 0:
        return -1, nf
    res[nr, 0] = f
    res[nr, 1] = ds
    res[nr, 2] = de
    res[nr, 3] = -1 if text else vs
    res[nr, 4] = ve
    res[nr, 5] = vs
    return i, nf


@njit(cache=True, nogil=True)
def _case(b, i, end, spans, res, nr, table, forms, nf, sp, kstart, kstop, base, sym, ns,
          ntable, names, nn):  # pragma: no cover - compiled
    """One case's text ``b[i:end]``: returns ``(results end, nf, symptoms end, nn)``, results
    end -1 when the case is not plain (its results from ``nr`` and symptoms from ``ns`` on
    are then not kept); a UTF-8 byte order mark at its start skipped, as the case reader
    skips it."""
    if end - i >= 3 and b[i] == 0xEF and b[i + 1] == 0xBB and b[i + 2] == 0xBF:
        i += 3
    i = skip_ws(b, i, end)
    if i >= end or b[i] != 123:
        return -1, nf, ns, nn
    i = skip_ws(b, i + 1, end)
    seen = 0
    while True:
        if i >= end or b[i] != 34:
            return -1, nf, ns, nn
        j = _plain_string(b, i, end)
        if j < 0:
            return -1, nf, ns, nn
        key = _which(b, i + 1, j - 1, _TOP_TEXT, _TOP_SIZE)
        if key < 0 or seen & (1 << key):
            return -1, nf, ns, nn
        seen |= 1 << key
        i = skip_ws(b, j, end)
        if i >= end or b[i] != 58:
            return -1, nf, ns, nn
        i = skip_ws(b, i + 1, end)
        if i >= end:
            return -1, nf, ns, nn
        if key == 0:                                  # case_format: 1
            if b[i] != 49:
                return -1, nf, ns, nn
            j = i + 1
        elif key == 1:                                # id: a string
            if b[i] != 34:
                return -1, nf, ns, nn
            j = _plain_string(b, i, end)
            if j < 0:
                return -1, nf, ns, nn
            spans[0], spans[1] = i + 1, j - 1
        elif key == 3:                                # measurements: a list of results
            if b[i] != 91:
                return -1, nf, ns, nn
            i = skip_ws(b, i + 1, end)
            if i < end and b[i] == 93:
                j = i + 1
            else:
                while True:
                    if i >= end or nr >= res.shape[0]:
                        return -1, nf, ns, nn
                    j, nf = _result(b, i, end, res, nr, table, forms, nf, sp)
                    if j < 0:
                        return -1, nf, ns, nn
                    nr += 1
                    i, more = _next(b, j, end, 93)
                    if i < 0:
                        return -1, nf, ns, nn
                    if not more:
                        j = i
                        break
        elif key == 4:                                # symptoms: null or lists of names
            j, ns, nn = _symptom_lists(b, i, end, sym, ns, ntable, names, nn, sp[:2])
            if j < 0:
                return -1, nf, ns, nn
        else:                                         # patient: any value
            j = skip_value(b, i, end, MAX_KEYS, kstart, kstop, base)
            if j < 0:
                return -1, nf, ns, nn
            spans[2], spans[3] = i, j
        i, more = _next(b, j, end, 125)
        if i < 0:
            return -1, nf, ns, nn
        if not more:
            i = skip_ws(b, i, end)
            break
    if i != end or seen & 0b1010 != 0b1010:           # nothing after; id and measurements
        return -1, nf, ns, nn
    return nr, nf, ns, nn


@njit(cache=True, nogil=True)
def _scan(b, starts, ends, max_forms):  # pragma: no cover - compiled
    n = starts.size
    spans = np.full((n, 4), -1, np.int64)
    first = np.zeros(n + 1, np.int64)
    ok = np.zeros(n, np.bool_)
    cap = b.size // 36 + 1                  # a result object takes at least 36 bytes
    # form, day start, end, value start (-1: text), end, value start (a text's too)
    res = np.empty((cap, 6), np.int64)
    size = 1
    while size < 2 * max_forms:
        size *= 2
    table = np.full(size, -1, np.int64)
    forms = np.full((max_forms, 8), -1, np.int64)
    width = 2
    for c in range(n):
        width = max(width, ends[c] - starts[c])
    kstart = np.empty(width // 2 + 1, np.int64)
    kstop = np.empty(width // 2 + 1, np.int64)
    base = np.empty(width // 2 + 2, np.int64)
    sp = np.empty(8, np.int64)
    # state, name of each listed symptom: one per 8 bytes of text, more than any case lists
    # (past it, a case is declined)
    sym = np.empty((b.size // 8 + 64, 2), np.int64)
    sym_first = np.zeros(n + 1, np.int64)
    ntable = np.full(size, -1, np.int64)
    names = np.empty((max_forms, 2), np.int64)
    nr = 0
    nf = 0
    ns = 0
    nn = 0
    for c in range(n):
        got, nf, got_s, nn = _case(b, starts[c], ends[c], spans[c], res, nr, table, forms, nf,
                                   sp, kstart, kstop, base, sym, ns, ntable, names, nn)
        if got >= 0:                        # (a case not read leaves rows the next overwrites)
            ok[c] = True
            nr = got
            ns = got_s
        first[c + 1] = nr
        sym_first[c + 1] = ns
    # the numbers as one JSON list each (a text value read as 0; the days of the results
    # that give one only), for a correctly rounded parser
    size_v = 2
    size_d = 2
    for r in range(nr):
        size_v += (res[r, 4] - res[r, 3] if res[r, 3] >= 0 else 1) + 1
        if res[r, 1] >= 0:
            size_d += res[r, 2] - res[r, 1] + 1
    numbers = np.empty(size_v, np.uint8)
    day_numbers = np.empty(size_d, np.uint8)
    numbers = numbers[:_number_list(b, res[:nr, 3], res[:nr, 4], numbers)]
    has_day = res[:nr, 1] >= 0
    day_numbers = day_numbers[:_number_list(b, res[:nr, 1][has_day], res[:nr, 2][has_day],
                                            day_numbers)]
    return (ok, spans, first, res[:nr], forms[:nf], numbers, day_numbers, sym_first, sym[:ns],
            names[:nn])


@njit(cache=True, nogil=True)
def _number_list(b, start, stop, out):  # pragma: no cover - compiled
    """``[x0,x1,...]`` of the texts ``b[start[r]:stop[r]]`` (``0`` where start is -1) into
    ``out``; returns its length."""
    out[0] = 91
    k = 1
    for r in range(start.size):
        if r:
            out[k] = 44
            k += 1
        if start[r] < 0:
            out[k] = 48
            k += 1
        else:
            for m in range(start[r], stop[r]):
                out[k] = b[m]
                k += 1
    out[k] = 93
    return k + 1


class ScannedChunk:
    """What :func:`scan_chunk` found in a chunk's texts.

    Attributes
    ----------
    text
        The texts, UTF-8, one after another.
    ok
        ``(n,)`` whether each case was read (the others take the usual path).
    spans
        ``(n, 4)`` start and end in ``text`` of the id (inside its quotes) and of the
        patient section's value; -1 where absent.
    first
        ``(n + 1,)``: case ``i``'s results are ``first[i]:first[i + 1]``.
    form
        ``(results,)`` each result's form (row of ``forms``).
    has_day
        ``(results,)`` whether the result gives a day.
    text_value
        ``(results,)`` whether the value is written as a string (``"<0.01"``, ``"3.5"``;
        :meth:`value_text`).
    values, days
        ``(results,)`` the value (0 when written as a string) and the day (0 when not given)
        as numbers (read by msgspec: correctly rounded, as the standard library reads them).
    forms
        ``(distinct forms, 8)`` start and end of the analyte, specimen, unit and collection
        time (-1 where absent) of each form's first result.
    sym_first, sym_state, sym_name
        Case ``i``'s symptoms as listed are ``sym_first[i]:sym_first[i + 1]``: each its state
        (index in :data:`~neb_bayes.case.symptoms.SYMPTOM_STATES`) and name (row of
        ``names``).
    names
        ``(distinct symptom names, 2)`` start and end of each name's first occurrence.
    """

    def __init__(self, texts: list[str] | list[bytes]) -> None:
        encoded = [t if isinstance(t, bytes) else t.encode() for t in texts]
        self.text = b"".join(encoded)
        ends = np.cumsum([len(e) for e in encoded], dtype=np.int64)
        starts = ends - np.array([len(e) for e in encoded], dtype=np.int64)
        buf = np.frombuffer(self.text, np.uint8)
        (self.ok, self.spans, self.first, res, self.forms, numbers, day_numbers,
         self.sym_first, sym, self.names) = _scan(buf, starts, ends, MAX_FORMS)
        self.sym_state, self.sym_name = sym[:, 0], sym[:, 1]
        self.form = res[:, 0]
        self.has_day = res[:, 1] >= 0
        self.text_value = res[:, 3] < 0
        self._value_at = res[:, [5, 4]]
        try:
            self.values = np.array(_numbers(numbers.tobytes()), dtype=float)
            self.days = np.zeros(self.form.size)       # (a missing day reads as 0)
            self.days[self.has_day] = _numbers(day_numbers.tobytes())
        except msgspec.MsgspecError:       # e.g. 1e999: numpy reads it (inf) as float() does
            values = self._texts(self._value_at)
            days = self._texts(res[:, 1:3])
            self.values = np.where(self.text_value, b"0", values).astype(float)
            self.days = np.where(self.has_day, days, b"0").astype(float)

    def _texts(self, at: np.ndarray) -> np.ndarray:
        """The texts at ``(start, end)`` rows (``S``; empty where start is -1)."""
        return np.array([self.text[s:e] if s >= 0 else b"" for s, e in at.tolist()],
                        dtype=f"S{TEXT_WIDTH}")

    def value_text(self, r: int) -> str:
        """Result ``r``'s value as written (inside the quotes of a string)."""
        s, e = self._value_at[r]
        return self.text[s:e].decode()

    def part(self, start: int, stop: int) -> bytes:
        """The text between two offsets."""
        return self.text[start:stop]

    def name_text(self, k: int) -> str:
        """Symptom name ``k`` as written."""
        return self.text[self.names[k, 0]:self.names[k, 1]].decode()

    def form_text(self, f: int) -> tuple[str | None, ...] | None:
        """``(analyte, specimen, unit, collected)`` of form ``f`` (None: absent), or None
        when one of its strings has an escape sequence JSON does not allow."""
        row = self.forms[f]
        out = []
        for p in range(4):
            s, e = row[2 * p], row[2 * p + 1]
            if s < 0:
                out.append(None)
                continue
            text = self.text[s:e]
            if b"\\" in text:         # escape sequences (e.g. json.dumps' "\u00b5mol/L")
                try:
                    out.append(_string(self.text[s - 1:e + 1]))
                except msgspec.MsgspecError:
                    return None
            else:
                out.append(text.decode())
        return tuple(out)


def scan_chunk(texts: list[str] | list[bytes]) -> ScannedChunk:
    """Read a chunk of case texts (strings or UTF-8 bytes) in one compiled pass
    (:class:`ScannedChunk`)."""
    return ScannedChunk(texts)
