from django.contrib import admin

from django_invoicepay.admin_inlines import ConsentInline, InvoiceInline

from .models import Order


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("number", "description", "total", "status", "created")
    inlines = [InvoiceInline, ConsentInline]  # the order's invoices and hold consents, read-only
