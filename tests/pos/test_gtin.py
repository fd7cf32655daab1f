"""GTIN normalisation: the spellings a scanner may send for one item find the same product."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pos.domain.gtin import barcode_problem, check_digit, ean13, is_valid_gtin, lookup_key


@pytest.mark.parametrize(
    "code",
    ["036000291452", "0036000291452", "00036000291452", " 036000291452\n"],
)
def test_upc_a_ean13_and_gtin14_share_one_key(code: str) -> None:
    assert lookup_key(code) == "00036000291452"


@pytest.mark.parametrize(
    ("code", "key"),
    [
        ("6921168509256", "06921168509256"),  # EAN-13
        ("96385074", "00000096385074"),  # EAN-8
        ("04252614", "00042100005264"),  # UPC-E, expanded to its UPC-A
        ("042100005264", "00042100005264"),  # that UPC-A
        ("6921168509257", "6921168509257"),  # bad check digit: not a GTIN, kept as typed
        ("COLA-1", "COLA-1"),
        ("  A12  ", "A12"),
        ("12345", "12345"),
        (
            "６９２１１６８５０９２５６",
            "６９２１１６８５０９２５６",
        ),  # full-width digits are not GTIN
    ],
)
def test_lookup_key(code: str, key: str) -> None:
    assert lookup_key(code) == key


@pytest.mark.parametrize(
    ("code", "problem"),
    [
        ("6921168509256", None),
        ("6921168509257", "check digit is 7, expected 6"),
        ("036000291453", "check digit is 3, expected 2"),
        ("INTERNAL-7", None),
        ("04252614", None),  # a valid UPC-E
        ("04252615", "fits neither EAN-8 nor UPC-E"),
        ("", "empty barcode"),
    ],
)
def test_barcode_problem_reports_wrong_check_digits(code: str, problem: str | None) -> None:
    found = barcode_problem(code)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


@given(st.text(alphabet="0123456789", min_size=12, max_size=12))
def test_every_completed_ean13_is_valid_and_keys_to_14_digits(body: str) -> None:
    code = ean13(body)
    assert is_valid_gtin(code)
    assert lookup_key(code) == "0" + code
    wrong = code[:-1] + str((int(code[-1]) + 1) % 10)
    assert not is_valid_gtin(wrong)


def test_check_digit_known_value() -> None:
    assert check_digit("692116850925") == 6
