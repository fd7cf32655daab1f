"""Validation and meaning of scanned texts: what the till rings up, refuses or routes."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from biip.checksums import gs1_standard_check_digit

from scanner import MeasureLayout, ParseSettings, ScanRejected, parse_text

AT = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def with_check(body: str) -> str:
    return body + str(gs1_standard_check_digit(body))


@pytest.mark.parametrize(
    ("text", "symbology", "gtin"),
    [
        ("4007817327098", "EAN-13", "04007817327098"),
        ("4007817327098", None, "04007817327098"),
        ("036000291452", "UPC-A", "00036000291452"),  # UPC-A and its EAN-13 spelling meet
        ("0036000291452", "EAN-13", "00036000291452"),
        ("12345670", "EAN-8", "00000012345670"),
        ("01234565", "UPC-E", "00012345000065"),  # UPC-E expanded to UPC-A
        ("01234531", None, "00012300000451"),  # wedge: valid only as UPC-E
        ("30712345000010", "ITF", "30712345000010"),  # ITF-14 carton code
    ],
)
def test_gtins_are_validated_and_normalised_to_14_digits(text, symbology, gtin) -> None:
    event = parse_text(text, symbology=symbology, source="camera", at=AT)
    assert event.kind == "product"
    assert event.gtin == gtin
    assert event.text == text  # the raw text is kept as read
    assert event.lookup_code == gtin
    assert event.at == AT


@pytest.mark.parametrize(
    ("text", "symbology"),
    [
        ("4007817327099", "EAN-13"),
        ("4007817327099", None),
        ("036000291453", "UPC-A"),
        ("12345678", "EAN-8"),
        ("01234566", "UPC-E"),
        ("30712345000011", "ITF"),
        ("400781732709X", "EAN-13"),
    ],
)
def test_a_bad_check_digit_is_rejected_never_passed_on(text, symbology) -> None:
    with pytest.raises(ScanRejected) as info:
        parse_text(text, symbology=symbology, source="wedge", at=AT)
    assert info.value.text.strip() == text
    assert info.value.reason


def test_wedge_text_is_trimmed_and_time_defaults_to_an_aware_now() -> None:
    event = parse_text("  4007817327098\r\n")
    assert event.gtin == "04007817327098"
    assert event.source == "wedge"
    assert event.at.tzinfo is not None


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_text("4007817327098", at=datetime(2026, 1, 1))


def test_code128_digits_of_gtin_length_are_not_mistaken_for_a_gtin() -> None:
    event = parse_text("10064908", symbology="Code 128", source="camera", at=AT)
    assert event.kind == "unknown"
    assert event.gtin is None


def test_aim_symbology_identifier_from_a_wedge_scanner() -> None:
    event = parse_text("]E04007817327098", at=AT)
    assert event.symbology == "EAN-13"
    assert event.gtin == "04007817327098"
    assert parse_text("]C010064908", at=AT).kind == "unknown"


# -- variable measure (restricted circulation) --------------------------------------------------


def test_price_embedded_label_with_default_layout() -> None:
    code = with_check("201234501234")  # prefix 20, item 12345, price 012.34
    event = parse_text(code, symbology="EAN-13", source="camera", at=AT)
    assert event.kind == "variable_measure"
    assert event.item_code == "12345"
    assert event.price_minor == 1234
    assert event.weight_g is None
    assert event.gtin == "0" + code
    assert event.lookup_code == "12345"


def test_weight_embedded_label_with_default_layout() -> None:
    code = with_check("281234500750")  # prefix 28, item 12345, 0.750 kg
    event = parse_text(code, at=AT)
    assert event.kind == "variable_measure"
    assert (event.item_code, event.weight_g, event.price_minor) == ("12345", 750, None)


def test_configurable_layout_with_price_check_digit() -> None:
    # Prefix 23, 4-digit item, a price check digit, 5-digit price with 2 decimals.
    settings = ParseSettings(
        layouts=(MeasureLayout(frozenset({"23"}), "PPPPPPCVVVVV", "price", 2),)
    )
    from biip.checksums import gs1_price_weight_check_digit

    price = "00599"
    body = "231234" + str(gs1_price_weight_check_digit(price)) + price
    event = parse_text(with_check(body[:12]), settings=settings, at=AT)
    assert event.kind == "variable_measure"
    assert event.item_code == "1234"
    assert event.price_minor == 599

    wrong = "231234" + str((gs1_price_weight_check_digit(price) + 1) % 10) + price
    with pytest.raises(ScanRejected, match="price/weight check digit"):
        parse_text(with_check(wrong[:12]), settings=settings, at=AT)


def test_weight_layout_with_one_decimal_grams_are_integers() -> None:
    settings = ParseSettings(
        layouts=(MeasureLayout(frozenset({"29"}), "PPPPPPPPVVVV", "weight", 1),)
    )
    event = parse_text(with_check("291234560125"), settings=settings, at=AT)  # 12.5 kg
    assert (event.item_code, event.weight_g) == ("123456", 12500)


def test_a_restricted_prefix_without_a_layout_is_a_plain_product() -> None:
    event = parse_text(with_check("201234501234"), settings=ParseSettings(layouts=()), at=AT)
    assert event.kind == "product"
    assert event.price_minor is None


def test_bad_layout_patterns_are_refused() -> None:
    with pytest.raises(ValueError):
        MeasureLayout(frozenset({"20"}), "PPPPPVVVVV", "price", 2)


# -- GS1 element strings ------------------------------------------------------------------------


def test_gs1_128_with_weight_lot_and_expiry() -> None:
    text = "0109506000134352" + "3102001250" + "10LOT42\x1d" + "17260131"
    event = parse_text(text, symbology="Code 128", source="camera", gs1=True, at=AT)
    assert event.kind == "gs1"
    assert event.gtin == "09506000134352"
    assert event.weight_g == 12500
    assert event.lot == "LOT42"
    assert event.expiry == date(2026, 1, 31)
    assert event.ai["3102"] == "001250"


def test_gs1_price_and_serial_in_human_readable_form() -> None:
    event = parse_text("(01)09506000134352(3922)001999(21)SN-7", at=AT)
    assert event.kind == "gs1"
    assert event.price_minor == 1999
    assert event.serial == "SN-7"


def test_gs1_qr_from_a_wedge_with_symbology_identifier() -> None:
    event = parse_text("]Q3010950600013435217261231", at=AT)
    assert event.kind == "gs1"
    assert event.symbology == "QR Code"
    assert event.expiry == date(2026, 12, 31)


def test_gs1_digital_link_qr() -> None:
    event = parse_text("https://id.gs1.org/01/09506000134352/10/ABC", symbology="QR Code", at=AT)
    assert (event.kind, event.gtin, event.lot) == ("gs1", "09506000134352", "ABC")


def test_gs1_with_a_bad_gtin_is_rejected() -> None:
    with pytest.raises(ScanRejected):
        parse_text("0109506000134353", symbology="Code 128", gs1=True, at=AT)


# -- the chain's own QR payloads and payment codes ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "sku", "value", "order_id"),
    [
        ("https://shop.example.com/p/A-1002", "product", "A-1002", None, None),
        ("http://m.example.cn/p/SKU_77/?from=tag#x", "product", "SKU_77", None, None),
        ("SKU:A-1002", "product", "A-1002", None, None),
        ("sku: 99.5 ", "product", "99.5", None, None),
        ("GUIDE:G0042", "guide", None, "G0042", None),
        ("MEMBER:88001234", "member", None, "88001234", None),
        ("PICKUP:ORD-20260101-17:482913", "pickup", None, "482913", "ORD-20260101-17"),
        ("P482913", "pickup", None, "482913", None),
    ],
)
def test_chain_qr_payloads(text, kind, sku, value, order_id) -> None:
    event = parse_text(text, symbology="QR Code", source="camera", at=AT)
    assert (event.kind, event.sku, event.value, event.order_id) == (kind, sku, value, order_id)


@pytest.mark.parametrize(
    "text", ["GUIDE:", "MEMBER:two words", "PICKUP:ORD-1", "PICKUP:ORD-1:12ab", "SKU:"]
)
def test_damaged_chain_payloads_are_rejected(text) -> None:
    with pytest.raises(ScanRejected):
        parse_text(text, symbology="QR Code", source="camera", at=AT)


@pytest.mark.parametrize(
    ("text", "provider"),
    [
        ("134567890123456789", "wechat"),
        ("104567890123456789", "wechat"),
        ("2812345678901234", "alipay"),
        ("301234567890123456789012", "alipay"),
    ],
)
def test_payment_codes_are_recognised_by_prefix_and_length(text, provider) -> None:
    event = parse_text(text, at=AT)
    assert (event.kind, event.provider, event.value) == ("payment", provider, text)


@pytest.mark.parametrize(
    "text",
    [
        "164567890123456789",  # 16 is not a WeChat prefix
        "13456789012345678",  # 17 digits
        "3112345678901234",  # 31 is not an Alipay prefix
        "2412345678901234",  # 24 is not an Alipay prefix
        "2812345678901234567890123",  # 25 digits
    ],
)
def test_near_miss_payment_codes_are_not_payments(text) -> None:
    assert parse_text(text, at=AT).kind == "unknown"


def test_unknown_payloads_come_through_as_text() -> None:
    event = parse_text("MEBKM:URL:http\\://x.org;;", symbology="QR Code", source="camera", at=AT)
    assert event.kind == "unknown"
    assert event.text == "MEBKM:URL:http\\://x.org;;"
    assert event.lookup_code == event.text


def test_empty_scan_is_rejected() -> None:
    with pytest.raises(ScanRejected):
        parse_text("  \r\n")


def test_scan_event_is_a_frozen_value() -> None:
    event = parse_text("4007817327098", at=AT)
    with pytest.raises(AttributeError):
        event.text = "x"  # type: ignore[misc]
    assert "gtin=04007817327098" in event.describe()
