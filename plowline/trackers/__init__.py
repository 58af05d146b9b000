"""Plowline's own trackers: the JavaScript tracker, the no-JavaScript pixel and the Python tracker."""
