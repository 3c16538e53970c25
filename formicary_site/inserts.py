"""One INSERT of many rows, written once per shape instead of compiled by the ORM every time.

``bulk_create`` prepares every field of every row and has the driver quote each value (20 task
rows took 1.9 ms of CPU, measured, against 0.5 ms for the same INSERT written by hand). The
queen's hot paths give only the columns that vary; every other column gets its field's default,
written into the statement as a literal. The statement text is built once per model, column set
and database.
"""

import json
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from functools import cache
from typing import Any

from django.db import connection, transaction
from django.db.models import DateTimeField, Field, JSONField, Model
from django.utils import timezone

# PostgreSQL's limit on parameters per statement (SQLite says its own)
_MAX_PARAMS = 65535
# psycopg keeps the parse of a statement of up to 4 KiB (formicary_site.psycopg_cache)
STATEMENT_BYTES = 4096


def insert_rows(
    model: type[Model],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    ignore_conflicts: bool = False,
) -> list[int]:
    """Insert ``rows`` (values of ``columns``, given by attribute name such as ``job_request_id``,
    in that order) in as few statements as the database allows; returns the new ids in row order
    (none with ``ignore_conflicts``: a row that conflicts is skipped without one). Date-time
    fields that are ``auto_now`` or ``auto_now_add`` and not given get the same current time."""
    if not rows:
        return []
    tail = _tail(ignore_conflicts)
    out = _run(model, tuple(columns), rows, ignore_conflicts, lambda insert: insert + tail)
    return [] if ignore_conflicts else [row[0] for row in out]


def insert_then(
    model: type[Model], columns: Sequence[str], rows: Sequence[Sequence[Any]], then: str
) -> list[Any]:
    """PostgreSQL: insert ``rows`` and run ``then`` in the same statement, one round trip
    instead of two: ``WITH new AS (INSERT ... RETURNING *) <then>``, where ``then`` reads the new
    rows as ``new`` (an UPDATE ... FROM new ... RETURNING, say); returns the rows ``then``
    returns."""
    if not rows:
        return []
    return _run(
        model, tuple(columns), rows, False, lambda insert: f"WITH new AS ({insert} RETURNING *) {then}"
    )


def insert_with_children(
    parent: type[Model],
    columns: Sequence[str],
    row: Sequence[Any],
    child: type[Model],
    link: str,
    child_columns: Sequence[str],
    child_rows: Sequence[Sequence[Any]],
) -> int | None:
    """PostgreSQL: one parent row and its children (their ``link`` column pointing at it) in one
    statement, which commits by itself: one round trip where a transaction of two INSERTs took
    four. Returns the parent's id, or None when the rows do not fit one statement (insert them
    another way)."""
    sql, row_sql, adapters, auto = _statement(parent, tuple(columns), False, connection.vendor)
    child_sql, child_row, child_adapters, child_auto = _statement(
        child, (link, *child_columns), False, connection.vendor
    )
    # the link is the parent's new id: the first placeholder of each child row
    child_row = child_row.replace("%s", "(SELECT id FROM new)", 1)
    statement = (
        f"WITH new AS ({sql}{row_sql} RETURNING id) {child_sql}{', '.join([child_row] * len(child_rows))} "
        f"RETURNING {connection.ops.quote_name(_columns(child)[link])}"
    )
    if not child_rows or len(statement) > STATEMENT_BYTES:  # 4 KiB holds far fewer parameters than allowed
        return None
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    params = _row_params(adapters, row, auto, now)
    for values in child_rows:
        params += _row_params(child_adapters[1:], values, child_auto, now)
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return int(cursor.fetchall()[0][0])


def _run(
    model: type[Model],
    columns: tuple[str, ...],
    rows: Sequence[Sequence[Any]],
    ignore_conflicts: bool,
    statement: Callable[[str], str],
) -> list[Any]:
    """The INSERTs of ``rows`` (each made into the statement to send by ``statement``), as few
    as fit; the rows they return."""
    sql, row_sql, adapters, auto = _statement(model, columns, ignore_conflicts, connection.vendor)
    now = connection.ops.adapt_datetimefield_value(timezone.now()) if auto else None
    per_row = len(adapters) + auto
    limit = (connection.features.max_query_params or _MAX_PARAMS) // per_row
    # statements of at most STATEMENT_BYTES: the driver parses a longer one on every call
    limit = max(1, min(limit, (STATEMENT_BYTES - len(statement(sql)) - 30) // (len(row_sql) + 2)))
    out: list[Any] = []
    with transaction.atomic() if len(rows) > limit else nullcontext(), connection.cursor() as cursor:
        for start in range(0, len(rows), limit):
            chunk = rows[start : start + limit]
            params: list[Any] = []
            for row in chunk:
                params += _row_params(adapters, row, auto, now)
            cursor.execute(statement(sql + ", ".join([row_sql] * len(chunk))), params)
            if not ignore_conflicts:
                out += cursor.fetchall()
    return out


def _row_params(
    adapters: Sequence[Callable[[Any], Any] | None], row: Sequence[Any], auto: int, now: Any
) -> list[Any]:
    """One row's parameters: its values adapted, then the current time for each auto date-time."""
    values = [value if adapt is None else adapt(value) for adapt, value in zip(adapters, row, strict=True)]
    return values + [now] * auto


def _tail(ignore_conflicts: bool) -> str:
    return " ON CONFLICT DO NOTHING" if ignore_conflicts else " RETURNING id"


@cache
def _statement(
    model: type[Model], columns: tuple[str, ...], ignore_conflicts: bool, vendor: str
) -> tuple[str, str, list[Callable[[Any], Any] | None], int]:
    """(``INSERT INTO t (...) VALUES ``, one row's ``(...)``, an adapter per given column, how
    many auto date-times each row repeats)."""
    qn = connection.ops.quote_name
    # Options.concrete_fields is Django's, missing from django-stubs 5.1.1
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]  # type: ignore[attr-defined]
    unknown = set(columns) - {f.attname for f in fields}
    if unknown:
        raise ValueError(f"{model.__name__}: no columns {sorted(unknown)}")
    by_name = {f.attname: f for f in fields}
    given = [by_name[c] for c in columns]
    auto = [
        f for f in fields
        if f.attname not in columns and isinstance(f, DateTimeField) and (f.auto_now or f.auto_now_add)
    ]  # fmt: skip
    constant = [f for f in fields if f.attname not in columns and f not in auto]
    names = [qn(f.column) for f in (*given, *auto, *constant)]
    values = ["%s"] * (len(given) + len(auto)) + [_literal(model, f) for f in constant]
    sql = f"INSERT INTO {qn(model._meta.db_table)} ({', '.join(names)}) VALUES "
    return sql, f"({', '.join(values)})", [_adapter(f) for f in given], len(auto)


def _columns(model: type[Model]) -> dict[str, str]:
    """Attribute name -> column name of ``model``'s concrete fields."""
    return {f.attname: f.column for f in model._meta.concrete_fields}  # type: ignore[attr-defined]


def _adapter(field: Field) -> Callable[[Any], Any] | None:
    if isinstance(field, DateTimeField):  # through the proxy: the calling thread's connection
        return lambda value: connection.ops.adapt_datetimefield_value(value)
    if isinstance(field, JSONField):
        return lambda value: field.get_db_prep_save(value, connection)
    return None  # ints, text, booleans and ids go to the driver as they are


def _literal(model: type[Model], field: Field) -> str:
    """A column's default as SQL text: what ``bulk_create`` would have sent for it."""
    if field.has_default() and callable(field.default) and field.default not in (dict, list):
        raise ValueError(f"{model.__name__}.{field.attname}: its default differs per row, give it")
    value = field.get_default()
    if value is None:
        if not field.null:
            raise ValueError(f"{model.__name__}.{field.attname}: no default, give it")
        return "NULL"
    if isinstance(field, JSONField):
        value = json.dumps(value)
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise ValueError(f"{model.__name__}.{field.attname}: default {value!r} has no literal here")
