"""Parse case files (YAML, JSON, JSON Lines) into plain Python data.

YAML is read with a safe loader tuned for case files:

* ``collected: 8:40`` stays the text ``"8:40"`` (YAML 1.1 would read the integer 520, a
  base-60 number) and ``2024-03-01T08:40`` stays text (no implicit timestamps);
* ``010`` is ten, not octal eight; ``1e-3`` is a number, not text;
* a key given twice in one mapping is an error, not a silent overwrite.

Syntax errors come back as :class:`~neb_bayes.case.model.CaseError` with the path
``<file>`` and the line and column.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from neb_bayes.case.model import CaseError, FieldError

__all__ = ["CASE_SUFFIXES", "iter_cases", "load_file", "load_text"]

CASE_SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}
LINES_SUFFIXES = (".jsonl", ".ndjson")
FILE = "<file>"

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class _CaseLoader(_Base):  # type: ignore[misc, valid-type]
    """Safe YAML loader without base-60 numbers, octal, implicit timestamps or duplicate keys."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:  # noqa: D102
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                try:
                    duplicate = key in seen
                except TypeError:
                    continue  # unhashable: the base class reports it
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping",
                        node.start_mark,
                        f"found the key {key!r} twice",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


_CaseLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT, _FLOAT, _TIMESTAMP)]
    for first, resolvers in _Base.yaml_implicit_resolvers.items()
}
_CaseLoader.add_implicit_resolver(
    _INT, re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$"), list("-+0123456789")
)
_CaseLoader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)?\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?[0-9][0-9_]*\.(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)  # in C; a repeated key makes it shorter than the pairs
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"found the key {key!r} twice")
            seen.add(key)
    return out


def _where(mark: Any) -> str:
    return f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""


def _hint(text: str, mark: Any) -> str:
    """A hint for the usual slip: an unquoted ``>1000`` (YAML reads ``>`` as a block scalar)."""
    if mark is None:
        return ""
    lines = text.splitlines()
    nearby = lines[max(mark.line - 1, 0) : mark.line + 1]
    if any(re.search(r":\s*[>|][-+]?\s*[\d.]", line) for line in nearby):
        return "; quote a value that starts with '>' or '|', e.g. '>1000'"
    return ""


def load_text(text: str, fmt: str = "yaml", *, source: str | None = None) -> Any:
    """Parse one case from YAML or JSON text.

    Raises
    ------
    CaseError
        With one error at ``<file>`` for malformed text.
    """
    if fmt == "json":
        text = text.removeprefix("\ufeff")   # (a byte order mark, as a file's is skipped)
        try:
            value = json.loads(text, object_pairs_hook=_no_duplicates)
        except json.JSONDecodeError as exc:
            msg = f"malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        except ValueError as exc:
            msg = f"malformed JSON: {exc}"
        else:
            return _whole_characters(value, text, source)
        raise CaseError([FieldError(FILE, msg)], source)
    if fmt != "yaml":
        raise ValueError(f"unknown case format {fmt!r}; use 'yaml' or 'json'")
    try:
        return yaml.load(text, Loader=_CaseLoader)
    except yaml.MarkedYAMLError as exc:
        problem = exc.problem or exc.context or "syntax error"
        msg = f"malformed YAML: {problem}{_where(exc.problem_mark)}{_hint(text, exc.problem_mark)}"
    except yaml.YAMLError as exc:
        msg = f"malformed YAML: {exc}"
    raise CaseError([FieldError(FILE, msg)], source)


#: a JSON escape that can write half a character (a UTF-16 surrogate, ``\uD800`` to
#: ``\uDFFF``; a pair of them is one character).  (YAML's reader refuses them itself.)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _whole_characters(value: Any, text: str, source: str | None) -> Any:
    """``value`` as parsed from ``text``, unless an escape sequence left half a character
    in one of its strings or keys (an unpaired UTF-16 surrogate such as ``\\ud800``: what an
    exporter writes when it cuts an emoji in two).  Such a string is not text: it cannot be
    written to any output (UTF-8), so every one is an error at its field path."""
    if _SURROGATE_ESCAPE.search(text) is None:
        return value
    errors = [FieldError(path or FILE, "not valid text: an escape sequence leaves half a "
                                       "character (an unpaired UTF-16 surrogate)")
              for path in _broken_strings(value, "")]
    if errors:
        raise CaseError(errors, source)
    return value


def _broken_strings(value: Any, path: str) -> Iterator[str]:
    """The field paths of the strings (and mapping keys) in ``value`` that are not valid
    Unicode text."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and not is_text(key):
                yield f"{path}.<key>" if path else "<key>"
                continue
            yield from _broken_strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _broken_strings(item, f"{path}[{i}]")
    elif isinstance(value, str) and not is_text(value):
        yield path


def is_text(s: str) -> bool:
    """Whether ``s`` is Unicode text that UTF-8 can write: not when it holds half a
    character (an unpaired surrogate, from an escape or from a file name's undecodable
    bytes, which Python holds as surrogate escapes)."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CaseError([FieldError(FILE, f"not UTF-8 text: {exc.reason}")], str(path)) from None
    except OSError as exc:
        raise CaseError([FieldError(FILE, f"cannot read: {exc.strerror}")], str(path)) from None


def load_file(path: str | os.PathLike[str]) -> Any:
    """Parse one YAML (``.yaml``/``.yml``, and any other suffix) or JSON (``.json``) file."""
    path = Path(path)
    fmt = CASE_SUFFIXES.get(path.suffix.lower(), "yaml")
    return load_text(_read_text(path), fmt, source=str(path))


def _mapping_or_error(data: Any, source: str) -> dict | CaseError:
    if isinstance(data, dict):
        return data
    kind = "empty" if data is None else f"a {type(data).__name__}"
    return CaseError([FieldError(FILE, f"a case must be a mapping, this one is {kind}")], source)


def _iter_lines(path: Path) -> Iterator[tuple[str, dict | CaseError]]:
    try:
        text = _read_text(path)
    except CaseError as exc:
        yield str(path), exc
        return
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.removeprefix("\ufeff")     # (files joined: each one's byte order mark)
        if not line.strip():
            continue
        name = f"{path}:{number}"
        try:
            data = load_text(line, "json", source=name)
        except CaseError as exc:
            yield name, exc
            continue
        yield name, _mapping_or_error(data, name)


def iter_cases(path: str | os.PathLike[str]) -> Iterator[tuple[str, dict | CaseError]]:
    """Yield ``(source_name, case_dict_or_error)`` for every case under ``path``.

    ``path`` is a JSON Lines file (one case per line, blank lines skipped; the source
    name is ``file:line``), a directory (its ``.yaml``/``.yml``/``.json``/``.jsonl`` files
    in sorted order, not recursing) or a single case file.  A case that cannot be parsed
    is yielded as a :class:`CaseError`; iteration always goes on.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
        for file in files:
            suffix = file.suffix.lower()
            if suffix in LINES_SUFFIXES:
                yield from _iter_lines(file)
            elif suffix in CASE_SUFFIXES:
                yield from _iter_one(file)
        return
    if path.suffix.lower() in LINES_SUFFIXES:
        yield from _iter_lines(path)
        return
    yield from _iter_one(path)


def _iter_one(path: Path) -> Iterator[tuple[str, dict | CaseError]]:
    name = str(path)
    try:
        data = load_file(path)
    except CaseError as exc:
        yield name, exc
        return
    yield name, _mapping_or_error(data, name)
