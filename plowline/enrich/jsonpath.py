"""JSONPath as enrichment configs write it (the common Jayway syntax): compiled once, applied to parsed JSON."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jsonpath_ng import JSONPath, Root, This
from jsonpath_ng.exceptions import JSONPathError
from jsonpath_ng.ext.parser import parse as _parse
from jsonpath_ng.jsonpath import Child, Fields

FieldSteps = tuple[tuple[str, ...], ...]


class InvalidJsonPath(ValueError):
    """A string that is not a JSONPath expression this module can evaluate."""


def _field_steps(compiled: JSONPath) -> FieldSteps | None:
    """`$.a.b['c','d']` as (("a",), ("b",), ("c", "d")); None for any other shape of expression."""
    steps: list[tuple[str, ...]] = []
    node = compiled
    while isinstance(node, Child):
        right = node.right
        if type(right) is not Fields or "*" in right.fields:
            return None
        steps.append(tuple(right.fields))
        node = node.left
    return tuple(reversed(steps)) if type(node) is Root and steps else None


def _walk(node: Any, steps: FieldSteps, depth: int, visit: Callable[[dict[str, Any], str], None]) -> None:
    """Visit (parent, key) of every value a field chain selects; only objects have fields, as in jsonpath-ng."""
    if not isinstance(node, dict):
        return
    last = depth == len(steps) - 1
    for key in steps[depth]:
        if key in node:
            if last:
                visit(node, key)
            else:
                _walk(node[key], steps, depth + 1, visit)


@dataclass(frozen=True, slots=True)
class JsonPath:
    """One compiled expression: `$.field`, `$.a.b`, `$['a']`, `$.arr[*]`, `$.arr[0]`, `$..x`, `$.a[?(@.b == 'c')]`.

    Evaluation is relative to the value given, which is `$`. Backed by jsonpath-ng's extended parser;
    plain field chains (`$.a.b`, `$.['a', 'b']`, the usual PII and API-request paths) are walked
    directly, with the same results, because jsonpath-ng's generic evaluation costs microseconds each.
    """

    text: str
    _compiled: JSONPath
    _steps: FieldSteps | None

    @classmethod
    def parse(cls, text: str) -> JsonPath:
        if not isinstance(text, str) or not text.startswith("$"):
            raise InvalidJsonPath(f"{text!r} is not a JSONPath expression: it must start with '$'")
        try:
            compiled = _parse(text)
        except (JSONPathError, ValueError, TypeError) as exc:
            raise InvalidJsonPath(f"{text!r} is not a valid JSONPath expression: {exc}") from None
        return cls(text, compiled, _field_steps(compiled))

    def find(self, data: Any) -> list[Any]:
        """The values the expression selects, in document order; [] when nothing matches."""
        if self._steps is None:
            return [match.value for match in self._compiled.find(data)]
        found: list[Any] = []
        _walk(data, self._steps, 0, lambda parent, key: found.append(parent[key]))
        return found

    def map_matches(self, data: Any, function: Callable[[Any], Any]) -> Any:
        """Replace every selected value by `function(value)` (unless it returns None), in place; return `data`.

        Never creates keys or elements that are missing: a path that selects nothing changes nothing.
        """
        if self._steps is not None:
            def replace(parent: dict[str, Any], key: str) -> None:
                result = function(parent[key])
                if result is not None:
                    parent[key] = result

            _walk(data, self._steps, 0, replace)
            return data
        if isinstance(self._compiled, Root | This):
            # jsonpath-ng's root update returns the replacement object itself instead of calling it.
            return function(data)
        return self._compiled.update(data, lambda value, _parent, _key: function(value))

    def __str__(self) -> str:
        return self.text
