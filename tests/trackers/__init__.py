"""Tests of Plowline's own trackers: the Python tracker, the pixel and the `plowline send`/`pixel` commands."""
