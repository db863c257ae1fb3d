"""Casework tools for workers: canned answers, transfers to another organisation, outside referrals."""
