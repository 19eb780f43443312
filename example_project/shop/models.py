from django.conf import settings
from django.db import models

from django_invoicepay.money import Money


class Order(models.Model):
    """The shop's own order: django-invoicepay moves `status` as its invoice's status changes."""

    description = models.CharField(max_length=200)
    total = models.BigIntegerField(help_text="In cents.")
    status = models.CharField(max_length=32, default="new")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created", "-pk")

    def __str__(self) -> str:
        return f"Order {self.number}"

    @property
    def number(self) -> str:
        return f"ORD-{self.pk:05d}"

    @property
    def total_money(self) -> Money:
        return Money(self.total, "USD", 2)
