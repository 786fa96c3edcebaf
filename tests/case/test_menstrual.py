"""Reading the free-text menstrual phase."""

from __future__ import annotations

import pytest

from neb_bayes.case.menstrual import phase_from_cycle_day, read_menstrual_phase


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("follicular", {"phase": "follicular"}),
        ("follicular (day 9)", {"phase": "follicular", "cycle_day": 9}),
        ("luteal (day 22)", {"phase": "luteal", "cycle_day": 22}),
        ("CD21, post-ovulatory", {"phase": "luteal", "cycle_day": 21}),
        ("ovulatory", {"phase": "ovulatory"}),
        ("mid-cycle", {"phase": "ovulatory"}),
        (
            "amenorrhoeic for 5 months",
            {"phase": "amenorrhoeic", "disturbance": "amenorrhoea", "duration_months": 5.0},
        ),
        ("amenorrhea x 1 year", {"phase": "amenorrhoeic", "duration_months": 12.0}),
        (
            "oligomenorrhoea (cycles 50-90 days)",
            {"phase": None, "disturbance": "oligomenorrhoea", "cycle_length_days": (50.0, 90.0)},
        ),
        ("anovulatory cycles", {"phase": None, "disturbance": "anovulation"}),
        (
            "irregular, 35-60 day cycles",
            {"disturbance": "irregular", "cycle_length_days": (35.0, 60.0)},
        ),
        (
            "on combined OCP, active-pill week",
            {"phase": "hormonal_contraception", "pill_week": "active"},
        ),
        ("COC, pill-free week", {"phase": "hormonal_contraception", "pill_week": "pill_free"}),
        ("pregnant", {"phase": "pregnant"}),
        ("postmenopausal", {"phase": "postmenopausal"}),
        ("unknown", {"phase": "unknown"}),
        ("Luteal", {"phase": "luteal"}),
    ],
)
def test_reads_what_is_written(text: str, expected: dict) -> None:
    reading = read_menstrual_phase(text)
    assert reading is not None
    for key, value in expected.items():
        assert getattr(reading, key) == value, (text, key)


@pytest.mark.parametrize(
    ("text", "months"),
    [
        ("no period for 18 months", 18.0),
        ("no periods for 2 years", 24.0),
        ("no menses for 14 months", 14.0),
        ("last period 13 months ago", 13.0),
        ("LMP 13 months ago", 13.0),
        ("amenorrhoea for 1 year", 12.0),
    ],
)
def test_common_wordings_of_amenorrhoea_with_a_duration(text: str, months: float) -> None:
    reading = read_menstrual_phase(text)
    assert reading is not None, text
    assert (reading.phase, reading.disturbance) == ("amenorrhoeic", "amenorrhoea"), text
    assert reading.duration_months == pytest.approx(months), text


@pytest.mark.parametrize("text", ["last period 2 weeks ago", "last period 2 months ago"])
def test_a_recent_last_period_is_not_amenorrhoea(text: str) -> None:
    reading = read_menstrual_phase(text)
    assert reading is None or reading.disturbance is None, text


@pytest.mark.parametrize("text", ["it varies", "see notes", "perimenopausal", ""])
def test_unreadable_text_gives_none(text: str) -> None:
    assert read_menstrual_phase(text) is None


@pytest.mark.parametrize(
    ("day", "length", "phase"),
    [
        (3, None, "follicular"),
        (14, None, "ovulatory"),
        (22, None, "luteal"),
        (21, (28.0, 28.0), "luteal"),
        (21, (35.0, 35.0), "ovulatory"),  # a longer cycle ovulates later
        (25, (35.0, 35.0), "luteal"),
    ],
)
def test_phase_from_cycle_day(day: int, length, phase: str) -> None:
    assert phase_from_cycle_day(day, length)[0] == phase


@pytest.mark.parametrize(
    ("day", "length"),
    [(30, None), (29, (28.0, 28.0)), (16, (26.0, 34.0))],  # past the cycle; ends disagree
)
def test_cycle_day_that_settles_no_phase(day: int, length) -> None:
    phase, basis = phase_from_cycle_day(day, length)
    assert phase is None
    assert "cycle" in basis
