"""Handoff to a named human worker: organisations, workers, routing, transitions, inbox."""
