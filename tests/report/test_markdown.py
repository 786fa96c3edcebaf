"""The Markdown report's condition table: every interval says where it comes from."""

from __future__ import annotations

from neb_bayes.api import infer
from neb_bayes.case import read_case
from neb_bayes.model.compiled import load_model
from neb_bayes.report import render_markdown
from neb_bayes.report.format import interval_text
from neb_bayes.report.results import num_text
from tests.report.conftest import EXAMPLES, example_result


def _rows(text: str) -> dict[str, str]:
    """Condition id -> its interval cell, from the condition table."""
    out = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[0] not in ("condition", "---") and "%" in cells[1]:
            out[cells[0]] = cells[2]
    return out


def test_intervals_that_every_draw_agrees_on_are_not_called_missing_draws():
    """With the shipped prior set's draws, a condition every draw puts at 0 shows that one
    value for all draws, never "no parameter draws"."""
    result = example_result("cushings_acth_dependent_01.yaml")
    assert result.draw_probs is not None
    rows = _rows(render_markdown(result))
    ivs = result.intervals
    flat = [c for c in rows if abs(ivs[c][1] - ivs[c][0]) < 1e-9]
    assert flat                                   # this case has such conditions
    for c in flat:
        assert rows[c] == interval_text(ivs[c], True)
        assert "(all draws)" in rows[c]
    assert not any("no parameter draws" in cell for cell in rows.values())


def test_a_prior_set_without_draws_says_so():
    result = infer(read_case(EXAMPLES / "primary_hypothyroidism_01.yaml"), load_model())
    assert result.draw_probs is None
    rows = _rows(render_markdown(result))
    assert rows and all(cell == "no parameter draws" for cell in rows.values())


def test_markdown_has_a_results_table_like_the_html(example_name: str) -> None:
    """Each result read is a row of the Markdown report: as reported, in the model's unit,
    and whether it was used, as in the HTML report's table."""
    result = example_result(example_name)
    text = render_markdown(result)
    lab = {row["item"]: row for row in result.to_dict()["lab_results"]}
    rows = {line.split("|")[1].strip(): line for line in text.splitlines()
            if line.startswith("| `measurements[")}
    assert set(rows) == {f"`{item}`" for item in lab}
    if lab:
        assert "## Laboratory results" in text
    for m in result.case.measurements:
        row = rows[f"`measurements[{m.index}]`"]
        raw = m.raw_value
        shown = f"{raw:g}" if isinstance(raw, float) else str(raw)
        assert f"{shown} {m.unit}".strip() in row
        assert num_text(m.value) in row
        used = lab[f"measurements[{m.index}]"]["used"]
        assert ("| used" in row) == used and ("not used" in row) != used
