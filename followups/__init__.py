"""Appointments noted with a person (and their reminder), "Ça a marché ?" follow-ups, the scheduler."""
