"""Contacts, conversations, messages and events; the inbound and outbound paths."""
