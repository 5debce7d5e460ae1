"""Errors a user can act on: each renders as one line, never a traceback."""

from __future__ import annotations


class ProvisionerError(Exception):
    """A failure with a message fit for the user: what went wrong and how to fix it."""

    exit_code = 1

    def __init__(self, message: str, *, host: str | None = None, fix: str | None = None) -> None:
        self.host = host
        self.problem = message
        self.fix = fix
        super().__init__(self.line())

    def line(self) -> str:
        text = f"{self.host}: {self.problem}" if self.host else self.problem
        if self.fix:
            text = f"{text} ({self.fix})"
        return text


class UsageError(ProvisionerError):
    """Bad input on the command line: a malformed target, a missing file."""

    exit_code = 2


class HostErrors(ProvisionerError):
    """Several hosts failed a check; one line per host."""

    def __init__(self, errors: list[ProvisionerError]) -> None:
        self.errors = errors
        super().__init__("; ".join(e.line() for e in errors))

    def lines(self) -> list[str]:
        return [e.line() for e in self.errors]
