"""Allervers composition root: settings, database, runtime, web app, command line."""
