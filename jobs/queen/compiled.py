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
        return shape.maker.instances(rows, connection.alias)

    def _compile(self, key: tuple[str, int]) -> "_Load":
        count = key[1]
        stand_ins = [-(i + 1) for i in range(count)]  # no row has a negative id
        queryset = self.build(stand_ins)
        maker, sql, params = _Maker.of(queryset)
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
        shape = _Load(maker=maker, sql=sql, params=list(params), slots=slots)
        self._by_shape[key] = shape
        return shape


class ShapeLoad(fastsql.ByShape):
    """A ``fastsql.ByShape`` read whose rows are model instances (``select_related``, ``only``,
    annotations), made as ``CompiledLoad`` makes them: where a read of ids and a load of those
    ids took two round trips (the scheduler's pick), one."""

    def __init__(self, build: Callable[..., QuerySet[Any]], **kinds: type) -> None:
        super().__init__(build, **kinds)
        self._makers: dict[str, _Maker] = {}

    def load(self, **arguments: Any) -> list[Any]:
        if not fastsql.on("compiled"):
            return list(self.build(**arguments))
        rows = self.rows(**arguments)
        connection = connections["default"]
        maker = self._makers.get(connection.vendor)
        if maker is None:  # the select list is the same in every shape: one per vendor
            maker = self._makers[connection.vendor] = _Maker.of(self.build(**arguments))[0]
        return maker.instances(rows, connection.alias)


@dataclass(frozen=True)
class _Maker:
    """How a queryset's compiler turns its raw rows into model instances (Django's
    ``ModelIterable``)."""

    compiler: Any  # its select list and converters turn raw rows into field values
    model: Any
    init_list: list[str]
    start: int
    end: int
    related: list[Any]
    annotations: dict[str, int]

    @classmethod
    def of(cls, queryset: QuerySet[Any]) -> tuple["_Maker", str, Any]:
        """The maker of ``queryset``'s instances, and its SQL and parameters."""
        compiler = queryset.query.get_compiler(using=queryset.db)
        sql, params = compiler.as_sql()  # also sets up the select list and klass_info
        klass_info, select = compiler.klass_info, compiler.select
        start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        maker = cls(
            compiler=compiler, model=klass_info["model"],
            init_list=[f[0].target.attname for f in select[start:end]], start=start, end=end,
            related=get_related_populators(klass_info, select, queryset.db),
            annotations=dict(compiler.annotation_col_map or {}),
        )  # fmt: skip
        return maker, sql, params

    def instances(self, rows: list[tuple[Any, ...]], alias: str) -> list[Any]:
        out = []
        for row in self.compiler.results_iter([rows]):
            obj = self.model.from_db(alias, self.init_list, row[self.start : self.end])
            for populator in self.related:
                populator.populate(row, obj)
            for name, position in self.annotations.items():
                setattr(obj, name, row[position])
            out.append(obj)
        return out


@dataclass(frozen=True)
class _Load:
    maker: _Maker
    sql: str
    params: list[Any]
    slots: dict[int, int]  # parameter position -> index of the id it holds
