"""`for_order`: invoices and hold consents of one of the shop's orders, whatever model it is."""

from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType

from django_invoicepay.models import HoldConsent


def _consent(ref: str, owner_row=None) -> HoldConsent:
    fields = {}
    if owner_row is not None:
        fields = {"content_type": ContentType.objects.get_for_model(owner_row), "object_id": str(owner_row.pk)}
    return HoldConsent.objects.create(auth_type="bank.account", transaction_ref=ref, amount=100, **fields)


def test_a_consent_is_found_by_its_order_and_not_by_another_model_with_the_same_pk(order):
    user = get_user_model().objects.create(username="same-pk", pk=order.pk)
    mine = _consent("for-the-order", order)
    _consent("for-a-user", user)
    _consent("for-nothing")

    assert list(HoldConsent.objects.for_order(order)) == [mine]
    assert [c.transaction_ref for c in HoldConsent.objects.for_order(user)] == ["for-a-user"]
    assert HoldConsent.objects.for_order(order).filter(status=HoldConsent.Status.ACTIVE).count() == 0  # chains
