"""Django's SQLite backend with each statement's placeholder conversion done once.

Django writes ``%s`` placeholders and its SQLite cursor rewrites them to ``?`` with a regular
expression on every call: 3 us for a short SELECT, 22 us for an INSERT of ten task rows. In
``manage.py standalone`` the queen, the ant and the web server share one interpreter lock, and
this rewrite was 4.6 % of the time a thread held it (py-spy, W8 at 250 requests/s). The
statements' shapes are few, so the rewrite is cached, as psycopg's parse of them is on
PostgreSQL (``psycopg_cache.py`` beside this package).
"""

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from django.db.backends.sqlite3 import base

CACHED_STATEMENTS = 1024
# longer statements (an IN of hundreds of ids, each count its own text) are rewritten each time:
# the cache stays under a few MB
CACHED_LENGTH = 4096


def rewrite(query: str) -> str:
    """``query`` with Django's ``%s`` placeholders as SQLite's ``?`` (and ``%%`` as ``%``)."""
    return base.FORMAT_QMARK_REGEX.sub("?", query).replace("%%", "%")


to_qmark = lru_cache(maxsize=CACHED_STATEMENTS)(rewrite)


class SQLiteCursorWrapper(base.SQLiteCursorWrapper):
    def convert_query(self, query: str, *, param_names: Sequence[str] | None = None) -> str:
        if param_names is None:  # "format" style, all Django writes; named ones as Django does
            return to_qmark(query) if len(query) <= CACHED_LENGTH else rewrite(query)
        return super().convert_query(query, param_names=param_names)  # type: ignore[misc]  # not in the stubs


class DatabaseWrapper(base.DatabaseWrapper):
    def create_cursor(self, name: Any = None) -> SQLiteCursorWrapper:
        return self.connection.cursor(factory=SQLiteCursorWrapper)
