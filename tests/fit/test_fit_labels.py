"""`neb-bayes priors fit --labels`: every problem of a labels file found before the fit
starts (exit 2, the file, the id and what is known named), ids matched as the case reader
gives them, several conditions read as all of them."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from neb_bayes.case import read_case
from neb_bayes.cli import main
from neb_bayes.fit_inputs import LabelError, labels_for, parse_label
from neb_bayes.model.compiled import load_model

#: a tiny fit, should a test's labels ever reach the sampler
TINY = ["--fit", "prevalence", "--draws", "10", "--tune", "10", "--force", "--no-progress"]


def _case(cid, sex="F"):
    return {"id": cid, "patient": {"sex": sex, "age": 40}, "measurements": [
        {"analyte": "tsh", "specimen": "serum", "value": 2.0, "unit": "mIU/L"}]}


@pytest.fixture(scope="module")
def model():
    return load_model()


@pytest.fixture
def cohort(tmp_path):
    path = tmp_path / "cohort.jsonl"
    path.write_text("".join(json.dumps(_case(cid)) + "\n" for cid in ("p-1", "p-2", 7)))
    return path


def _fit(tmp_path, cohort, labels_text, name="labels.yaml"):
    labels = tmp_path / name
    labels.write_text(labels_text)
    out = tmp_path / "out.nc"
    res = CliRunner().invoke(main, ["priors", "fit", str(cohort), "--out", str(out),
                                    "--labels", str(labels), *TINY])
    return res, out


@pytest.mark.parametrize("text,told", [
    # a mistyped id, one that differs in letter case: the researcher must know before a fit
    ("p-9: [none]\n", ["p-9: no case of the cohort has this id"]),
    ("P-1: [none]\n", ["P-1: no case of the cohort has this id", "did you mean p-1?"]),
    # an unknown condition: the known ones named
    ("p-1: [hypothyroidism]\n", ["p-1: unknown condition(s) 'hypothyroidism'",
                                 "primary_hypothyroidism", "none"]),
    # conditions that exclude each other
    ("p-1: [primary_hypothyroidism, none]\n", ["p-1: conditions primary_hypothyroidism, none "
                                               "exclude each other", "thyroid"]),
    ("p-1: [prediabetes, diabetes]\n", ["p-1: conditions prediabetes, diabetes", "metabolic"]),
    # a misspelled state or axis: a usage error, not a person who cannot have it
    ("p-1: {thyroid: hypothyroid}\n", ["p-1: thyroid: unknown state(s) 'hypothyroid'",
                                       "subclinical_hypothyroidism"]),
    ("p-1: {thyriod: normal}\n", ["p-1: unknown axis 'thyriod'", "thyroid"]),
    # the file's shape
    ("- p-1\n- p-2\n", ["expected a mapping of case id -> label, got a list"]),
    ("p-1: 42\n", ["p-1: expected a condition id", "got the number 42"]),
    ("p-1: [none\n", ["malformed YAML", "line 2"]),
    ("p-1: [none]\np-1: [pcos]\n", ["found the key 'p-1' twice"]),
])
def test_bad_labels_stop_the_fit_before_sampling(tmp_path, cohort, text, told):
    res, out = _fit(tmp_path, cohort, text)
    assert res.exit_code == 2, res.output
    assert "labels file" in res.output and "labels.yaml" in res.output
    for t in told:
        assert t in res.output, res.output
    assert "internal error" not in res.output and "Traceback" not in res.output
    assert "fitting prevalence" not in res.output      # stopped before the fit was set up
    assert not out.exists()


def test_every_problem_is_named_at_once(tmp_path, cohort):
    res, _ = _fit(tmp_path, cohort, "p-9: [none]\np-1: [pcoss]\np-2: {thyroid: x}\n")
    assert res.exit_code == 2
    assert "3 problem(s)" in res.output
    assert all(f"  - {cid}:" in res.output for cid in ("p-9", "p-1", "p-2")), res.output


def test_the_drop_unsupported_option_does_not_hide_a_misspelled_state(tmp_path, cohort):
    labels = tmp_path / "labels.yaml"
    labels.write_text("p-1: {thyroid: hypothyroid}\n")
    res = CliRunner().invoke(main, ["priors", "fit", str(cohort), "--out", str(tmp_path / "o.nc"),
                                    "--labels", str(labels), "--drop-unsupported", *TINY])
    assert res.exit_code == 2 and "unknown state(s) 'hypothyroid'" in res.output, res.output


def test_labels_match_ids_as_the_case_reader_gives_them(model, tmp_path):
    """An integer id (``id: 7``) is the text ``7``: a YAML key ``7:`` labels it; a key's
    surrounding spaces go, as an id's do."""
    cases = [read_case(_case(cid)) for cid in (7, " p-1 ", "p-2")]
    path = tmp_path / "labels.yaml"
    path.write_text("7: [pcos]\n' p-1': [none]\n")
    labs = labels_for(model, cases, path)
    assert labs == [parse_label(model, ["pcos"])[0], parse_label(model, "none")[0], None]
    assert labs[0] and labs[1]


def test_labels_of_skipped_cases_are_not_unknown(model, tmp_path):
    """A label for a case left out for errors in its file (already reported) is not
    applied, and not an error; any other id not in the cohort is."""
    cases = [read_case(_case("p-1"))]
    path = tmp_path / "labels.yaml"
    path.write_text("p-1: [none]\nbad-case: [pcos]\n")
    with pytest.raises(LabelError, match="bad-case: no case of the cohort"):
        labels_for(model, cases, path)
    assert labels_for(model, cases, path, skipped_ids={"bad-case"})[0] is not None


def test_several_conditions_mean_all_of_them_in_any_order(model):
    """A person labelled with several conditions is in the states consistent with every one
    (on each axis the intersection of each condition's states), whatever their order."""
    a, problems = parse_label(model, ["prediabetes", "insulin_resistance"])
    b, _ = parse_label(model, ["insulin_resistance", "prediabetes"])
    assert problems == [] and a == b
    metabolic = model.axes[model.axis_index("metabolic")]
    both = [s for k, s in enumerate(metabolic.states)
            if all(model.cond_states[model.conditions.index(c)][k]
                   for c in ("prediabetes", "insulin_resistance"))]
    assert a == {"metabolic": both} and both
    # conditions on different axes restrict each axis on its own
    c, _ = parse_label(model, ["pcos", "primary_hypothyroidism"])
    assert c == {"gonadal": ["pcos"], "thyroid": ["primary_hypothyroidism"]}

