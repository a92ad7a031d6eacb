"""The tenancy room: units of work over the shards, tables, and who may see and do what."""
