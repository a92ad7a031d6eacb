"""Hostile search queries every backend and the router must treat as plain words."""

from __future__ import annotations

HOSTILE = [
    'x" OR 1=1 --',
    "a NEAR(b c) d*",
    "channel_id:123 OR *",
    "{!lucene}channel_id:*",
    "content:* OR server_id:[* TO *]",
    "a & !b | c:* <-> d",
    "\"'; DROP TABLE search_documents; --",
    "^start col:term (group) + - ~ \\",
]
