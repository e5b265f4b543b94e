"""Library errors name their parameters in the library's words; each command names its own flags for them,
chosen by the error's parameters, never by reading its text."""

from __future__ import annotations

import pytest

from iseat.cli import main
from iseat.common.errors import ParameterError, UserError, literal
from iseat.common.fraction import budget, parse_fraction


def test_message_names_parameters_and_keeps_literal_braces():
    err = ParameterError(f"{{0}} > 1 repeats the attack without {{1}} ({literal('{odd}')})", "restarts", "random_start")
    assert isinstance(err, UserError) and isinstance(err, ValueError)
    assert str(err) == "restarts > 1 repeats the attack without random_start ({odd})"
    assert (
        err.named(["--restarts", "--random-start"])
        == "--restarts > 1 repeats the attack without --random-start ({odd})"
    )


@pytest.mark.parametrize("value, expected", [("8/255", 8 / 255), (0.5, 0.5), ("0.25", 0.25), (3, 3.0)])
def test_parse_fraction(value, expected):
    assert parse_fraction(value) == expected


@pytest.mark.parametrize("value", ["eight", "1/0", "8/2/5", None])
def test_parse_fraction_refuses_non_numbers(value):
    with pytest.raises(ParameterError, match="eps .* is not a number or a fraction") as err:
        parse_fraction(value, "eps")
    assert err.value.parameters == ("eps",)


def test_budget_range():
    assert budget("0/255", "eps") == 0.0
    with pytest.raises(ParameterError, match=r"accepted range \(0, 0.25\]"):
        budget(0, "eps", positive=True)
    with pytest.raises(ParameterError, match="looks like pixels"):
        budget("8", "eps")


def test_a_command_names_its_flag(tmp_path, capsys):
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(tmp_path / "none.pt"),
                "--out",
                str(tmp_path / "aa.json"),
                "--pgd-step-size",
                "1/0",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err == "iseat evaluate: error: --pgd-step-size '1/0' is not a number or a fraction such as 8/255\n"
