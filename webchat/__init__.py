"""The web chat page: its words (webchat/words/) and the language it opens in (page.py)."""
