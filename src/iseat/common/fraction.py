"""Budgets (eps, step sizes) written as a number or as a fraction such as "8/255": the one parser of the package."""

from __future__ import annotations

from iseat.common.errors import ParameterError, literal

MAX_BUDGET = 0.25  # l-inf budgets and step sizes above this are taken as pixels (8 for 8/255), a common mistake


def parse_fraction(value, parameter: str = "value") -> float:
    """8/255 written as a number, a numeric string or the string "8/255"; ParameterError naming `parameter`
    if it is none of these."""
    try:
        if isinstance(value, str) and "/" in value:
            num, den = value.split("/")
            return float(num) / float(den)
        return float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        raise ParameterError(
            f"{{0}} {literal(repr(value))} is not a number or a fraction such as 8/255", parameter
        ) from None


def budget(value, parameter: str, positive: bool = False) -> float:
    """An l-inf budget or step size in [0, 1] pixel units: in [0, 0.25] ((0, 0.25] when `positive`)."""
    number = parse_fraction(value, parameter)
    if not (0 < number if positive else 0 <= number) or number > MAX_BUDGET:
        low = "(0" if positive else "[0"
        raise ParameterError(
            f"{{0}} {literal(repr(value))} = {number:.4g} is outside the accepted range {low}, "
            f"{MAX_BUDGET}] ([0, 1] pixel units, e.g. 8/255; a larger value looks like pixels)",
            parameter,
        )
    return number
