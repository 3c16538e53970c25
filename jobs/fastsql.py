"""The fence around the speed tricks: one switch, the plain ORM behind it.

The queen's hot paths skip parts of Django and of the drivers where measurement showed they
cost more than the database (docs/performance.md, "Speed tricks, fenced"). Every such trick is
reached through this module, and ``FORMICARY_FAST_SQL=false`` turns them all off: then every
read and write goes through the plain ORM (the engine tests pass both ways: ``--fast-sql=off``).

The tricks, each with the name ``FORMICARY_FAST_SQL_OFF`` takes to turn it off alone (a
comma-separated list, for measuring one against the others; not a product setting):

- ``compiled``: the queen's per-pass reads compiled to SQL once (``jobs.queen.compiled``, and
  ``ByShape`` here for reads with lists of values: the start's template data, limits and pick);
- ``inserts``: INSERTs of many rows written once per shape (``formicary_site.inserts``);
- ``returning``: batch state moves as one raw ``UPDATE ... RETURNING`` or one ``executemany``;
- ``groups``: skipping channel groups nobody joined (channels_redis's group key);
- ``psycopg``: psycopg's statement-parse cache widened to batch statements, in the queen process
  only (``for_queen``; ``formicary_site.psycopg_cache``).

Private names of Django, psycopg and channels_redis are used only here and in the three modules
named above (tests/engine/test_fastsql.py keeps it so and pins each name).
"""

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, FloatField, Model, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

TRICKS = ("compiled", "inserts", "returning", "groups", "psycopg")
_OFF = frozenset(t.strip() for t in os.environ.get("FORMICARY_FAST_SQL_OFF", "").split(",") if t.strip())


def on(trick: str) -> bool:
    """Whether ``trick`` (one of ``TRICKS``) is used in this process now."""
    return bool(getattr(settings, "FORMICARY_FAST_SQL", True)) and trick not in _OFF


# -- psycopg: the queen only ----------------------------------------------------------------------


def for_queen() -> bool:
    """Called once at the queen's start: widens psycopg's parse cache (checked against psycopg
    3.2.12). Web, ant and Celery processes never call it; returns whether it is widened now."""
    if not on("psycopg"):
        return False
    from formicary_site import psycopg_cache

    return psycopg_cache.widen()


def psycopg_widened() -> bool:
    """Whether this process's psycopg caches statements of more than its default 50 parameters."""
    try:
        from psycopg import _queries  # private; checked against psycopg 3.2.12
    except ImportError:  # SQLite only
        return False
    return bool(_queries.MAX_CACHED_STATEMENT_PARAMS > 50)


# -- many rows in one INSERT ----------------------------------------------------------------------


def insert_rows(
    model: type[Model],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    ignore_conflicts: bool = False,
) -> list[int]:
    """Insert ``rows`` (values of ``columns``, attribute names, in that order); the new ids in row
    order (none with ``ignore_conflicts``). Off: ``bulk_create``."""
    if on("inserts"):
        from formicary_site import inserts

        return inserts.insert_rows(model, columns, rows, ignore_conflicts=ignore_conflicts)
    if not rows:
        return []
    objs = [model(**dict(zip(columns, row, strict=True))) for row in rows]
    made = model._default_manager.bulk_create(objs, ignore_conflicts=ignore_conflicts)
    return [] if ignore_conflicts else [obj.pk for obj in made]


def inserts_then() -> bool:
    """Whether ``insert_then`` can be used here (PostgreSQL, ``inserts`` on)."""
    return on("inserts") and connection.vendor == "postgresql"


def insert_then(
    model: type[Model], columns: Sequence[str], rows: Sequence[Sequence[Any]], then: str
) -> list[Any]:
    """Insert ``rows`` and run ``then`` on them in one statement (``formicary_site.inserts``);
    only where ``inserts_then()``."""
    from formicary_site import inserts

    return inserts.insert_then(model, columns, rows, then)


def insert_with_children(
    obj: Model, columns: Sequence[str], children: Sequence[Model], link: str, child_columns: Sequence[str]
) -> bool:
    """Insert the unsaved ``obj`` and its unsaved ``children`` (their ``link`` column pointing at
    it) in one statement (``formicary_site.inserts``), giving only those columns; the instances
    get their ids and count as saved. Only where ``inserts_then()``; False when they do not fit
    one statement, and nothing was written."""
    from formicary_site import inserts

    if not children:
        return False
    pk = inserts.insert_with_children(
        type(obj), columns, [getattr(obj, c) for c in columns], type(children[0]), link, child_columns,
        [[getattr(child, c) for c in child_columns] for child in children],
    )  # fmt: skip
    if pk is None:
        return False
    obj.pk = pk
    for child in children:
        setattr(child, link, pk)
    for made in (obj, *children):
        # Django's private ModelState (checked against Django 5.2): what save() sets after an INSERT
        made._state.adding, made._state.db = False, connection.alias
    return True


def insert_instances(model: type[Model], columns: Sequence[str], objs: Sequence[Model]) -> None:
    """Insert unsaved ``objs`` giving only ``columns`` (the others get their defaults); the
    instances get their ids and count as saved. Off: ``bulk_create``."""
    if not on("inserts"):
        model._default_manager.bulk_create(objs)
        return
    ids = insert_rows(model, columns, [[getattr(obj, c) for c in columns] for obj in objs])
    for obj, pk in zip(objs, ids, strict=True):
        obj.pk = pk
        # Django's private ModelState (checked against Django 5.2): what save() sets after an INSERT
        obj._state.adding, obj._state.db = False, connection.alias


# -- reads compiled once per shape ------------------------------------------------------------


class ByShape:
    """A read whose SQL text depends only on how many items its list arguments hold, compiled
    once per database vendor and shape. ``build(**arguments)`` returns the queryset; ``kinds``
    names each argument with the type of its items: ``int`` or ``str`` for a list, ``datetime``
    for a single date-time. Each list is padded to a power of two by repeating its last item (an
    IN list, or an OR of equal terms, means the same with repeats), so a handful of shapes serve
    every call. Django compiled the start's reads on every pass: 0.3 to 1 ms of CPU each, more
    than the database took to answer (docs/performance.md). ``rows`` returns plain rows, as
    ``values_list`` would without per-field conversions (booleans come back as 0/1 on SQLite).
    Off (``compiled``): the queryset runs each time."""

    def __init__(self, build: Callable[..., QuerySet[Any]], **kinds: type) -> None:
        self.build = build
        self.lists = [name for name, kind in kinds.items() if kind is not datetime]
        self.times = [name for name, kind in kinds.items() if kind is datetime]
        self.kinds = kinds
        self._shapes: dict[tuple[Any, ...], tuple[str, list[Any], dict[int, tuple[str, int]]]] = {}

    def rows(self, **arguments: Any) -> list[tuple[Any, ...]]:
        if any(not arguments[name] for name in self.lists):
            raise ValueError(f"{self.build.__name__}: every list needs an item")
        if not on("compiled"):
            return [tuple(row) for row in self.build(**arguments)]
        padded = {name: _padded(list(arguments[name])) for name in self.lists}
        key = (connection.vendor, *(len(padded[name]) for name in self.lists))
        sql, params, slots = self._shapes.get(key) or self._compile(key)
        adapt = connection.ops.adapt_datetimefield_value
        padded.update({name: [adapt(arguments[name])] for name in self.times})
        bound = [padded[slots[i][0]][slots[i][1]] if i in slots else p for i, p in enumerate(params)]
        with connection.cursor() as cursor:
            cursor.execute(sql, bound)
            return cursor.fetchall()

    def shapes(self) -> list[tuple[Any, ...]]:
        """(vendor, padded size of each list) of the shapes compiled so far."""
        return list(self._shapes)

    def _stand_ins(self, sizes: Sequence[int], base: int) -> dict[str, Any]:
        """Values no real argument has, one per item, told apart by where they land."""
        out: dict[str, Any] = {}
        for n, (name, size) in enumerate(zip(self.lists, sizes, strict=True)):
            kind, start = self.kinds[name], base + 1000 * n
            out[name] = [kind(-(start + i)) if kind is int else f"\x01{start + i}" for i in range(size)]
        out.update(dict.fromkeys(self.times, _TIME_STAND_INS[0]))
        return out

    def _compile(self, key: tuple[Any, ...]) -> tuple[str, list[Any], dict[int, tuple[str, int]]]:
        stand_ins = self._stand_ins(key[1:], 7_000_000)
        sql, params = self.build(**stand_ins).query.sql_with_params()
        other, _ = self.build(**self._stand_ins(key[1:], 8_000_000)).query.sql_with_params()
        if other != sql:
            raise ValueError(f"the SQL of {self.build.__name__} depends on its lists' values")
        where = {v: (name, i) for name in self.lists for i, v in enumerate(stand_ins[name])}
        slots = {n: where[p] for n, p in enumerate(params) if isinstance(p, int | str) and p in where}
        if set(slots.values()) != set(where.values()):
            raise ValueError(f"{self.build.__name__} must use every item of its lists")
        for name in self.times:  # a date-time's positions: those that change with it alone
            changed_sql, changed = self.build(
                **{**stand_ins, name: _TIME_STAND_INS[1]}
            ).query.sql_with_params()
            if changed_sql != sql:
                raise ValueError(f"the SQL of {self.build.__name__} depends on {name}")
            slots.update(
                {n: (name, 0) for n, (a, b) in enumerate(zip(params, changed, strict=True)) if a != b}
            )
        self._shapes[key] = (sql, list(params), slots)
        return self._shapes[key]


_TIME_STAND_INS = (datetime(2001, 1, 1, tzinfo=UTC), datetime(2002, 2, 2, tzinfo=UTC))


def _padded(items: list[Any]) -> list[Any]:
    return items + [items[-1]] * ((1 << (len(items) - 1).bit_length()) - len(items))


# -- conditional batch updates --------------------------------------------------------------------


@dataclass(frozen=True)
class SumOf:
    """A column set to the sum of ``field`` over the rows of ``model`` whose ``parent`` is the
    updated row (0 when there are none)."""

    model: type[Model]
    parent: str
    field: str

    def expression(self) -> Any:
        rows = self.model._default_manager.filter(**{self.parent: OuterRef("pk")})
        total = rows.values(self.parent).annotate(total=Sum(self.field)).values("total")
        return Coalesce(Subquery(total), 0.0, output_field=FloatField())

    def sql(self, table: str) -> str:
        qn, meta = connection.ops.quote_name, self.model._meta
        return (
            f"COALESCE((SELECT SUM(c.{qn(_field(self.model, self.field).column)}) FROM {qn(meta.db_table)} c "
            f"WHERE c.{qn(_field(self.model, self.parent).column)} = {qn(table)}.id), 0)"
        )


def update_returning(
    model: type[Model], ids: Iterable[int], sets: dict[str, Any], *, where: dict[str, Any] | None = None,
    increment: tuple[str, ...] = (), returning: tuple[str, ...] = ("id",), sums: dict[str, SumOf] | None = None,
) -> list[tuple[Any, ...]]:  # fmt: skip
    """Set ``sets`` (and add one to each of ``increment``, and each of ``sums`` to its sum) on
    the rows of ``ids`` that match ``where`` (a value, or a collection: one of them); the
    ``returning`` fields of the rows changed, as they are after the change. Raw ``UPDATE ...
    RETURNING``; off: the rows are locked and read, then updated through the ORM."""
    ids = list(ids)
    if not ids:
        return []
    if on("returning"):
        return _raw_update_returning(model, ids, sets, where or {}, increment, returning, sums or {})
    filters: dict[str, Any] = {"pk__in": ids}
    for name, value in (where or {}).items():
        if isinstance(value, list | tuple | set | frozenset):
            filters[f"{name}__in"] = [str(v) for v in value]
        else:
            filters[name] = str(value) if isinstance(value, str) else value
    manager = model._default_manager
    with transaction.atomic():  # locked in id order, as the queen's batches lock rows
        rows = list(
            manager.select_for_update().filter(**filters).order_by("pk").values_list("pk", *returning)
        )
        manager.filter(pk__in=[row[0] for row in rows]).update(
            **sets, **{n: F(n) + 1 for n in increment}, **{n: s.expression() for n, s in (sums or {}).items()}
        )
    return [
        tuple(sets[n] if n in sets else value + 1 if n in increment else value
              for n, value in zip(returning, row[1:], strict=True))
        for row in rows
    ]  # fmt: skip


def _raw_update_returning(
    model: type[Model], ids: list[int], sets: dict[str, Any], where: dict[str, Any], increment: tuple[str, ...],
    returning: tuple[str, ...], sums: dict[str, SumOf],
) -> list[tuple[Any, ...]]:  # fmt: skip
    meta, qn = model._meta, connection.ops.quote_name
    assigns, params = [], []
    for name, value in sets.items():
        field = _field(model, name)
        assigns.append(f"{qn(field.column)} = %s")
        params.append(field.get_db_prep_save(value, connection))
    for name in increment:
        column = qn(_field(model, name).column)
        assigns.append(f"{column} = {column} + 1")
    for name, total in sums.items():
        assigns.append(f"{qn(_field(model, name).column)} = {total.sql(meta.db_table)}")
    conditions = [f"{qn(meta.pk.column)} IN ({', '.join(['%s'] * len(ids))})"]
    params += ids
    for name, value in where.items():
        column = qn(_field(model, name).column)
        if isinstance(value, list | tuple | set | frozenset):
            conditions.append(f"{column} IN ({', '.join(['%s'] * len(value))})")
            params += [str(v) for v in value]
        else:
            conditions.append(f"{column} = %s")
            params.append(str(value) if isinstance(value, str) else value)
    columns = ", ".join(qn(_field(model, name).column) for name in returning)
    sql = (
        f"UPDATE {qn(meta.db_table)} SET {', '.join(assigns)} WHERE {' AND '.join(conditions)} "
        f"RETURNING {columns}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [tuple(row) for row in cursor.fetchall()]


def update_each(
    model: type[Model], keys: Sequence[str], fields: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """For each row (values of ``fields``, then of ``keys``): set those fields on the rows whose
    ``keys`` equal the row's (a key given as a tuple: one of those). One raw ``executemany``; off:
    one ORM update per row."""
    if not rows:
        return
    if not on("returning"):
        manager = model._default_manager
        for row in rows:
            values, match = row[: len(fields)], row[len(fields) :]
            filters = {
                (f"{k}__in" if isinstance(v, tuple) else k): (list(v) if isinstance(v, tuple) else v)
                for k, v in zip(keys, match, strict=True)
            }
            manager.filter(**filters).update(**dict(zip(fields, values, strict=True)))
        return
    if connection.vendor == "postgresql" and len(rows) > 1 and _same_tuples(rows, len(fields), len(keys)):
        _update_from_values(model, keys, fields, rows)
        return
    meta, qn = model._meta, connection.ops.quote_name
    assigns = [_field(model, name) for name in fields]
    conditions = []
    for name, value in zip(keys, rows[0][len(fields) :], strict=True):
        column = qn(_field(model, name).column)
        if isinstance(value, tuple):
            conditions.append(f"{column} IN ({', '.join(['%s'] * len(value))})")
        else:
            conditions.append(f"{column} = %s")
    sql = (
        f"UPDATE {qn(meta.db_table)} SET {', '.join(f'{qn(f.column)} = %s' for f in assigns)} "
        f"WHERE {' AND '.join(conditions)}"
    )
    params = []
    for row in rows:
        values, match = row[: len(fields)], row[len(fields) :]
        flat = [v for m in match for v in (m if isinstance(m, tuple) else (m,))]
        params.append(
            [*(f.get_db_prep_save(v, connection) for f, v in zip(assigns, values, strict=True)), *flat]
        )
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def _same_tuples(rows: Sequence[Sequence[Any]], start: int, count: int) -> bool:
    """The keys given as tuples are the same tuple in every row (a condition of the whole batch)."""
    first = rows[0][start : start + count]
    return all(
        row[start + i] == value
        for row in rows[1:]
        for i, value in enumerate(first)
        if isinstance(value, tuple)
    )


def _update_from_values(
    model: type[Model], keys: Sequence[str], fields: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """``update_each`` as one statement, ``UPDATE ... FROM (VALUES ...)``: PostgreSQL plans and
    runs one statement for the batch instead of one per row."""
    meta, qn = model._meta, connection.ops.quote_name
    assigns = [_field(model, name) for name in fields]
    per_row = [(i, name) for i, name in enumerate(keys) if not isinstance(rows[0][len(fields) + i], tuple)]
    together = [(i, name) for i, name in enumerate(keys) if isinstance(rows[0][len(fields) + i], tuple)]
    names = [f"f{i}" for i in range(len(assigns))] + [f"k{i}" for i, _ in per_row]

    def cast(field: Any, column: str) -> str:
        # a VALUES column of NULLs or quoted literals is text: text goes into a character column
        # by assignment (which checks the length), anything else needs its type named
        db_type = field.cast_db_type(connection)
        return column if db_type.startswith(("varchar", "text", "char")) else f"{column}::{db_type}"

    sets = ", ".join(f"{qn(f.column)} = {cast(f, f'v.f{i}')}" for i, f in enumerate(assigns))
    conditions = [
        f"t.{qn(_field(model, name).column)} = {cast(_field(model, name), f'v.k{i}')}" for i, name in per_row
    ]
    params: list[Any] = []
    for i, name in together:
        values = rows[0][len(fields) + i]
        conditions.append(f"t.{qn(_field(model, name).column)} IN ({', '.join(['%s'] * len(values))})")
    tuples = []
    for row in rows:
        tuples.append(f"({', '.join(['%s'] * len(names))})")
        params += [
            f.get_db_prep_save(v, connection) for f, v in zip(assigns, row[: len(fields)], strict=True)
        ]
        params += [row[len(fields) + i] for i, _ in per_row]
    params += [v for i, _ in together for v in rows[0][len(fields) + i]]
    sql = (
        f"UPDATE {qn(meta.db_table)} AS t SET {sets} FROM (VALUES {', '.join(tuples)}) AS v({', '.join(names)}) "
        f"WHERE {' AND '.join(conditions)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _field(model: type[Model], name: str) -> Any:
    """A concrete field (typed loosely: the stubs' union includes relations and generic keys)."""
    return model._meta.get_field(name)


# -- channels_redis -------------------------------------------------------------------------------


def group_key(layer: Any, name: str) -> bytes | None:
    """The Redis key of channel group ``name`` (the sorted set ``group_add`` writes members to),
    or None when not used: then every group is sent to. ``_group_key`` is private to
    channels_redis (checked against 4.3.0)."""
    if not on("groups"):
        return None
    key: bytes = layer._group_key(name)
    return key
