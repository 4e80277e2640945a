"""Errors meant for the person running Early Signal, not for a debugger.

Anything raised as an `EarlySignalError` is shown by the CLI as a plain message
(no traceback) and ends the command with exit code 2.
"""


class EarlySignalError(Exception):
    """A problem the user can fix: bad input, bad config, a missing approval."""


class ConfigError(EarlySignalError):
    """The project config is invalid; the message names the YAML key and the bad value."""


class ContractError(EarlySignalError):
    """An input file cannot be used at all; the message names the file, the column and what was expected."""


class ApprovalError(EarlySignalError):
    """A model is not approved for scoring, or its approval no longer matches its artefact."""


class UnusableDataError(ContractError):
    """Validation left nothing usable (a required table with no accepted rows) or quarantined too much."""


class DisclosureError(EarlySignalError, ValueError):
    """Published tables cannot be made safe: a withheld small count can still be worked back by differencing
    and nothing is left to withhold (a ValueError too, for callers that catch the differencing check's)."""
