"""The events room: the event catalogue, the bus, the outbox and its relay."""
