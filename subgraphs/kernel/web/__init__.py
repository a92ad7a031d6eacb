"""The web room: the ASGI app, request context, GraphQL extensions, limits, subscriptions, presence."""
