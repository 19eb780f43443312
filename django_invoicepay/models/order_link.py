"""Rows that point at one of the shop's orders through a generic relation (`content_type`, `object_id`)."""

from __future__ import annotations

from typing import Self, TypeVar

from django.contrib.contenttypes.models import ContentType
from django.db import models

_M = TypeVar("_M", bound=models.Model)


class OrderQuerySet(models.QuerySet[_M]):
    def for_order(self, order: models.Model) -> Self:
        """The rows of `order`, an instance of any of the shop's models."""
        content_type = ContentType.objects.get_for_model(order)
        return self.filter(content_type=content_type, object_id=str(order.pk))
