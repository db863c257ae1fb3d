"""Fakes of outside services (Telegram Bot API, WhatsApp Graph API) that tests reach over real HTTP on loopback."""
