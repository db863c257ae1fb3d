"""What it achieved: anonymised counters (stats/registry.py), the dashboard and its CSV (stats/routes.py)."""
