"""The HTML report: one self-contained, escaped file with every condition, result and figure."""

from __future__ import annotations

import base64
import html
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from neb_bayes import config
from neb_bayes.api import infer
from neb_bayes.case import read_case
from neb_bayes.report import RENDERERS
from neb_bayes.report.html import render_html, summary_text

from .conftest import (
    CONDITION_IDS,
    EXAMPLES,
    ROOT,
    example_html,
    example_result,
    raw_measurements,
)

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class _Structure(HTMLParser):
    """Collects tags, image sources and element ids; checks that tags nest properly."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[str] = []
        self.img_src: list[str] = []
        self.ids: set[str] = set()
        self.attr_values: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        a = dict(attrs)
        if tag == "img":
            self.img_src.append(a.get("src") or "")
        if a.get("id"):
            self.ids.add(a["id"] or "")
        self.attr_values.extend(v for _, v in attrs if v is not None)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> (open: {self.stack[-3:]})")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(doc: str) -> _Structure:
    p = _Structure()
    p.feed(doc)
    p.close()
    return p


def test_html_is_a_renderer() -> None:
    assert RENDERERS["html"] is render_html


def test_every_example_renders_a_complete_self_contained_report(example_name: str) -> None:
    doc = example_html(example_name)
    result = example_result(example_name)
    assert doc.startswith("<!DOCTYPE html>")
    s = _parse(doc)
    assert not s.errors, s.errors[:5]
    assert not s.stack, f"unclosed tags: {s.stack}"
    text = html.unescape("".join(s.text))
    # every condition id of the contract, and none
    for cid in (*CONDITION_IDS, "none"):
        assert cid in text, cid
    # the disclaimer (escaped in the markup, intact in the text), at the top and the bottom
    assert text.count(config.DISCLAIMER) >= 2
    # every lab result of the case: a row for each one read, the rest listed as not used
    rows = {m.index for m in result.case.measurements}
    for m in result.case.measurements:
        assert f"measurements-{m.index}" in s.ids
        assert f"measurements[{m.index}]" in text
        raw = m.raw_value
        shown = f"{raw:g}" if isinstance(raw, float) else str(raw)
        assert f"{shown} {m.unit}".strip() in text
    not_used = {n.item for n in result.evidence.not_used}
    for i, _ in enumerate(raw_measurements(example_name)):
        assert i in rows or f"measurements[{i}]" in not_used
        assert f"measurements[{i}]" in text
    # nothing from the network: no URLs at all, no scripts, no style sheets, no frames
    assert "http://" not in doc and "https://" not in doc
    assert not {"script", "link", "iframe", "object", "embed"} & set(s.tags)
    assert "@import" not in doc and "url(" not in doc
    # figures: all embedded, each a matplotlib SVG
    assert len(s.img_src) >= 3
    for src in s.img_src:
        assert src.startswith("data:image/svg+xml;base64,")
        svg = base64.b64decode(src.split(",", 1)[1]).decode("utf-8")
        assert "<svg" in svg and "</svg>" in svg
        assert "<script" not in svg


def test_report_has_the_sections_and_numbers() -> None:
    name = "hard_ocp_dexamethasone_false_positive.yaml"
    doc = example_html(name)
    for heading in ("Summary", "Patient and samples", "Condition probabilities",
                    "What moved the leading probabilities", "Laboratory results",
                    "Cortisol by time of day", "Axis function", "What to test next",
                    "Accounted for", "Not used", "Provenance"):
        assert f"<h2>{heading}</h2>" in doc or f"<h3>{heading}</h3>" in doc, heading
    result = example_result(name)
    d = result.to_dict()
    assert d["provenance"]["prior_set_fingerprint"] in doc
    for a in d["accounted_for"]:
        assert html.escape(a["text"]) in doc
    for n in d["not_used"]:
        assert html.escape(n["reason"]) in doc


def test_repeated_results_get_a_time_series() -> None:
    doc = example_html("hard_subclinical_hypothyroidism_repeat_tsh.yaml")
    assert "Repeated results over time" in doc
    assert "Cortisol by time of day" not in doc


def test_censored_result_is_shown_as_censored() -> None:
    doc = example_html("hard_primary_hypothyroidism_censored_ft4.yaml")
    assert "&lt;5 pmol/L" in doc          # as reported, escaped
    assert "(censored)" in doc


def test_summary_is_plain_language_from_the_numbers() -> None:
    result = example_result("primary_hypothyroidism_01.yaml")
    text = summary_text(result)
    assert text.startswith("Primary hypothyroidism is very likely")
    assert "thyroid-stimulating hormone" in text.lower() or "TSH" in text
    healthy = summary_text(example_result("normal_healthy_woman_01.yaml"))
    assert healthy.startswith("No listed condition is likely")


def test_case_text_is_escaped(tmp_path: Path) -> None:
    evil = "<script>alert('x')</script>"
    case = read_case({
        "id": f"evil-{evil}",
        "patient": {"sex": "F", "age": 40, "context": [f"<img src=x onerror=alert(1)> {evil}"],
                    "medications": [f"{evil} 5 mg"]},
        "measurements": [
            {"analyte": "TSH", "value": 9.1, "unit": "mIU/L", "note": f"</table>{evil}",
             "method": "<b>bold</b>"},
            {"analyte": f"not-an-analyte {evil}", "value": 1, "unit": "mg/L"},
        ],
    })
    doc = render_html(infer(case))
    assert "<script" not in doc
    assert "<img src=x" not in doc
    assert "<b>bold</b>" not in doc
    assert "&lt;script&gt;" in doc
    s = _parse(doc)
    assert not s.errors and not s.stack


def test_cli_writes_an_html_file(tmp_path: Path) -> None:
    from neb_bayes.cli import main

    out = tmp_path / "r.html"
    case = EXAMPLES / "primary_hypothyroidism_01.yaml"
    res = CliRunner().invoke(main, ["report", str(case), "--format", "html", "--out", str(out)])
    assert res.exit_code == 0, res.output
    doc = out.read_text(encoding="utf-8")
    assert doc.startswith("<!DOCTYPE html>") and doc.rstrip().endswith("</html>")


def test_json_and_markdown_paths_do_not_import_matplotlib() -> None:
    code = (
        "import sys\n"
        "from neb_bayes.api import infer\n"
        "from neb_bayes.report import render_json, render_markdown\n"
        f"r = infer({str(EXAMPLES / 'primary_hypothyroidism_01.yaml')!r})\n"
        "render_json(r); render_markdown(r)\n"
        "print('matplotlib' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_rendering_is_deterministic() -> None:
    result = example_result("hyperprolactinemia_01.yaml")
    a, b = render_html(result), render_html(result)
    assert a == b
    # no dates or software stamps in the figures
    for src in re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', a)[:2]:
        svg = base64.b64decode(src).decode()
        assert "<dc:date>" not in svg


@pytest.mark.parametrize("top", [0, 3])
def test_next_test_section_can_be_left_out(top: int) -> None:
    result = example_result("subclinical_hypothyroidism_01.yaml")
    doc = render_html(result, next_test_top=top)
    assert ("What to test next" in doc) == (top > 0)
