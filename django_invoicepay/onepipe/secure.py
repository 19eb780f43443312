"""The `secure` field and the `Signature` header, exactly as OnePipe documents them
(docs/reference/wire-format.md#onepipe-secure-field; to check them:
docs/reference/wire-format.md#onepipe-test-vector).

- key material: MD5 of the client secret encoded as UTF-16LE (16 bytes); the 3DES key is those
  16 bytes followed by their first 8 (K1|K2|K1);
- TripleDES, CBC, IV of 8 zero bytes, PKCS#5/7 padding, base64 output;
- the plaintext's encoding is not documented: the Java and C# samples use UTF-16LE, the Node and
  PHP ones UTF-8. It is a setting (ONEPIPE["SECURE_ENCODING"], default UTF-16LE); inferred:
  docs/reference/wire-format.md#onepipe-secure-encoding.
- Signature: lowercase hex MD5 of "<request_ref>;<client_secret>" (docs/reference/wire-format.md#onepipe-signature).
MD5 and 3DES are OnePipe's choices, not ours; nothing here is used for anything else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

ZERO_IV = b"\x00" * 8
ENCODINGS = {"utf-16-le": "utf-16-le", "utf-16le": "utf-16-le", "utf-8": "utf-8", "utf8": "utf-8"}


def _key(client_secret: str) -> bytes:
    digest = hashlib.md5(client_secret.encode("utf-16-le")).digest()  # noqa: S324 - OnePipe's scheme
    return digest + digest[:8]


def _encoding(name: str) -> str:
    try:
        return ENCODINGS[name.lower()]
    except KeyError:
        raise ValueError(f"Unknown secure encoding {name!r}: use 'utf-16-le' or 'utf-8'") from None


def _cipher(client_secret: str) -> Any:
    """Triple DES in CBC mode with a zero IV, as OnePipe. cryptography is imported here, on first use: a
    shop that never holds funds does not load it (about 7 MiB; benchmarks/README.md)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

    try:  # TripleDES moved to the "decrepit" module in cryptography 43
        from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    except ImportError:  # pragma: no cover - older cryptography
        from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES
    return Cipher(TripleDES(_key(client_secret)), modes.CBC(ZERO_IV))


def encrypt_secure(plaintext: str, client_secret: str, *, encoding: str = "utf-16-le") -> str:
    from cryptography.hazmat.primitives import padding

    padder = padding.PKCS7(64).padder()
    data = padder.update(plaintext.encode(_encoding(encoding))) + padder.finalize()
    encryptor = _cipher(client_secret).encryptor()
    return base64.b64encode(encryptor.update(data) + encryptor.finalize()).decode("ascii")


def decrypt_secure(value: str, client_secret: str, *, encoding: str = "utf-16-le") -> str:
    """The reverse (OnePipe's side; the sandbox uses it). ValueError for anything malformed."""
    from cryptography.hazmat.primitives import padding

    try:
        raw = base64.b64decode(value, validate=True)
        decryptor = _cipher(client_secret).decryptor()
        padded = decryptor.update(raw) + decryptor.finalize()
        unpadder = padding.PKCS7(64).unpadder()
        return (unpadder.update(padded) + unpadder.finalize()).decode(_encoding(encoding))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise ValueError("secure is not a value encrypted with this client secret") from exc


def signature(request_ref: str, client_secret: str) -> str:
    return hashlib.md5(f"{request_ref};{client_secret}".encode()).hexdigest()  # noqa: S324 - OnePipe's scheme


# -- plaintexts by auth.type ---------------------------------------------------------------------


def card_plaintext(pan: str, cvv: str, expiry: str, pin: str) -> str:
    return f"{pan};{cvv};{expiry};{pin}"


def bank_account_plaintext(account_number: str, bank_code: str) -> str:
    return f"{account_number};{bank_code}"


def wallet_plaintext(wallet_number: str, provider_code: str) -> str:
    return f"{wallet_number};{provider_code}"


def provider_token_plaintext(token: str) -> str:
    return token


def otp_plaintext(otp: str) -> str:
    return otp
