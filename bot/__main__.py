"""`python -m bot run` does what the `mentorat-bot` console script does."""

from bot.cli import main

raise SystemExit(main())
