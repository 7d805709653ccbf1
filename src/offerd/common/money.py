"""Money on the page: integer minor units formatted for people."""

from __future__ import annotations

_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹"}
_ZERO_DECIMAL = {"JPY", "KRW", "VND", "CLP", "ISK"}


def money(amount: int, currency: str) -> str:
    """``4900, "USD"`` -> ``$49.00``; unknown symbols -> ``49.00 CHF``."""
    sign, amount = ("-", -amount) if amount < 0 else ("", amount)
    if currency in _ZERO_DECIMAL:
        number = f"{sign}{amount:,}"
    else:  # integer arithmetic: no float rounding, however large the amount
        number = f"{sign}{amount // 100:,}.{amount % 100:02d}"
    symbol = _SYMBOLS.get(currency)
    return f"{symbol}{number}" if symbol else f"{number} {currency}"
