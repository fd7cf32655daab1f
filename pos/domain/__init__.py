"""Pure rules of the store (money, carts, codes): no I/O, no UI."""
