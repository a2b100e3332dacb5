"""RSVP error codes in words (issue 18: a failed service said only ``PathErr (24, 5)``)."""

from __future__ import annotations

from gmpls.rsvp.constants import error_text


def test_error_codes_and_values_in_words() -> None:
    assert error_text(24, 5) == "routing problem: no route"
    assert error_text(24, 6) == "routing problem: unacceptable label"
    assert error_text(21, 4) == "traffic control error: bad tspec"
    assert error_text(252, 2) == "QE error: tail join failed"
    assert error_text(23, 0) == "RSVP system error"
    assert error_text(1, 2) == "admission control failure, value 2"
    assert error_text(24, 77) == "routing problem: value 77"
    assert error_text(99, 1) == "error code 99, value 1"
