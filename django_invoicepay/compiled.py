"""A query compiled once per process and database, then run with new values.

For the webhook intake's one read (`webhooks.handlers.rehive_load`): compiling that ORM query (an
invoice with two subqueries) costs about ten times running it, 1.7 ms of a 7 ms event on the
benchmark machine (benchmarks/README.md). The ORM still writes the SQL, once; only string values
(each given as a keyword) change between runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from django.db import models

_M = TypeVar("_M", bound=models.Model)


class CompiledQuery(Generic[_M]):
    def __init__(self, build: Callable[..., models.QuerySet[_M]], *names: str) -> None:
        """`build(**{name: value})` makes the queryset; each name's value must reach the SQL as a parameter."""
        self.build, self.names = build, names
        self._compiled: dict[str, tuple[type[_M], str, list[Any], dict[str, list[int]]]] = {}

    def _compile(self, using: str) -> tuple[type[_M], str, list[Any], dict[str, list[int]]]:
        stand_ins = {name: f"\x00compiled:{name}\x00" for name in self.names}
        queryset = self.build(**stand_ins).using(using)
        sql, params = queryset.query.sql_with_params()
        positions = {name: [i for i, p in enumerate(params) if p == mark] for name, mark in stand_ins.items()}
        missing = [name for name, found in positions.items() if not found]
        if missing:
            raise ValueError(f"{missing} do not reach the query as parameters: it cannot be compiled once")
        return queryset.model, sql, list(params), positions

    def __call__(self, *, using: str = "default", **values: str) -> list[_M]:
        if using not in self._compiled:
            self._compiled[using] = self._compile(using)
        model, sql, params, positions = self._compiled[using]
        params = list(params)
        for name, indexes in positions.items():
            for index in indexes:
                params[index] = values[name]
        return list(model._default_manager.db_manager(using).raw(sql, params))
