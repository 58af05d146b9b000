"""Plowline: a Snowplow-compatible behavioural-event pipeline. Importing it has no side effects."""

__version__ = "0.1.0"
