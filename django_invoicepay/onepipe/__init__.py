"""OnePipe's /transact family (hold funds): wire format, `secure` encryption, HTTP client.

Knows nothing about this app's models or settings; `django_invoicepay.clients` builds a
configured client.
"""

from .client import OnePipeClient, OnePipeResult
from .secure import decrypt_secure, encrypt_secure, signature

__all__ = ["OnePipeClient", "OnePipeResult", "decrypt_secure", "encrypt_secure", "signature"]
