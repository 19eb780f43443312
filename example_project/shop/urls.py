from django.urls import path

from . import views

app_name = "shop"
urlpatterns = [
    path("", views.order_list, name="order_list"),
    path("orders/<int:pk>/", views.order_detail, name="order_detail"),
    path("orders/<int:pk>/invoice/", views.create_invoice, name="create_invoice"),
    path("orders/<int:pk>/sync/", views.sync_invoice, name="sync_invoice"),
    path("orders/<int:pk>/sandbox/", views.sandbox_action, name="sandbox_action"),
    path("orders/<int:pk>/refund/", views.refund_overpayment, name="refund_overpayment"),
    path("orders/<int:pk>/renew/", views.renew_invoice, name="renew_invoice"),
    path("orders/<int:pk>/deposit/consent/", views.deposit_consent, name="deposit_consent"),
    path("orders/<int:pk>/deposit/otp/", views.deposit_otp, name="deposit_otp"),
    path("orders/<int:pk>/deposit/hold/", views.deposit_hold, name="deposit_hold"),
    path("orders/<int:pk>/deposit/<int:hold_pk>/release/", views.deposit_release, name="deposit_release"),
    path("pay/<str:token>/", views.pay, name="pay"),
    path("pay/<str:token>/sandbox/", views.pay_sandbox, name="pay_sandbox"),
]
