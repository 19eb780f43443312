"""The currency part that every row carrying an amount shares.

Amounts are integers in minor units; each model keeps its own amount field(s) (their verbose
names and defaults differ) and names the one `money` shows in `amount_field`.
"""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.utils.translation import gettext_lazy as _

from ..money import Money


class MinorUnits(models.Model):
    #: The name of the model's amount field, in minor units of `currency_code`.
    amount_field: ClassVar[str] = "amount"

    currency_code = models.CharField(_("currency"), max_length=16, blank=True)
    currency_divisibility = models.PositiveSmallIntegerField(_("divisibility"), default=2)

    class Meta:
        abstract = True

    def as_money(self, minor: int) -> Money:
        """`minor` units of this row's currency."""
        return Money(minor, self.currency_code, self.currency_divisibility)

    @property
    def money(self) -> Money:
        return self.as_money(getattr(self, self.amount_field))
