"""Errors of the data layer: each message is one line naming what is wrong and how to fix it."""

from iseat.common.errors import ParameterError, UserError


class DataError(UserError, ValueError):
    """Missing, malformed or unverifiable data; the message is one line."""


class FetchError(DataError):
    """A download or staging step that failed; the message says which file to get and how to stage it."""


class DataInputError(DataError, ParameterError):
    """A bad fetch or conversion setting (`source`, `url`, `limit`, `sha256`, `expected_count`), named so."""
