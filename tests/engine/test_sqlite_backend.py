"""The SQLite backend (formicary_site/sqlite): Django's, with its rewrite of ``%s`` cached."""

import sqlite3

import pytest
from django.db import connection
from django.db.backends.sqlite3.base import SQLiteCursorWrapper as DjangoCursor

from formicary_site.sqlite.base import CACHED_LENGTH, SQLiteCursorWrapper, to_qmark
from jobs.models import JobRequest


def _cursors() -> tuple[SQLiteCursorWrapper, DjangoCursor]:
    db = sqlite3.connect(":memory:")
    return db.cursor(factory=SQLiteCursorWrapper), db.cursor(factory=DjangoCursor)


QUERIES = [
    "SELECT 1",
    'SELECT "a" FROM "t" WHERE "a" = %s AND "b" IN (%s, %s)',
    "SELECT %s LIKE '%%x%%', '%%s', '100%%'",  # escaped percent signs, one before an s
    "INSERT INTO t (a, b) VALUES " + ", ".join(["(%s, %s)"] * 50),
]


@pytest.mark.parametrize("query", QUERIES)
def test_the_cached_rewrite_is_djangos(query: str) -> None:
    # pinned against Django 5.2: the override must keep giving what Django's own method gives
    mine, djangos = _cursors()
    ours = mine.convert_query(query)
    assert ours == djangos.convert_query(query)  # type: ignore[attr-defined]  # not in the stubs
    assert "%s" not in ours.replace("'%s'", "")


def test_named_parameters_still_work() -> None:
    query = "SELECT %(a)s, %(b)s"
    ours = _cursors()[0].convert_query(query, param_names=["a", "b"])
    assert ours == "SELECT :a, :b"


@pytest.mark.django_db
def test_standalone_runs_on_it_and_converts_each_statement_once() -> None:
    if connection.vendor != "sqlite":
        pytest.skip("the SQLite backend: PostgreSQL has psycopg's cache instead")
    assert connection.settings_dict["ENGINE"] == "formicary_site.sqlite"
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s, '50%%'", [7])
        assert cursor.fetchone() == (7, "50%")
        assert isinstance(cursor.cursor, SQLiteCursorWrapper)  # Django's wrapper around ours
    to_qmark.cache_clear()
    for _ in range(3):
        list(JobRequest.objects.filter(pk=1).values("pk"))
    info = to_qmark.cache_info()
    assert (info.misses, info.hits) == (1, 2)
    long = "SELECT %s, '" + "x" * CACHED_LENGTH + "'"
    with connection.cursor() as cursor:
        cursor.execute(long, [5])
        assert cursor.fetchone()[0] == 5
    assert to_qmark.cache_info().currsize == 1  # a statement that long is not kept
