"""The error hierarchy: what can go wrong, and whether retrying may help.

    PlowlineError
    ├── ConfigError          bad configuration: names the key and the fix; fatal at start-up
    ├── UnknownComponent     a registry name that does not exist (lists the known ones)
    ├── TransientError       a retry may succeed (a broker is down, a disk is momentarily full)
    │   └── TransportError   a stream transport failed to read or write
    └── PermanentError       retrying the same input gives the same failure
        └── PayloadDecodeError  bytes that are not a CollectorPayload
"""

from __future__ import annotations


class PlowlineError(Exception):
    """Root of every error Plowline raises on purpose."""


class ConfigError(PlowlineError):
    """Configuration that cannot work; the message names the key and how to fix it."""

    def __init__(self, key: str, problem: str, fix: str = "") -> None:
        self.key = key
        self.problem = problem
        self.fix = fix
        message = f"{key}: {problem}"
        if fix:
            message += f" (fix: {fix})"
        super().__init__(message)


class UnknownComponent(PlowlineError):
    """A component name that no registry knows."""


class TransientError(PlowlineError):
    """A failure that a retry may clear."""


class PermanentError(PlowlineError):
    """A failure that retrying the same input will repeat."""


class TransportError(TransientError):
    """A stream transport could not read or write."""


class PayloadDecodeError(PermanentError):
    """Bytes that do not decode as a CollectorPayload."""
