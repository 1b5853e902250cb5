"""Telegram Bot API emulator: end-to-end tests and the browser sandbox run the real bot on it."""
