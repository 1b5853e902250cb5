"""The pure domain of mentorat-bot: questionnaire flows, their engine, validators and matching.

Nothing here imports Telegram, SQL or HTTP: inputs and outputs are plain frozen dataclasses.
"""
