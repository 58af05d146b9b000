"""Consumer-group membership from a source URL: `?member=I&members=N` splits a stream's partitions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from plowline.errors import ConfigError

__all__ = ["MEMBER_PARAMS", "Membership", "parse_membership"]

#: The URL parameters `parse_membership` reads.
MEMBER_PARAMS = frozenset({"member", "members"})
_MAX_MEMBERS = 1 << 16
_FIX = "use member=I&members=N with 0 <= I < N"


@dataclass(frozen=True, slots=True)
class Membership:
    """Member `member` of `members` consumers of one group: it reads partitions `index % members == member`."""

    member: int = 0
    members: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.members <= _MAX_MEMBERS:
            raise ValueError(f"members must be in [1, {_MAX_MEMBERS}], not {self.members}")
        if not 0 <= self.member < self.members:
            raise ValueError(f"member must be in [0, members) = [0, {self.members}), not {self.member}")

    def owns(self, partition_index: int) -> bool:
        """Whether this member reads the partition with this index."""
        return partition_index % self.members == self.member


def parse_membership(params: Mapping[str, Sequence[str]], url: str) -> Membership:
    """The membership named by a URL's parsed query (`urllib.parse.parse_qs`); ConfigError naming a bad parameter."""

    def number(key: str, default: int) -> int:
        if key not in params:
            return default
        raw = params[key][-1]
        if not raw.isdigit():
            raise ConfigError("stream url", f"{key}={raw!r} in {url!r} is not a non-negative integer", _FIX)
        return int(raw)

    members = number("members", 1)
    if not 1 <= members <= _MAX_MEMBERS:
        raise ConfigError("stream url", f"members={members} in {url!r} is out of range", f"use 1 to {_MAX_MEMBERS}")
    member = number("member", 0)
    if member >= members:
        raise ConfigError(
            "stream url",
            f"member={member} in {url!r} is not below members={members}",
            f"use member=0 to member={members - 1}",
        )
    return Membership(member, members)
