"""Django's SQLite backend, with its placeholder conversion cached (see ``base``)."""
