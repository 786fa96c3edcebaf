"""The batch's plain reader reads a collection date-time as the full reader does.

:func:`~neb_bayes.case.measurements.plain_dated` splits a date-time into the clock time the
plain reader's result form reads and the date its day offsets count from; on a grid of
dates, clock times, separators and offsets, every form it accepts gives the full reader's
hour and date, and the forms archives write are among them.
"""

from __future__ import annotations

import itertools

import pytest

from neb_bayes.case.collect import Collector
from neb_bayes.case.measurements import _collected, plain_dated

DATES = ["2024-03-01", "2023-12-31", "2024-02-29", "2023-02-29", "0001-01-01", "9999-12-31"]
TIMES = ["00:00", "08:40", "23:59:59", "24:00", "08:60", "8:40", "08:40:60", "08:40:05.5"]
SEPARATORS = ["T", " ", "t", "_"]
OFFSETS = ["", "Z", "+01:00", "-0530", "+24:00", "+01", "z"]


def _full(text: str):
    c = Collector()
    hour, when = _collected(c, text, "collected")
    return hour, when, c.errors


def test_every_accepted_form_reads_as_the_full_reader_reads_it():
    accepted = 0
    for d, t, s, z in itertools.product(DATES, TIMES, SEPARATORS, OFFSETS):
        text = f"{d}{s}{t}{z}"
        got = plain_dated(text)
        if got is None:
            continue
        accepted += 1
        hour, when, errors = _full(text)
        assert not errors and when is not None, text
        clock_hour, clock_when, _ = _full(got[0])
        assert clock_when is None and clock_hour == hour and got[1] == when.toordinal(), text
    assert accepted >= 100


@pytest.mark.parametrize("text", ["2024-03-01T08:40", "2024-03-01T08:40:15", "2024-03-01 08:40",
                                  "2024-03-01T08:40:15Z", "2024-03-01T08:40+01:00",
                                  "2024-02-29T23:59:59-05:30"])
def test_the_forms_archives_write_are_plain(text):
    assert plain_dated(text) is not None


@pytest.mark.parametrize("text", ["2024-03-01", "2024-02-30T08:00", "2024-03-01T24:00",
                                  "2024-03-01T08:40:05.5", " 2024-03-01T08:40", "08:40",
                                  "2024-03-01T8:40"])
def test_other_forms_are_left_to_the_full_reader(text):
    """(The full reader reads some of these and reports the others.)"""
    assert plain_dated(text) is None
