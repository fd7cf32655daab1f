"""Cart rules: merge by SKU, quantities, totals with tax included, payments that settle."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pos.domain.cart import MAX_QTY, Cart, Payment, Product, Tender, settle
from pos.domain.errors import CartError, PaymentError

WATER = Product("W", "农夫山泉 550ml", 200, 1300)
COLA = Product("C", "Coca-Cola", 350, 1300)
RICE = Product("R", "大米 5kg", 4990, 900)


def test_adding_the_same_sku_merges_into_one_line() -> None:
    cart = Cart().add(WATER, code="6921168509256").add(COLA).add(WATER, 2)
    assert [(line.sku, line.qty) for line in cart.lines] == [("W", 3), ("C", 1)]
    assert cart.lines[0].code == "6921168509256"
    assert cart.count == 4
    assert cart.total == 3 * 200 + 350


def test_cart_is_a_value_old_carts_do_not_change() -> None:
    empty = Cart()
    one = empty.add(WATER)
    assert empty.is_empty and one.count == 1


@pytest.mark.parametrize(
    ("qty", "expected"),
    [(5, [("W", 5), ("C", 1)]), (1, [("W", 1), ("C", 1)]), (0, [("C", 1)])],
)
def test_set_qty_changes_or_removes(qty: int, expected: list[tuple[str, int]]) -> None:
    cart = Cart().add(WATER, 2).add(COLA).set_qty("W", qty)
    assert [(line.sku, line.qty) for line in cart.lines] == expected


@pytest.mark.parametrize("qty", [-1, MAX_QTY + 1])
def test_bad_quantities_are_refused(qty: int) -> None:
    with pytest.raises(CartError):
        Cart().add(WATER).set_qty("W", qty)


def test_remove_and_unknown_sku() -> None:
    cart = Cart().add(WATER).add(COLA).remove("W")
    assert [line.sku for line in cart.lines] == ["C"]
    with pytest.raises(CartError, match="not in the cart"):
        cart.remove("W")
    with pytest.raises(CartError):
        Cart().add(WATER, 0)


def test_totals_include_tax_per_line() -> None:
    cart = Cart().add(WATER, 3).add(RICE)
    # 600 at 13 % -> 69.03 -> 69; 4990 at 9 % -> 412.02 -> 412
    assert cart.total == 5590
    assert cart.tax_total == 69 + 412


@pytest.mark.parametrize(
    ("payments", "change"),
    [
        ([Payment.cash(1000)], 0),
        ([Payment.cash(1000, tendered=2000)], 1000),
        ([Payment(Tender.CARD, 1000, reference="slip-88")], 0),
        ([Payment(Tender.WALLET, 400, reference="2851 2345 6789"), Payment.cash(600, 1000)], 400),
        ([Payment(Tender.CARD, 300), Payment(Tender.WALLET, 700, reference="code")], 0),
    ],
)
def test_settle_accepts_exact_and_split_payments(payments: list[Payment], change: int) -> None:
    assert settle(1000, payments) == change


@pytest.mark.parametrize(
    ("payments", "message"),
    [
        ([], "no payment"),
        ([Payment.cash(900)], "still to pay"),
        ([Payment(Tender.CARD, 1200)], "exceed the total"),
    ],
)
def test_settle_refuses_short_or_over_payment(payments: list[Payment], message: str) -> None:
    with pytest.raises(PaymentError, match=message):
        settle(1000, payments)


def test_payment_rules() -> None:
    with pytest.raises(PaymentError, match="wallet code"):
        Payment(Tender.WALLET, 100)
    with pytest.raises(PaymentError, match="only cash"):
        Payment(Tender.CARD, 100, tendered=200)
    with pytest.raises(PaymentError, match="less than"):
        Payment(Tender.CASH, 100, tendered=50)
    with pytest.raises(PaymentError):
        Payment(Tender.CASH, 0)
    with pytest.raises(TypeError):
        Payment(Tender.CASH, 1.5)  # type: ignore[arg-type]


products = st.builds(
    Product,
    sku=st.sampled_from(["A", "B", "C", "D"]),
    name=st.just("x"),
    price=st.integers(min_value=0, max_value=100_000),
    tax_rate_bp=st.sampled_from([0, 600, 900, 1300]),
)


@given(st.lists(st.tuples(products, st.integers(min_value=1, max_value=50)), max_size=30))
def test_any_sequence_of_adds_keeps_one_line_per_sku_and_exact_totals(
    adds: list[tuple[Product, int]],
) -> None:
    cart = Cart()
    for product, qty in adds:
        cart = cart.add(product, qty)
    skus = [line.sku for line in cart.lines]
    assert len(skus) == len(set(skus))
    assert cart.count == sum(qty for _, qty in adds)
    assert cart.total == sum(line.unit_price * line.qty for line in cart.lines)
    assert 0 <= cart.tax_total <= cart.total
