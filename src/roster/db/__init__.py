"""The database: tables, engines, migrations and the seam between backends."""
