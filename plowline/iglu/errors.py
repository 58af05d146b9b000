"""Iglu errors, each rendered as the JSON Snowplow's Iglu client puts in bad rows (spec/enrich.md 2.9, 4).

    PermanentError
    ├── NotIglu            the JSON is not a self-describing JSON (INVALID_IGLUURI, INVALID_SCHEMAVER,
    │                      INVALID_DATA_PAYLOAD, INVALID_SCHEMA)
    ├── InvalidSchemaDocument  a repository holds something that is not a usable schema (not JSON,
    │                      not an object, `self` names another schema): that repository is skipped
    ├── CriterionMismatch  a valid SDJ, but not of the schema expected at that place
    └── IgluError          resolution or validation failed for a schema key
        ├── ResolutionError   no repository has the schema
        └── ValidationError   the data (or the schema itself) is invalid
    TransientError
    └── RepositoryUnavailable  a repository could not be reached: retry, do not make a bad row
"""

from __future__ import annotations

from typing import Any

from plowline.errors import PermanentError, TransientError
from plowline.schema_key import SchemaCriterion, SchemaKey


class NotIglu(PermanentError):
    """Not a self-describing JSON; bad-row message `{"json": …, "error": code}`."""

    def __init__(self, json: Any, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.json = json
        self.code = code

    def to_json(self) -> dict[str, Any]:
        return {"json": self.json, "error": self.code}


class CriterionMismatch(PermanentError):
    """An SDJ whose schema is not the one required here; message `{"schemaKey", "schemaCriterion"}`."""

    def __init__(self, key: SchemaKey, criterion: SchemaCriterion) -> None:
        super().__init__(f"{key.uri} does not match {criterion}")
        self.key = key
        self.criterion = criterion

    def to_json(self) -> dict[str, Any]:
        return {"schemaKey": self.key.uri, "schemaCriterion": str(self.criterion)}


class IgluError(PermanentError):
    """A failure for one schema key; `to_json()` is `{"schemaKey": …, "error": <ClientError>}`."""

    def __init__(self, key: SchemaKey, message: str) -> None:
        super().__init__(message)
        self.key = key

    def client_error(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        return {"schemaKey": self.key.uri, "error": self.client_error()}


class ResolutionError(IgluError):
    """No repository holds the schema. `lookup_history` is Iglu's per-repository record."""

    def __init__(self, key: SchemaKey, lookup_history: list[dict[str, Any]]) -> None:
        super().__init__(key, f"schema {key.uri} not found in any repository")
        self.lookup_history = lookup_history

    def client_error(self) -> dict[str, Any]:
        return {"error": "ResolutionError", "lookupHistory": self.lookup_history}


class ValidationError(IgluError):
    """Invalid data (`data_reports`) or an invalid schema (`schema_issues`)."""

    def __init__(
        self,
        key: SchemaKey,
        data_reports: list[dict[str, Any]] | None = None,
        schema_issues: list[dict[str, Any]] | None = None,
        superseded_by: str | None = None,
    ) -> None:
        first = (data_reports or schema_issues or [{"message": "invalid"}])[0].get("message", "invalid")
        super().__init__(key, f"{key.uri}: {first}")
        self.data_reports = data_reports
        self.schema_issues = schema_issues
        self.superseded_by = superseded_by

    def client_error(self) -> dict[str, Any]:
        if self.schema_issues is not None:
            return {"error": "ValidationError", "schemaIssues": self.schema_issues}
        error: dict[str, Any] = {"error": "ValidationError", "dataReports": self.data_reports or []}
        if self.superseded_by is not None:
            error["supersededBy"] = self.superseded_by
        return error


class RepositoryUnavailable(TransientError):
    """A repository could not be reached (network, 5xx): the caller retries rather than failing the data."""


class InvalidSchemaDocument(PermanentError):
    """A repository answered with a document that is not the schema asked for; recorded as a RepoFailure."""
