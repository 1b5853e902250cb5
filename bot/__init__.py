"""The Telegram and HTTP edge of mentorat-bot: application, handlers, keyboards, CLI, sandbox."""
