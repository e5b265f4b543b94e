"""Errors a user can fix: each message is one line naming the key or file and the fix.

Every library error meant for the user derives from `UserError`; the command line catches it once
(`iseat.cli.main`), prints the line and exits with status 2. The subclasses keep `ValueError` as a
second base so callers that catch `ValueError` still do.
"""


class RunFailed(Exception):
    """A run that failed for a reason other than its input (e.g. training diverged); the message is one
    line and the command line exits with the subclass's `exit_status` (never 2, which means bad input)."""

    exit_status = 1


class UserError(Exception):
    """Bad input (a config key, a file, an output location) or a refused action; the message is one line."""


class ParameterError(UserError, ValueError):
    """A bad value of named inputs. `reason` holds a `{0}`, `{1}`, ... field where each of `parameters` (the
    library's names, e.g. `eps`, `pgd_steps`) is named; the message names them so. A command line that took
    the values from flags names its flags instead (`named`), chosen by the parameter, not from the text."""

    def __init__(self, reason: str, *parameters: str):
        self.reason, self.parameters = reason, parameters
        super().__init__(self.named(parameters))

    def named(self, names) -> str:
        """The message with these names (e.g. command-line flags) for the parameters, in their order."""
        return self.reason.format(*names)


class OutputLocked(UserError):
    """Another process holds the output (run folder or evaluation report)."""


class RunFolderError(UserError, ValueError):
    """A run folder that is not an intact iseat run (missing config, log or metrics beside a saved state)."""


class RunFolderInputError(RunFolderError, ParameterError):
    """A run folder location that cannot hold a run (`out` is a file)."""


class ResumeStateError(UserError, ValueError):
    """A resume state (state.pt) that is damaged, foreign or tampered with."""


class AVLogError(UserError, ValueError):
    """A missing, damaged or foreign AV log, or an epoch or sample it does not (yet) hold."""


class AVLogMissing(AVLogError, FileNotFoundError):
    """An AV log that does not exist (still a FileNotFoundError for callers that catch that)."""


def literal(text: str) -> str:
    """`text` to stand as itself inside a ParameterError's reason (its braces doubled)."""
    return str(text).replace("{", "{{").replace("}", "}}")


def first_line(err: BaseException, limit: int = 160) -> str:
    """An exception's message cut to its first line, for quoting inside a one-line error."""
    text = str(err).strip()
    return text.splitlines()[0][:limit] if text else type(err).__name__
