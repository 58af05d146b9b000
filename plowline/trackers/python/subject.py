"""Subject: who and what device an event is about (user id, platform, screen, language, IP, user agent, ids)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

#: The platform codes Enrich accepts (spec §1.3); anything else would make every event a bad row.
PLATFORMS = frozenset({"web", "mob", "pc", "srv", "app", "tv", "cnsl", "iot", "headset"})

# Subject field -> tracker-protocol parameter.
_PARAMETERS = {
    "platform": "p",
    "user_id": "uid",
    "screen_resolution": "res",
    "viewport": "vp",
    "color_depth": "cd",
    "timezone": "tz",
    "language": "lang",
    "ip_address": "ip",
    "useragent": "ua",
    "domain_userid": "duid",
    "network_userid": "tnuid",
    "domain_session_id": "sid",
    "domain_session_index": "vid",
}


def _dimensions(value: tuple[int, int] | None, name: str) -> str | None:
    if value is None:
        return None
    width, height = value
    if width < 0 or height < 0:
        raise ValueError(f"{name} must be two non-negative integers, not {value!r}")
    return f"{int(width)}x{int(height)}"


@dataclass(frozen=True, slots=True)
class Subject:
    """The subject's fields; each set one becomes its tracker parameter on every event tracked with it.

    `network_userid` is sent as `tnuid` (it beats the collector's `sp` cookie in Enrich). `platform` defaults to
    `pc`, as the official Python tracker's does; a server-side application may prefer `srv`.
    """

    platform: str = "pc"
    user_id: str | None = None
    screen_resolution: tuple[int, int] | None = None
    viewport: tuple[int, int] | None = None
    color_depth: int | None = None
    timezone: str | None = None
    language: str | None = None
    ip_address: str | None = None
    useragent: str | None = None
    domain_userid: str | None = None
    network_userid: str | None = None
    domain_session_id: str | None = None
    domain_session_index: int | None = None

    def __post_init__(self) -> None:
        if self.platform not in PLATFORMS:
            raise ValueError(f"platform must be one of {', '.join(sorted(PLATFORMS))}, not {self.platform!r}")

    def parameters(self) -> dict[str, str]:
        """The tracker-protocol pairs of the fields that are set."""
        values: dict[str, str | None] = {
            "platform": self.platform,
            "user_id": self.user_id,
            "screen_resolution": _dimensions(self.screen_resolution, "screen_resolution"),
            "viewport": _dimensions(self.viewport, "viewport"),
            "color_depth": None if self.color_depth is None else str(int(self.color_depth)),
            "timezone": self.timezone,
            "language": self.language,
            "ip_address": self.ip_address,
            "useragent": self.useragent,
            "domain_userid": self.domain_userid,
            "network_userid": self.network_userid,
            "domain_session_id": self.domain_session_id,
            "domain_session_index": None if self.domain_session_index is None else str(int(self.domain_session_index)),
        }
        return {_PARAMETERS[name]: value for name, value in values.items() if value is not None and value != ""}

    def combine(self, override: Subject | None) -> Subject:
        """This subject with every field that `override` sets replaced (a per-event subject)."""
        if override is None:
            return self
        defaults = Subject()
        changes = {
            f.name: getattr(override, f.name)
            for f in fields(Subject)
            if getattr(override, f.name) != getattr(defaults, f.name)
        }
        return replace(self, **changes)
