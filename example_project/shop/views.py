"""The example shop's pages: thin views over django-invoicepay's public API."""

from __future__ import annotations

from decimal import InvalidOperation

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from django_invoicepay import sandbox
from django_invoicepay.conf import invoicepay_settings
from django_invoicepay.errors import HoldError, InvoiceStateError, ProviderError
from django_invoicepay.models import Hold, HoldConsent, Invoice
from django_invoicepay.money import to_minor
from django_invoicepay.services import holds

from .models import Order

PAYER_ACTIONS = {
    "choose_native": ("Choose wallet", lambda i: sandbox.choose_processor(i, "native")),
    "choose_bitcoin": ("Choose bitcoin", lambda i: sandbox.choose_processor(i, "native_bitcoin")),
    "choose_bank": ("Choose bank transfer", lambda i: sandbox.choose_processor(i, "bank_transfer")),
    "pay": ("Pay exactly", sandbox.pay),
    "overpay": ("Overpay by 1.00", lambda i: sandbox.overpay(i, 100)),
    "underpay": ("Underpay by 1.00", lambda i: sandbox.underpay(i, 100)),
    "crypto_deposit": ("Send bitcoin (0 confirmations)", sandbox.crypto_deposit),
    "confirm": ("Add a confirmation", sandbox.confirm),
    "expire": ("Let it expire", sandbox.expire),
}


def order_list(request):
    if request.method == "POST":
        description = request.POST.get("description", "").strip() or "Something nice"
        try:
            total = to_minor(request.POST.get("total", ""), 2)
        except (InvalidOperation, ValueError, TypeError):
            messages.error(request, "Enter the total as an amount like 12.50.")
            return redirect("shop:order_list")
        if total <= 0:
            messages.error(request, "The total must be more than zero.")
            return redirect("shop:order_list")
        order = Order.objects.create(description=description, total=total)
        return redirect("shop:order_detail", pk=order.pk)
    return render(request, "shop/order_list.html", {"orders": Order.objects.all()[:50]})


def _invoice_by_token(token: str) -> Invoice:
    queryset = Invoice.objects.prefetch_related("quotes", "transactions", "refunds").select_related("renewed_by")
    return get_object_or_404(queryset, public_token=token)


def pay(request, token: str):
    """The customer's pay page: everything on it talks to the invoicepay API."""
    invoice = _invoice_by_token(token)
    context = {
        "invoice": invoice,
        "order": invoice.order,
        "sandbox": invoicepay_settings.SANDBOX,
        "payer_actions": [(key, label) for key, (label, _) in PAYER_ACTIONS.items()],
        "poll_ms": _poll_ms(request.GET.get("poll_ms")),
    }
    return render(request, "shop/pay.html", context)


def _poll_ms(value: str | None) -> int:
    """How often the pay page checks for news (?poll_ms=, 250 to 60000 ms; 4000 by default)."""
    try:
        return min(max(int(value), 250), 60_000)
    except (TypeError, ValueError):
        return 4000


@require_POST
def pay_sandbox(request, token: str):
    """The sandbox panel on the pay page: plays the payer, then syncs."""
    invoice = _invoice_by_token(token)
    action = PAYER_ACTIONS.get(request.POST.get("action", ""))
    if invoicepay_settings.SANDBOX and action is not None:
        try:
            action[1](invoice.remote_id)
            invoice.sync()
        except (sandbox.SandboxActionError, ProviderError) as exc:
            messages.error(request, getattr(exc, "message", str(exc)))
    return redirect("shop:pay", token=token)


def _latest_invoice(order: Order) -> Invoice | None:
    related = ("quotes", "transactions", "status_changes", "refunds")
    return Invoice.objects.for_order(order).prefetch_related(*related).first()


def _consent(order: Order) -> HoldConsent | None:
    return HoldConsent.objects.for_order(order).prefetch_related("holds").first()


def order_detail(request, pk: int):
    order = get_object_or_404(Order, pk=pk)
    context = {
        "order": order,
        "consent": _consent(order),
        "onepipe_otp": sandbox.SANDBOX_ONEPIPE_OTP,
        "invoice": _latest_invoice(order),
        "sandbox": invoicepay_settings.SANDBOX,
        "payer_actions": [(key, label) for key, (label, _) in PAYER_ACTIONS.items()],
    }
    return render(request, "shop/order_detail.html", context)


def _act_on_order(request, pk: int, act) -> HttpResponse:
    """Run `act(order, invoice)`; a provider's or the sandbox's refusal is shown to the user, never a 500."""
    order = get_object_or_404(Order, pk=pk)
    try:
        act(order, _latest_invoice(order))
    except ProviderError as exc:
        messages.error(request, exc.message)
    except (sandbox.SandboxActionError, InvoiceStateError) as exc:
        messages.error(request, getattr(exc, "message", str(exc)))
    return redirect("shop:order_detail", pk=pk)


@require_POST
def create_invoice(request, pk: int):
    def act(order: Order, invoice: Invoice | None) -> None:
        Invoice.objects.create_for(
            order, amount=order.total, description=order.description,
            items=[{"name": order.description, "quantity": 1, "price": order.total}],
        )

    return _act_on_order(request, pk, act)


@require_POST
def refund_overpayment(request, pk: int):
    return _act_on_order(request, pk, lambda order, invoice: invoice and invoice.refund_overpayment())


@require_POST
def renew_invoice(request, pk: int):
    return _act_on_order(request, pk, lambda order, invoice: invoice and invoice.renew())


@require_POST
def sync_invoice(request, pk: int):
    return _act_on_order(request, pk, lambda order, invoice: invoice and invoice.sync())


@require_POST
def sandbox_action(request, pk: int):
    """Plays the payer at the sandbox provider, then syncs as a webhook or poll would."""
    action = PAYER_ACTIONS.get(request.POST.get("action", ""))

    def act(order: Order, invoice: Invoice | None) -> None:
        if not invoicepay_settings.SANDBOX or invoice is None or action is None:
            raise sandbox.SandboxActionError("That sandbox action is not available.")
        action[1](invoice.remote_id)
        invoice.sync()

    return _act_on_order(request, pk, act)


# -- rental deposit: consent at checkout, holds placed and released by staff --------------------------


def _deposit_action(request, pk: int, act) -> HttpResponse:
    order = get_object_or_404(Order, pk=pk)
    try:
        act(order, _consent(order))
    except (HoldError, ProviderError) as exc:
        messages.error(request, exc.message)
    return redirect("shop:order_detail", pk=pk)


@require_POST
def deposit_consent(request, pk: int):
    """The customer agrees to a deposit being held from their bank account."""
    post = request.POST
    customer = {"firstname": post.get("firstname", ""), "surname": post.get("surname", ""),
                "email": post.get("email", ""), "mobile_no": post.get("mobile_no", "")}
    credentials = {"account_number": post.get("account_number", ""), "bank_code": post.get("bank_code", "")}

    def act(order, consent):
        holds.request_consent(auth_type="bank.account", credentials=credentials, customer=customer, order=order,
                              description=f"Deposit for {order.number}")

    return _deposit_action(request, pk, act)


@require_POST
def deposit_otp(request, pk: int):
    return _deposit_action(request, pk, lambda order, consent: consent and holds.confirm_consent(
        consent, request.POST.get("otp", "")))


@require_POST
def deposit_hold(request, pk: int):
    """Staff hold the deposit (an amount in naira)."""
    def act(order, consent):
        try:
            amount = to_minor(request.POST.get("amount", ""), 2)
        except (InvalidOperation, ValueError, TypeError):
            raise HoldError("Enter the amount like 5000.00.") from None
        holds.place_hold(consent, amount, description=f"Deposit for {order.number}")

    return _deposit_action(request, pk, act)


@require_POST
def deposit_release(request, pk: int, hold_pk: int):
    return _deposit_action(request, pk, lambda order, consent: holds.release_hold(
        get_object_or_404(Hold, pk=hold_pk, consent=consent)))
