"""HTTP header extractor: request headers whose name matches a Java regex, as org.ietf/http_header entities."""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

from plowline.enrich.enrichments.base import AssetStore, SelfDescribingJson
from plowline.enrich.errors import EnrichmentConfigError
from plowline.enrich.raw_event import RawEvent
from plowline.event import EnrichedEvent
from plowline.schema_key import SchemaCriterion

HTTP_HEADER_SCHEMA = "iglu:org.ietf/http_header/jsonschema/1-0-0"
_MAX_CACHED_NAMES = 4096

# Java's POSIX and java.lang.Character classes (ASCII unless UNICODE_CHARACTER_CLASS), as set contents.
_PUNCT = r"!-/:-@\[-`{-~"
_POSIX_CLASSES = {
    "Lower": "a-z", "Upper": "A-Z", "ASCII": r"\x00-\x7f", "Alpha": "a-zA-Z", "Digit": "0-9",
    "Alnum": "a-zA-Z0-9", "Punct": _PUNCT, "Graph": "a-zA-Z0-9" + _PUNCT, "Print": r"\x20-\x7e",
    "Blank": r" \t", "Cntrl": r"\x00-\x1f\x7f", "XDigit": "0-9a-fA-F", "Space": r" \t\n\x0b\f\r",
    "javaLowerCase": "a-z", "javaUpperCase": "A-Z", "javaWhitespace": r" \t\n\x0b\f\r\x1c-\x1f",
}
_HORIZONTAL_SPACE = r" \t\xa0\u1680\u180e\u2000-\u200a\u202f\u205f\u3000"
_VERTICAL_SPACE = r"\n\x0b\f\r\x85\u2028\u2029"
_PYTHON_FLAGS = {"i": "i", "m": "m", "s": "s", "x": "x", "d": "", "u": "", "U": ""}
_LITERAL_IN_SET = frozenset("&~|[")  # doubled, these read as set operations to Python (FutureWarning)


class JavaRegexError(ValueError):
    """A Java regular expression with a construct Python's `re` cannot express."""


def java_regex_to_python(pattern: str) -> re.Pattern[str]:
    """Compile a java.util.regex pattern into an equivalent Python pattern.

    Translated: named groups and `\\k<name>`, `\\Q...\\E`, `\\p{Lower}` and the other POSIX/Java
    classes, `\\h \\H \\v \\V \\R`, `\\z \\Z`, `\\e`, `\\cX`, `\\x{...}`, octal `\\0n`, inline flags
    anywhere (a flag group after the start becomes a scoped group up to the end of its enclosing
    group, as in Java). `\\d \\w \\s \\b` and case-insensitivity stay ASCII-only as in Java unless
    `(?U)` asks for Unicode. Java's possessive quantifiers and atomic groups work as they are.
    Rejected with JavaRegexError: `\\G`, `\\X`, Unicode property classes (`\\p{L}`, `\\p{IsLatin}`),
    and character-class union/intersection (`[a[b]]`, `[a-z&&[^e]]`).
    """
    translated, unicode = _Translator(pattern).run()
    flags = 0 if unicode else re.ASCII
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return re.compile(translated, flags)
        except (re.error, FutureWarning) as exc:
            raise JavaRegexError(f"{exc}") from None


class _Translator:
    """A single left-to-right pass over the Java pattern, emitting Python syntax."""

    def __init__(self, pattern: str) -> None:
        self.src = pattern
        self.pos = 0
        self.out: list[str] = []
        self.unicode = False
        # For each open group, the scoped flag groups opened inside it: they close with it, and around each `|`.
        self.scopes: list[list[str]] = [[]]

    def run(self) -> tuple[str, bool]:
        while self.pos < len(self.src):
            char = self.src[self.pos]
            if char == "\\":
                self.out.append(self._escape(in_set=False))
            elif char == "[":
                self.out.append(self._char_class())
            elif char == "(":
                self._open_group()
            elif char == ")":
                self.pos += 1
                self.out.append(")" * len(self.scopes.pop()))
                if not self.scopes:
                    raise JavaRegexError(f"unbalanced ')' at position {self.pos - 1}")
                self.out.append(")")
            elif char == "|":
                # A Java flag group reaches past `|` to the end of its group: reopen it in each branch.
                scoped = self.scopes[-1]
                self.out.extend((")" * len(scoped), "|", *scoped))
                self.pos += 1
            else:
                self.out.append(char)
                self.pos += 1
        if len(self.scopes) != 1:
            raise JavaRegexError("missing ')'")
        self.out.append(")" * len(self.scopes.pop()))
        return "".join(self.out), self.unicode

    def _open_group(self) -> None:
        src, start = self.src, self.pos
        if src.startswith("(?<", start) and not src.startswith(("(?<=", "(?<!"), start):
            end = src.find(">", start)
            if end < 0:
                raise JavaRegexError(f"unterminated group name at position {start}")
            self.out.append(f"(?P<{src[start + 3:end]}>")
            self.pos = end + 1
            self.scopes.append([])
            return
        flags = re.match(r"\(\?([idmsuxU]*)(?:-([idmsuxU]*))?([:)])", src[start:])
        if flags is None or (not flags.group(1) and flags.group(2) is None):
            # Plain, non-capturing, lookaround or atomic group: the same in Python.
            self.out.append("(")
            self.pos += 1
            self.scopes.append([])
            return
        on, off, kind = flags.group(1), flags.group(2) or "", flags.group(3)
        if "U" in on:
            self.unicode = True
        py_on = "".join(_PYTHON_FLAGS[f] for f in on)
        py_off = "".join(_PYTHON_FLAGS[f] for f in off)
        self.pos += flags.end()
        opener = f"(?{py_on}-{py_off}:" if py_off else f"(?{py_on}:"
        if kind == ":":
            self.out.append(opener)
            self.scopes.append([])
            return
        if not py_on and not py_off:
            return
        if not "".join(self.out) and not py_off:
            self.out.append(f"(?{py_on})")  # leading global flags are valid Python as they are
            return
        # Java applies a mid-pattern flag group to the rest of the enclosing group; Python needs a scope.
        self.out.append(opener)
        self.scopes[-1].append(opener)

    def _escape(self, *, in_set: bool) -> str:
        src = self.src
        if self.pos + 1 >= len(src):
            raise JavaRegexError("pattern ends with a lone backslash")
        char = src[self.pos + 1]
        self.pos += 2
        if char == "Q":
            end = src.find("\\E", self.pos)
            literal = src[self.pos:] if end < 0 else src[self.pos:end]
            self.pos = len(src) if end < 0 else end + 2
            return "".join(_escape_literal(c, in_set) for c in literal)
        if char in "pP":
            name = self._property_name()
            contents = _POSIX_CLASSES.get(name.removeprefix("Is"))
            if contents is None:
                raise JavaRegexError(f"\\{char}{{{name}}} (Unicode property classes) is not supported")
            if in_set:
                if char == "P":
                    raise JavaRegexError(f"\\P{{{name}}} inside a character class is not supported")
                return contents
            return f"[^{contents}]" if char == "P" else f"[{contents}]"
        if char in "hHvV":
            contents = _HORIZONTAL_SPACE if char in "hH" else _VERTICAL_SPACE
            if in_set:
                if char.isupper():
                    raise JavaRegexError(f"\\{char} inside a character class is not supported")
                return contents
            return f"[^{contents}]" if char.isupper() else f"[{contents}]"
        if char == "R" and not in_set:
            return rf"(?:\r\n|[{_VERTICAL_SPACE}])"
        if char == "z" and not in_set:
            return r"\Z"
        if char == "Z" and not in_set:
            return rf"(?=(?:\r\n|[{_VERTICAL_SPACE}])?\Z)"
        if char in "GX" or (char == "b" and src.startswith("{", self.pos)):
            raise JavaRegexError(f"\\{char} is not supported")
        if char == "e":
            return r"\x1b"
        if char == "c":
            if self.pos >= len(src):
                raise JavaRegexError("\\c must be followed by a control character letter")
            control = chr(ord(src[self.pos]) ^ 64)
            self.pos += 1
            return _escape_literal(control, in_set)
        if char == "x" and src.startswith("{", self.pos):
            end = src.find("}", self.pos)
            if end < 0:
                raise JavaRegexError("unterminated \\x{...}")
            code = int(src[self.pos + 1:end], 16)
            self.pos = end + 1
            return _escape_literal(chr(code), in_set)
        if char == "0":
            digits = re.match(r"[0-7]{1,3}", src[self.pos:])
            if digits is None:
                raise JavaRegexError("\\0 must be followed by octal digits")
            value = int(digits.group(0), 8)
            if value > 0o377:
                value = int(digits.group(0)[:2], 8)
                self.pos += 2
            else:
                self.pos += digits.end()
            return _escape_literal(chr(value), in_set)
        if char == "k" and not in_set:
            match = re.match(r"<([A-Za-z][A-Za-z0-9]*)>", src[self.pos:])
            if match is None:
                raise JavaRegexError("\\k must be followed by <name>")
            self.pos += match.end()
            return f"(?P={match.group(1)})"
        return "\\" + char

    def _property_name(self) -> str:
        src = self.src
        if src.startswith("{", self.pos):
            end = src.find("}", self.pos)
            if end < 0:
                raise JavaRegexError("unterminated \\p{...}")
            name = src[self.pos + 1:end]
            self.pos = end + 1
            return name
        if self.pos >= len(src):
            raise JavaRegexError("\\p must be followed by a class name")
        self.pos += 1
        return src[self.pos - 1]

    def _char_class(self) -> str:
        src = self.src
        out = ["["]
        self.pos += 1
        if src.startswith("^", self.pos):
            out.append("^")
            self.pos += 1
        first = True
        while self.pos < len(src):
            char = src[self.pos]
            if char == "]" and not first:
                self.pos += 1
                out.append("]")
                return "".join(out)
            if char == "\\":
                out.append(self._escape(in_set=True))
            elif char == "[" or src.startswith("&&", self.pos):
                raise JavaRegexError(
                    f"character class union or intersection at position {self.pos} is not supported")
            else:
                out.append(_escape_literal(char, True) if char in _LITERAL_IN_SET or char == "]" else char)
                self.pos += 1
            first = False
        raise JavaRegexError("unterminated character class")


def _escape_literal(char: str, in_set: bool) -> str:
    if in_set:
        return "\\" + char if char in "\\]^-[&~|" else char
    return re.escape(char)


class HttpHeaderExtractor:
    """One `iglu:org.ietf/http_header/jsonschema/1-0-0` entity per request header whose name matches.

    `headersPattern` is a Java regex that must match the whole header name (Java's `String.matches`).
    Name and value are trimmed; a header line without `:` is skipped.
    """

    config_name: ClassVar[str] = "http_header_extractor_config"
    supported_schema: ClassVar[SchemaCriterion] = SchemaCriterion.parse(
        "iglu:com.snowplowanalytics.snowplow.enrichments/http_header_extractor_config/jsonschema/1-0-*")

    def __init__(self, headers_pattern: re.Pattern[str]) -> None:
        self.headers_pattern = headers_pattern
        # Header names repeat across events: remember each name's verdict instead of re-matching.
        self._verdicts: dict[str, bool] = {}

    @classmethod
    def from_config(cls, parameters: Mapping[str, Any], assets: AssetStore) -> Self:
        key = f"{cls.config_name}.parameters.headersPattern"
        pattern = parameters.get("headersPattern")
        if not isinstance(pattern, str):
            raise EnrichmentConfigError(
                key, f"must be a regular expression string, got {pattern!r}",
                'give one Java regex matching whole header names, e.g. "headersPattern": "X-Forwarded-.*|Host"')
        try:
            compiled = java_regex_to_python(pattern)
        except JavaRegexError as exc:
            raise EnrichmentConfigError(key, f"{pattern!r} is not a usable Java regex: {exc}",
                                        "fix the expression or rewrite it without that construct") from None
        return cls(compiled)

    def _matches(self, name: str) -> bool:
        verdict = self._verdicts.get(name)
        if verdict is None:
            verdict = self.headers_pattern.fullmatch(name) is not None
            if len(self._verdicts) >= _MAX_CACHED_NAMES:
                self._verdicts.clear()
            self._verdicts[name] = verdict
        return verdict

    def enrich(self, event: EnrichedEvent, raw: RawEvent) -> Sequence[SelfDescribingJson]:
        entities: list[SelfDescribingJson] = []
        for header in raw.headers:
            name, colon, value = header.partition(":")
            if colon and self._matches(name):
                entities.append({"schema": HTTP_HEADER_SCHEMA, "data": {"name": name.strip(), "value": value.strip()}})
        return entities
