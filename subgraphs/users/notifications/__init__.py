"""Notifications: what a user is told about, persisted in the directory (a user's list spans servers).

rules.py decides (pure); models.py and repository.py store; consumer.py turns message events into
notifications (a durable outbox consumer run by `beep worker`); service.py serves the signed-in user
(list, counts, mark read, settings, snooze); types.py and schema.py are the GraphQL side, merged into the
users subgraph's schema.
"""
