"""JavaScript enrichment: run a user's `process(event, params, headers)` in embedded V8 (STPyV8) on every event."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from operator import attrgetter
from typing import Any, ClassVar, Self

import orjson

from plowline.enrich.enrichments.base import AssetStore, SelfDescribingJson
from plowline.enrich.errors import EnrichmentConfigError, EnrichmentFailure, EventDropped
from plowline.enrich.raw_event import RawEvent
from plowline.enrich.transform import tsv_safe
from plowline.event import CONTEXTS_SCHEMA, FIELD_KINDS, FIELD_NAMES, UNSTRUCT_EVENT_SCHEMA, EnrichedEvent, FieldKind
from plowline.schema_key import InvalidSchemaKey, SchemaCriterion, SchemaKey

SCRIPT_NAME = "javascript_script_config"
_CONTEXTS_CRITERION = SchemaCriterion.parse("iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-*")
_UNSTRUCT_CRITERION = SchemaCriterion.parse("iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-*")

# Evaluated after the user's script, in its context. `__plowline_run(json)` builds a fresh event
# object for one event, calls process(), and answers one JSON text: the fields the script set (c),
# whether it dropped the event (d) or erased derived contexts (e), and its result (r) or error (x).
# Getters answer what the Java POJO would: strings, numbers, 1/0 for flags, "yyyy-MM-dd HH:mm:ss.SSS"
# timestamps, and the JSON columns as JSON strings (or null).
_PRELUDE = """
var __plowline_run = (function () {
  "use strict";
  var FIELDS = %(fields)s;
  var PARAMS = %(params)s;
  var CONTEXTS = %(contexts)s, UNSTRUCT = %(unstruct)s;
  var hasOwn = Object.prototype.hasOwnProperty;
  // values: every field's value in TSV order (null when unset); _c: what the script set, by name.
  function Event(values) { this._v = values; this._c = {}; this._dropped = false; this._erased = false; }
  var proto = Event.prototype;
  function getter(index) {
    return function () { var v = this._v[index]; return v === undefined ? null : v; };
  }
  function setter(index, name) {
    return function (v) {
      // As Nashorn does for a Java String parameter, objects arrive as their string form.
      if (v === undefined) v = null;
      else if (v !== null && (typeof v === "object" || typeof v === "function")) v = String(v);
      this._v[index] = v; this._c[name] = v;
    };
  }
  function wrapped(index, name, schema) {
    return function () {
      if (hasOwn.call(this._c, name)) return this._c[name];
      var v = this._v[index];
      return v == null ? null : JSON.stringify({schema: schema, data: v});
    };
  }
  FIELDS.forEach(function (name, index) {
    var get = getter(index), set = setter(index, name);
    if (name === "contexts") get = wrapped(index, name, CONTEXTS);
    else if (name === "unstruct_event") get = wrapped(index, name, UNSTRUCT);
    else if (name === "derived_contexts") {
      get = wrapped(index, name, CONTEXTS);
      set = function () {};  // Snowplow ignores it: scripts erase derived contexts and return replacements
      proto.eraseDerived_contexts = function () { this._v[index] = null; this._erased = true; };
    }
    var cap = name.charAt(0).toUpperCase() + name.slice(1);
    proto["get" + cap] = get;
    proto["set" + cap] = set;
    Object.defineProperty(proto, name, {get: get, set: set});
  });
  proto.drop = function () { this._dropped = true; };
  return function (input) {
    var parsed = JSON.parse(input);
    var event = new Event(parsed.v);
    var result;
    try {
      result = process(event, JSON.parse(PARAMS), parsed.h);
    } catch (err) {
      return JSON.stringify({c: event._c, d: event._dropped, e: event._erased, x: String(err)});
    }
    try {
      if (result === undefined) result = null;
      return JSON.stringify({c: event._c, d: event._dropped, e: event._erased, r: result});
    } catch (err) {
      return JSON.stringify({c: event._c, d: event._dropped, e: event._erased,
                             x: "Could not serialise the returned value: " + String(err)});
    }
  };
})();
"""

_GET_ALL = attrgetter(*FIELD_NAMES)
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def _utf16_escape(match: re.Match[str]) -> str:
    code = ord(match.group(0)) - 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def js_input(payload: Any) -> str:
    """JSON text for V8. STPyV8 truncates characters beyond U+FFFF when it converts a Python str,
    so those (emoji, ...) travel as JSON surrogate-pair escapes, which JSON.parse restores."""
    text = orjson.dumps(payload).decode()
    return text if text.isascii() else _ASTRAL.sub(_utf16_escape, text)


def _timestamp_to_js(value: datetime) -> str:
    # Fields hold UTC datetimes: "2024-05-01 12:30:00.000+00:00" cut to the POJO's form.
    return value.isoformat(" ", "milliseconds")[:23]


_TO_JS: dict[FieldKind, Callable[[Any], Any] | None] = {
    FieldKind.STRING: None,
    FieldKind.INTEGER: None,
    FieldKind.FLOAT: None,
    FieldKind.DECIMAL: float,
    FieldKind.BOOLEAN: int,
    FieldKind.TIMESTAMP: _timestamp_to_js,
    FieldKind.JSON: lambda value: value or None,  # an empty entity list is an empty TSV column: null
}
_CONVERSIONS = tuple(
    (index, convert) for index, name in enumerate(FIELD_NAMES) if (convert := _TO_JS[FIELD_KINDS[name]]) is not None
)


def event_to_js(event: EnrichedEvent) -> list[Any]:
    """Every field's value in TSV order, as the script's getters return it (JSON columns as entities)."""
    values = list(_GET_ALL(event))
    for index, convert in _CONVERSIONS:
        value = values[index]
        if value is not None:
            values[index] = convert(value)
    return values


class _Rejected(ValueError):
    """A value a script set that the field cannot hold; the message is the expectation."""


def _string_from_js(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int | float):
        value = repr(value)
    if not isinstance(value, str):
        raise _Rejected("a string")
    return tsv_safe(value)  # a TAB or newline set by a script must not break the TSV line


def _integer_from_js(value: Any) -> int:
    if isinstance(value, bool):
        raise _Rejected("an integer")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise _Rejected("an integer")


def _float_from_js(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise _Rejected("a number")


def _decimal_from_js(value: Any) -> Decimal:
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            result = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
        except InvalidOperation:
            raise _Rejected("a decimal number") from None
        if result.is_finite():
            return result
    raise _Rejected("a decimal number")


def _boolean_from_js(value: Any) -> bool:
    if value in (True, 1, "1", "true"):
        return True
    if value in (False, 0, "0", "false"):
        return False
    raise _Rejected("1 or 0 (or true or false)")


def _timestamp_from_js(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    raise _Rejected('a timestamp like "2024-05-01 12:30:00.000"')


def _sdj_wrapper(value: Any, criterion: SchemaCriterion, shape: type) -> Any:
    if not isinstance(value, str):
        raise _Rejected(f"a JSON string with a {criterion.name} self-describing JSON")
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise _Rejected(f"valid JSON (a {criterion.name} self-describing JSON)") from None
    try:
        matches = isinstance(parsed, dict) and criterion.matches(SchemaKey.parse(parsed["schema"]))
    except (InvalidSchemaKey, KeyError):
        matches = False
    if not matches or not isinstance(parsed.get("data"), shape):
        raise _Rejected(f"a self-describing JSON with schema {criterion} and {shape.__name__} data")
    return parsed["data"]


def _contexts_from_js(value: Any) -> list[dict[str, Any]] | None:
    entities = _sdj_wrapper(value, _CONTEXTS_CRITERION, list)
    if not all(isinstance(entity, dict) for entity in entities):
        raise _Rejected("contexts whose data is an array of self-describing JSON objects")
    return entities or None


def _unstruct_from_js(value: Any) -> dict[str, Any]:
    return _sdj_wrapper(value, _UNSTRUCT_CRITERION, dict)  # type: ignore[no-any-return]


_FROM_JS: dict[FieldKind, Callable[[Any], Any]] = {
    FieldKind.STRING: _string_from_js,
    FieldKind.INTEGER: _integer_from_js,
    FieldKind.FLOAT: _float_from_js,
    FieldKind.DECIMAL: _decimal_from_js,
    FieldKind.BOOLEAN: _boolean_from_js,
    FieldKind.TIMESTAMP: _timestamp_from_js,
}
_SETTERS: dict[str, Callable[[Any], Any]] = {
    name: _FROM_JS[kind] for name, kind in FIELD_KINDS.items() if kind is not FieldKind.JSON
} | {"contexts": _contexts_from_js, "unstruct_event": _unstruct_from_js}


def apply_changes(event: EnrichedEvent, changes: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Set the fields a script changed; return failure messages for values a field cannot hold."""
    messages: list[dict[str, Any]] = []
    for name, value in changes.items():
        convert = _SETTERS.get(name)
        if convert is None:
            continue
        try:
            setattr(event, name, None if value is None else convert(value))
        except _Rejected as rejected:
            messages.append({"field": name, "value": value if isinstance(value, str) else json.dumps(value),
                             "expectation": f"the JavaScript enrichment must set {name} to {rejected}"})
    return messages


def _sdj_error(value: Any) -> str | None:
    """Iglu's error code when `value` is not a self-describing JSON, else None."""
    if not isinstance(value, dict):
        return "INVALID_DATA_PAYLOAD"
    schema = value.get("schema")
    if not isinstance(schema, str):
        return "INVALID_SCHEMA"
    try:
        SchemaKey.parse(schema)
    except InvalidSchemaKey as exc:
        return exc.code
    return None if "data" in value else "INVALID_DATA_PAYLOAD"


def entities_from_js(result: Any) -> list[SelfDescribingJson]:
    """The entities `process` returned; raise EnrichmentFailure for anything but null or an array of SDJs."""
    if result is None:
        return []
    if not isinstance(result, list):
        text = orjson.dumps(result).decode()
        return _fail(f"Output of JavaScript function [{text}] could be parsed as JSON but is not read as an array")
    errors = [(code, item) for item in result if (code := _sdj_error(item)) is not None]
    if errors:
        details = ";".join(f"error code:[{code}],json:[{orjson.dumps(item).decode()}]" for code, item in errors)
        # Snowplow's wording, typo included, so existing bad-row queries keep matching.
        return _fail(f"Resulting contexts are not self-desribing. Error(s): [{details}]")
    return [{"schema": item["schema"], "data": item["data"]} for item in result]


def _fail(message: str) -> list[SelfDescribingJson]:
    raise EnrichmentFailure([{"error": message}])


def decode_script(encoded: Any, key: str) -> str:
    """The JavaScript source from the config's base64 (standard or URL-safe alphabet, padding optional)."""
    if not isinstance(encoded, str) or not encoded.strip():
        raise EnrichmentConfigError(key, "the script is missing or empty",
                                    "set it to the base64 encoding of your JavaScript (base64 -w0 script.js)")
    text = encoded.strip().replace("-", "+").replace("_", "/")
    try:
        source = base64.b64decode(text + "=" * (-len(text) % 4), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise EnrichmentConfigError(key, f"the script is not base64-encoded UTF-8 text: {exc}",
                                    "set it to the base64 encoding of your JavaScript (base64 -w0 script.js)") from None
    if not source.strip():
        raise EnrichmentConfigError(key, "the decoded script is empty", "encode a script that defines process(event)")
    return source


class JavascriptScript:
    """Runs a Snowplow JavaScript enrichment script unchanged, in its own V8 context.

    The script defines `process(event, params, headers)`: `event` has `getX()`/`setX(v)` (and `x`
    properties) for every atomic field, named as Snowplow's Java POJO (`getApp_id`, `setGeo_latitude`,
    `getRefr_dvce_tstamp`); `getContexts()`/`getUnstruct_event()`/`getDerived_contexts()` return the
    column's JSON text or null, `setContexts(json)`/`setUnstruct_event(json)` replace them,
    `eraseDerived_contexts()` removes the entities earlier enrichments added and `drop()` discards the
    event. `params` is a fresh copy of the config's `config` object ({} without one); `headers` the
    request's `"Name: value"` header lines. It returns null/undefined or an array of self-describing
    JSONs, added to derived contexts. A thrown exception, a value a field cannot hold, or any other
    return value is an EnrichmentFailure for that event.

    Each event gets a new event object; the script's own top-level variables persist between events
    in this process (as in Snowplow, where the compiled script is reused), so scripts must not keep
    per-event state there. Java interop (`org.apache...`, `java.lang...`) does not exist here.
    """

    config_name: ClassVar[str] = "javascript_script_config"
    supported_schema: ClassVar[SchemaCriterion] = SchemaCriterion.parse(
        "iglu:com.snowplowanalytics.snowplow/javascript_script_config/jsonschema/1-0-*")

    def __init__(self, source: str, params: Mapping[str, Any] | None = None) -> None:
        """Compile `source`; raise EnrichmentConfigError if it does not compile or define process()."""
        import STPyV8  # V8 is loaded only when a script is configured

        key = f"{self.config_name}.parameters.script"
        self._context = STPyV8.JSContext()
        with self._context:
            try:
                self._context.eval(source, SCRIPT_NAME)
            except Exception as exc:  # V8 raises SyntaxError, TypeError, JSError, ... for a bad script
                raise EnrichmentConfigError(key, f"the script does not run: {exc}",
                                            "fix the JavaScript; test it with node before encoding it") from None
            if self._context.eval("typeof process") != "function":
                raise EnrichmentConfigError(key, "the script does not define a function process(event)",
                                            "define function process(event, params, headers) { ... }")
            prelude = _PRELUDE % {
                "fields": json.dumps(FIELD_NAMES),
                "params": json.dumps(json.dumps(dict(params or {}))),
                "contexts": json.dumps(CONTEXTS_SCHEMA),
                "unstruct": json.dumps(UNSTRUCT_EVENT_SCHEMA),
            }
            self._context.eval(prelude, "plowline_prelude")
            self._run = getattr(self._context.locals, "__plowline_run")  # a dotted name would be mangled

    @classmethod
    def from_config(cls, parameters: Mapping[str, Any], assets: AssetStore) -> Self:
        source = decode_script(parameters.get("script"), f"{cls.config_name}.parameters.script")
        params = parameters.get("config")
        if params is not None and not isinstance(params, Mapping):
            raise EnrichmentConfigError(f"{cls.config_name}.parameters.config", f"must be an object, got {params!r}",
                                        'e.g. "config": {"internalIps": ["10.0.0.1"]}, read as params in process()')
        return cls(source, params)

    def enrich(self, event: EnrichedEvent, raw: RawEvent) -> Sequence[SelfDescribingJson]:
        try:
            payload = js_input({"v": event_to_js(event), "h": raw.headers})
        except orjson.JSONEncodeError as exc:  # e.g. a lone surrogate: not representable in JSON
            raise EnrichmentFailure([{"error": f"The event cannot be passed to JavaScript: {exc}"}]) from None
        try:
            with self._context:
                answer = orjson.loads(self._run(payload))
        except Exception as exc:  # the engine itself failed (memory, termination): this event's failure
            raise EnrichmentFailure([{"error": f"Error during execution of JavaScript function: [{exc}]"}]) from exc
        messages = apply_changes(event, answer["c"])
        if answer["e"] and event.derived_contexts:
            event.derived_contexts.clear()
        if answer["d"]:
            raise EventDropped()
        if "x" in answer:
            messages.append({"error": f"Error during execution of JavaScript function: [{answer['x']}]"})
        if messages:
            raise EnrichmentFailure(messages)
        return entities_from_js(answer.get("r"))
