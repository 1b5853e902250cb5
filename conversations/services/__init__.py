"""The service layer: one module per feature, each a few use-cases run in one unit of work.

They take plain values and a `conversations.ports.UnitOfWork`, and return plain results (or queue
typed outbox messages); the edges (`bot/`) decode updates into these calls and render what comes back.
"""
