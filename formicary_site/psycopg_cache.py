"""psycopg's cache of parsed statements, widened to the queen's batch statements.

With client-side binding (Django's default on psycopg 3) psycopg parses a statement's ``%s``
placeholders on every call unless it has at most 50 parameters and 4 KiB of text; then the parse
is cached (128 statements). The queen's batch statements (an INSERT of twenty rows, an UPDATE of
forty ids) have hundreds of parameters, and parsing them again each time was a tenth of its CPU
(measured: an INSERT of 20 task rows took 0.49 ms of CPU, 0.28 ms with the parse cached). Their
shapes are few, one per statement and batch size, so they are cached like short ones.

Behind ``jobs.fastsql`` (``for_queen``: the queen process only). ``psycopg._queries`` is private
(checked against psycopg 3.2.12); tests/engine/test_fastsql.py pins the names patched here.
"""

from functools import lru_cache

MAX_PARAMS = 5000
CACHED_STATEMENTS = 1024


def widen() -> bool:
    """Cache statements of up to ``MAX_PARAMS`` parameters, ``CACHED_STATEMENTS`` of them; returns
    whether this psycopg has the cache this tunes (private names: a test pins them)."""
    try:
        from psycopg import _queries
    except ImportError:  # SQLite only
        return False
    if not hasattr(_queries, "MAX_CACHED_STATEMENT_PARAMS") or not hasattr(
        _queries, "_query2pg_client_nocache"
    ):
        return False
    _queries.MAX_CACHED_STATEMENT_PARAMS = max(_queries.MAX_CACHED_STATEMENT_PARAMS, MAX_PARAMS)
    _queries._query2pg_client = lru_cache(maxsize=CACHED_STATEMENTS)(_queries._query2pg_client_nocache)
    return True
