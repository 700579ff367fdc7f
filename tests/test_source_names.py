"""Source names: what is accepted, and what a refusal says (no database needed)."""

import pytest

from kandji_bridge.source_registry import InvalidSource, validate_name


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("prod", "prod"),
        ("Acme EU", "Acme EU"),
        ("  padded  ", "padded"),
        ("acme-us_2.old", "acme-us_2.old"),
        ("Société Générale", "Société Générale"),
        ("x" * 64, "x" * 64),
        ("7", "7"),
    ],
)
def test_accepted_names(given: str, kept: str) -> None:
    assert validate_name(given) == kept


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("", "The source name is empty; use 1 to 64 letters, digits, spaces, dashes (-), "
         "underscores (_) and dots (.)."),
        ("   ", "The source name is empty"),
        ("x" * 65, "The source name is 65 characters long; use at most 64."),
        ("acme/eu;rm", "The source name contains '/' ';'; use only letters, digits, spaces, "
         "dashes (-), underscores (_) and dots (.)."),
        ("two\nlines", r"contains '\n'"),
        ("tab\there", r"contains '\t'"),
        ("$(reboot)", "contains '$' '(' ')'"),
    ],
)  # fmt: skip
def test_refused_names(given: str, message: str) -> None:
    with pytest.raises(InvalidSource) as caught:
        validate_name(given)
    assert message in str(caught.value)
