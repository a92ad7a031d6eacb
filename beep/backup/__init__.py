"""`beep backup`: encrypted, consistent backups of every database, verified and restorable."""
