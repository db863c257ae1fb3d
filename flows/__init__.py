"""Conversation flows: YAML definitions, a pure engine, free-text intents. Imports nothing from bots/, handoff/, allervers/."""
