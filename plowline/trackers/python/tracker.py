"""Tracker: turns events into tracker-protocol payloads (eid, dtm, tv, tna, aid, subject, contexts) for an emitter."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Protocol

from plowline import __version__
from plowline.trackers.python.events import EcommerceTransaction, Event
from plowline.trackers.python.payload import SelfDescribingJson, contexts_parameter, encode_event, millis
from plowline.trackers.python.subject import Subject

#: `tv`: this tracker's name and version, as the enriched `v_tracker`.
TRACKER_VERSION = f"plowline-py-{__version__}"


class EventSink(Protocol):
    """What a tracker hands events to: `Emitter` and `AsyncEmitter` (`input` must not wait on the network
    unless the emitter was configured to send inline)."""

    def input(self, data: bytes) -> None: ...


class Tracker:
    """Tracks events for one application (`app_id` → `aid`) under a tracker namespace (`tna`).

    Every event gets a new UUID v4 `eid` (so a redelivery after a retry is recognised downstream as the same
    event), the device time `dtm`, the tracker version `tv`, the subject's pairs and, if it has entities,
    `cx` (base64url) or `co` (JSON text) wrapped in contexts/1-0-1. `encode_base64` (default on, as Snowplow's
    Python tracker) also chooses `ue_px` over `ue_pr`. `track` returns the event's eid.
    """

    def __init__(
        self,
        emitter: EventSink,
        *,
        namespace: str | None = None,
        app_id: str | None = None,
        subject: Subject | None = None,
        encode_base64: bool = True,
        context: Sequence[SelfDescribingJson] = (),
    ) -> None:
        if namespace is not None and (":" in namespace or ";" in namespace):
            raise ValueError("a tracker namespace may not contain ':' or ';'")
        self.emitter = emitter
        self.namespace = namespace
        self.app_id = app_id
        self.subject = subject or Subject()
        self.encode_base64 = encode_base64
        self.context = tuple(context)  # entities added to every event
        # The pairs every event shares (subject included), built once: trackers are called in hot loops.
        self._common = self._shared_pairs(self.subject)

    def _shared_pairs(self, subject: Subject) -> dict[str, str]:
        pairs = {"tv": TRACKER_VERSION}
        if self.namespace:
            pairs["tna"] = self.namespace
        if self.app_id:
            pairs["aid"] = self.app_id
        pairs.update(subject.parameters())
        return pairs

    def _payload(
        self, own: dict[str, str], event: Event, dtm: str, entities: Sequence[SelfDescribingJson]
    ) -> tuple[str, bytes]:
        eid = str(uuid.uuid4())
        parameters: dict[str, str] = {"e": own["e"], "eid": eid, "dtm": dtm}
        if event.subject is None:
            parameters.update(self._common)
        else:
            parameters.update(self._shared_pairs(self.subject.combine(event.subject)))
        parameters.update(own)
        parameters.update(event.common())
        parameters.update(contexts_parameter([*self.context, *entities], self.encode_base64))
        return eid, encode_event(parameters)

    def track(self, event: Event) -> str:
        """Track one event (an ecommerce transaction also tracks its items); returns its eid."""
        dtm = millis(time.time())
        eid, data = self._payload(event.parameters(self.encode_base64), event, dtm, event.context)
        self.emitter.input(data)
        if isinstance(event, EcommerceTransaction):
            for item in event.items:
                self.emitter.input(self._payload(event.item_parameters(item), event, dtm, item.context)[1])
        return eid
