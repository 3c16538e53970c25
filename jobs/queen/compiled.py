"""Queries the queen runs on every pass, compiled to SQL once.

Django compiles a queryset every time it runs it: for the joins the queen runs on every pass
that is about 0.4 ms of CPU (measured), more than PostgreSQL takes to answer them. A
``Compiled`` query is built once per database vendor; the parameters that are date-times given
per call are found by building it with two stand-in values and seeing which parameters differ.
``CompiledLoad`` does the same for loads of model instances by id.

A trick behind ``jobs.fastsql`` (``compiled``): with it off, each call runs its queryset. The
compiler's internals used here (``klass_info``, ``select``, ``annotation_col_map``,
``results_iter``, ``get_related_populators``) were checked against Django 5.2;
tests/engine/test_compiled.py compares every load with the queryset's own instances.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connections
from django.db.models import QuerySet

# internal to Django, so not in the stubs
from django.db.models.query import get_related_populators  # type: ignore[attr-defined]

from jobs import fastsql

_STAND_INS = (datetime(2001, 1, 1, tzinfo=UTC), datetime(2002, 2, 2, tzinfo=UTC))


def _varying(
    build: Callable[..., Any], what: str, first: tuple[str, Any], second: tuple[str, Any]
) -> dict[int, Any]:
    """Positions of the parameters that differ between two builds with other stand-ins, with the
    first build's values; the SQL text itself must not differ."""
    if first[0] != second[0]:
        raise ValueError(f"the SQL of {build.__name__} depends on {what}")
    return {i: a for i, (a, b) in enumerate(zip(first[1], second[1], strict=True)) if a != b}


class Compiled:
    """``build(**datetimes)`` returns a queryset whose SQL text does not depend on the values of
    its date-time arguments; ``rows(**datetimes)`` runs that SQL and returns plain rows (what
    ``values_list`` would, without per-field conversions: use it for integer and text columns)."""

    def __init__(self, build: Callable[..., QuerySet[Any]], *datetimes: str) -> None:
        self.build = build
        self.datetimes = datetimes
        self._by_vendor: dict[str, tuple[str, list[Any], dict[int, str]]] = {}

    def _compile(self, vendor: str) -> tuple[str, list[Any], dict[int, str]]:
        first = dict.fromkeys(self.datetimes, _STAND_INS[0])
        sql, params = self.build(**first).query.sql_with_params()
        slots: dict[int, str] = {}  # parameter position -> the argument it holds
        for name in self.datetimes:
            other = self.build(**{**first, name: _STAND_INS[1]}).query.sql_with_params()
            slots.update(dict.fromkeys(_varying(self.build, name, (sql, params), other), name))
        compiled = (sql, list(params), slots)
        self._by_vendor[vendor] = compiled
        return compiled

    def rows(self, **values: datetime) -> list[tuple[Any, ...]]:
        if not fastsql.on("compiled"):
            return [tuple(row) for row in self.build(**values)]
        connection = connections["default"]
        sql, params, slots = self._by_vendor.get(connection.vendor) or self._compile(connection.vendor)
        adapt = connection.ops.adapt_datetimefield_value
        bound = [adapt(values[slots[i]]) if i in slots else p for i, p in enumerate(params)]
        with connection.cursor() as cursor:
            cursor.execute(sql, bound)
            return cursor.fetchall()


class CompiledLoad:
    """``build(ids)`` returns a queryset of model instances (``select_related``, ``only``,
    annotations) of the rows with those ids; ``load(ids)`` runs its SQL, compiled once per
    database vendor and batch size (ids padded to a power of two), and makes the instances as
    Django's ``ModelIterable`` does. Compiling the queen's two per-pass loads (the tasks to
    send, the tasks answered) was a fifth of its CPU."""

    def __init__(self, build: Callable[[list[int]], QuerySet[Any]]) -> None:
        self.build = build
        self._by_shape: dict[tuple[str, int], _Load] = {}

    def prepare(self, most: int) -> None:
        """Compile every shape a load of up to ``most`` ids uses, ahead: a daemon pays it at
        start instead of a few ms on its first passes. Loads that lock rows need a transaction."""
        if not fastsql.on("compiled"):
            return
        size = 1
        while True:
            key = (connections["default"].vendor, size)
            if key not in self._by_shape:
                self._compile(key)
            if size >= most:
                return
            size *= 2

    def load(self, ids: Iterable[int]) -> list[Any]:
        ids = list(dict.fromkeys(ids))
        if not ids:
            return []
        if not fastsql.on("compiled"):
            return list(self.build(ids))
        # padded to a power of two with ids no row has: a handful of shapes to compile (each
        # costs a few ms, and a fresh queen met a new count on most passes)
        size = 1 << (len(ids) - 1).bit_length()
        ids += [-(i + 1) for i in range(size - len(ids))]
        connection = connections["default"]
        key = (connection.vendor, size)
        shape = self._by_shape.get(key) or self._compile(key)
        bound = list(shape.params)
        for position, index in shape.slots.items():
            bound[position] = ids[index]
        with connection.cursor() as cursor:
            cursor.execute(shape.sql, bound)
            rows = cursor.fetchall()
        out = []
        for row in shape.compiler.results_iter([rows]):
            obj = shape.model.from_db(connection.alias, shape.init_list, row[shape.start : shape.end])
            for populator in shape.related:
                populator.populate(row, obj)
            for name, position in shape.annotations.items():
                setattr(obj, name, row[position])
            out.append(obj)
        return out

    def _compile(self, key: tuple[str, int]) -> "_Load":
        count = key[1]
        stand_ins = [-(i + 1) for i in range(count)]  # no row has a negative id
        queryset = self.build(stand_ins)
        compiler = queryset.query.get_compiler(using=queryset.db)
        sql, params = compiler.as_sql()
        other = (
            self.build([-(count + i + 1) for i in range(count)])
            .query.get_compiler(using=queryset.db)
            .as_sql()
        )
        index_of = {stand_in: i for i, stand_in in enumerate(stand_ins)}
        varying = _varying(self.build, "the ids' values", (sql, params), other)
        slots = {p: index_of[value] for p, value in varying.items()}
        if sorted(slots.values()) != list(range(count)):
            raise ValueError(f"{self.build.__name__} must use each id once")
        klass_info, select = compiler.klass_info, compiler.select
        start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        shape = _Load(
            compiler=compiler, sql=sql, params=list(params), slots=slots, model=klass_info["model"],
            init_list=[f[0].target.attname for f in select[start:end]], start=start, end=end,
            related=get_related_populators(klass_info, select, queryset.db),
            annotations=dict(compiler.annotation_col_map or {}),
        )  # fmt: skip
        self._by_shape[key] = shape
        return shape


@dataclass(frozen=True)
class _Load:
    compiler: Any  # its select list and converters turn raw rows into field values
    sql: str
    params: list[Any]
    slots: dict[int, int]  # parameter position -> index of the id it holds
    model: Any
    init_list: list[str]
    start: int
    end: int
    related: list[Any]
    annotations: dict[str, int]
