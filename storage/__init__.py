"""SQLite storage: the connection, migrations and the repositories (the only place with SQL)."""
