"""Message search: documents, the backend interface and its backends, the indexer, the query."""
