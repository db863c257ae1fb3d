"""What the public reads, in their language: the catalogues and the language helpers (words/catalogue.py)."""
