"""An offline simulator of OnePipe's hold-funds service (/transact and friends).

It checks the Bearer key and the MD5 Signature, decrypts `secure` with the configured client
secret and refuses malformed plaintext as a provider would. Documented test values:

- OTP **123456** completes a consent; any other OTP fails;
- bank account **0000000001** asks for extra information (PendingValidation); answer **1990-01-01**;
- bank account **0000000002** gets a token that has already expired;
- every account starts with a balance of N10,000.00 (1,000,000 kobo): a hold above what is left
  fails with code 51; a transaction_ref used again within 5 minutes fails with code 94.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from ..onepipe.secure import decrypt_secure, signature
from .rehive import SandboxResponse, _detached
from .state import SandboxState, get_state

logger = logging.getLogger("django_invoicepay.sandbox")

SANDBOX_ONEPIPE_OTP = "123456"
PENDING_VALIDATION_ACCOUNT = "0000000001"
PENDING_VALIDATION_ANSWER = "1990-01-01"
EXPIRED_TOKEN_ACCOUNT = "0000000002"  # noqa: S105 - a documented test account, not a secret
START_BALANCE = 1_000_000
DUPLICATE_WINDOW = 300
TOKEN_LIFETIME = timedelta(days=365)
HOLD_LIFETIME = timedelta(days=7)
PARTS = {"card": 4, "bank.account": 2, "wallet": 2}


def _expiry(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d-%H-%M-%S")


def onepipe_reply(status: str, message: str, *, code: str = "00", provider_response: dict | None = None,
           error: dict | None = None, http: int = 200) -> SandboxResponse:
    return SandboxResponse(http, {
        "status": status, "message": message,
        "data": {"provider_response_code": code, "provider": "Sandbox", "errors": [error] if error else None,
                 "error": error, "provider_response": provider_response, "client_info": {"name": "Sandbox"}},
    })


def failed(code: str, message: str) -> SandboxResponse:
    return onepipe_reply("Failed", message, code=code, error={"code": code, "message": message})


def expire_hold(transaction_ref: str, *, state: SandboxState | None = None) -> dict:
    """The provider lets a placed hold lapse: its expiry moves into the past and the money is the
    customer's again (a payer-side action, like the Rehive ones in `payer`)."""
    from .payer import SandboxActionError

    state = state or get_state()
    with state.transaction() as data:
        record = data["onepipe"]["transactions"].get(transaction_ref)
        if record is None or record.get("type") != "provider_token" or record.get("status") != "Successful":
            raise SandboxActionError(f"The sandbox has no placed hold {transaction_ref}.")
        record["hold_expiry"] = _expiry(datetime.now(UTC) - timedelta(minutes=1))
        balances = data["onepipe"]["balances"]
        balances[record["account"]] = balances.get(record["account"], START_BALANCE) + record["amount"]
        record["lapsed"] = True  # OnePipe's own status stays "Successful"; the past expiry tells
        return dict(record)


def notification(transaction_ref: str, *, state: SandboxState | None = None, app_code: str = "sandbox") -> dict:
    """The transaction notification OnePipe would POST to the app for this transaction (it needs no
    credentials: OnePipe does not sign its notifications, docs/webhooks.md#onepipe)."""
    state = state or get_state()
    with state.transaction() as data:
        record = data["onepipe"]["transactions"][transaction_ref]
    customer = record.get("customer") or {}
    return {
        "request_ref": secrets.token_hex(8), "request_type": "transaction_notification", "requester": "Sandbox",
        "mock_mode": "inspect",
        "details": {"amount": record["amount"], "transaction_type": "hold_funds",
                    "transaction_ref": transaction_ref, "transaction_desc": "", "status": record["status"],
                    "provider": "Sandbox", "customer_ref": customer.get("customer_ref", ""),
                    "customer_email": customer.get("email", ""),
                    "customer_firstname": customer.get("firstname", ""),
                    "customer_surname": customer.get("surname", ""),
                    "customer_mobile_no": customer.get("mobile_no", ""),
                    "data": {}, "meta": {"event_type": "hold", "payment_id": secrets.token_hex(6),
                                         "signature_hash": ""}},
        "app_info": {"app_code": app_code},
    }


class OnePipeSandbox:
    def __init__(self, state: SandboxState | None = None, *, api_key: str, client_secret: str,
                 encoding: str) -> None:
        self._state = state  # None: whichever sandbox `get_state()` names at each request
        self.api_key, self.client_secret, self.encoding = api_key, client_secret, encoding

    @property
    def state(self) -> SandboxState:
        return self._state if self._state is not None else get_state()

    @property
    def data(self) -> dict:
        """OnePipe's part of the sandbox (call inside `state.transaction()`)."""
        return self.state.data["onepipe"]

    def handle(self, method: str, path: str, *, headers: dict[str, str], body: bytes, **_: Any) -> SandboxResponse:
        headers = {k.lower(): v for k, v in headers.items()}
        if method != "POST":
            return SandboxResponse(405, {"status": "Failed", "message": "Method not allowed"})
        try:
            payload = json.loads(body or b"{}")
            assert isinstance(payload, dict)
        except (ValueError, AssertionError):
            return SandboxResponse(400, {"status": "Failed", "message": "Invalid JSON"})
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return SandboxResponse(401, {"status": "Failed", "message": "Invalid API key"})
        request_ref = str(payload.get("request_ref") or "")
        if not request_ref or headers.get("signature") != signature(request_ref, self.client_secret):
            return SandboxResponse(401, {"status": "Failed", "message": "Invalid signature"})
        handler = {"transact": self.transact, "transact/validate": self.validate, "transact/query": self.query,
                   "transact/reverse": self.reverse, "transact/options": self.options}.get(path.strip("/"))
        if handler is None:
            return SandboxResponse(404, {"status": "Failed", "message": "Not found"})
        ref = str((payload.get("transaction") or {}).get("transaction_ref") or "")
        with self.state.transaction() as data:  # a rejected request changes nothing
            result = handler(payload)
            result = SandboxResponse(result.status, _detached(result.body), result.headers)
            notify = path.strip("/") in {"transact", "transact/reverse"} and ref in self.data["transactions"]
            url = data.get("onepipe_notify_url")
        if notify and url:
            self.send_notification(ref, url)
        return result

    def send_notification(self, transaction_ref: str, url: str | None = None) -> None:
        """POST the notification to `url` (default: `state.data["onepipe_notify_url"]`) when set, in the
        background, as OnePipe would (a failure is logged, never raised)."""
        url = url or self.state.data.get("onepipe_notify_url")
        if not url:
            return
        body = self.notification(transaction_ref)

        def post() -> None:
            import requests

            try:
                requests.post(url, json=body, timeout=5)
            except requests.RequestException as exc:
                logger.warning("Sandbox: the OnePipe notification to %s failed: %s", url, exc)

        threading.Thread(target=post, daemon=True).start()

    def _secret(self, payload: dict) -> str:
        return decrypt_secure(str((payload.get("auth") or {}).get("secure") or ""), self.client_secret,
                              encoding=self.encoding)

    def transact(self, payload: dict) -> SandboxResponse:
        auth = payload.get("auth") or {}
        tx = payload.get("transaction") or {}
        ref, amount = str(tx.get("transaction_ref") or ""), tx.get("amount")
        if not ref or isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            return failed("12", "transaction_ref and a positive integer amount are required")
        seen = self.data["transactions"].get(ref)
        if seen and time.time() - seen["at"] < DUPLICATE_WINDOW:
            return failed("94", "Duplicate transaction")
        try:
            plaintext = self._secret(payload)
        except ValueError:
            return failed("Z1", "Invalid auth details: secure could not be decrypted")
        kind = auth.get("type")
        record: dict[str, Any] = {
            "at": time.time(), "amount": amount, "type": kind, "status": "Pending",
            "customer": tx.get("customer") or {}, "otp_override": bool((tx.get("details") or {}).get("otp_override"))}
        if kind == "provider_token":
            return self._hold(ref, record, plaintext)
        if kind not in PARTS or len(plaintext.split(";")) != PARTS[kind] or not all(plaintext.split(";")):
            return failed("Z1", f"Invalid auth details for {kind}")
        record["account"] = plaintext.split(";")[0]
        self.data["transactions"][ref] = record
        if record["otp_override"]:
            return self._consent_granted(ref, record)
        if record["account"] == PENDING_VALIDATION_ACCOUNT:
            record["status"] = "PendingValidation"
            return onepipe_reply("PendingValidation", "Please enter your date of birth (yyyy-mm-dd)", code="T0")
        record["status"] = "WaitingForOTP"
        mobile = str(record["customer"].get("mobile_no") or "")
        return onepipe_reply("WaitingForOTP", f"Please enter the OTP sent to {mobile[:5]}****{mobile[-2:]}", code="T0")

    def _consent_granted(self, ref: str, record: dict) -> SandboxResponse:
        now = datetime.now(UTC)
        token = "tok_" + secrets.token_hex(16)
        expires = now - timedelta(minutes=1) if record.get("account") == EXPIRED_TOKEN_ACCOUNT else now + TOKEN_LIFETIME
        self.data["tokens"][token] = {"account": record["account"], "expires": expires.timestamp()}
        self.data["balances"].setdefault(record["account"], START_BALANCE)
        record["status"] = "Successful"
        reference = secrets.token_hex(12)
        return onepipe_reply("Successful", "Transaction processed successfully", provider_response={
            "provider_token": token, "token_expiry": _expiry(expires), "hold_expiry": _expiry(now + HOLD_LIFETIME),
            "reference": reference, "meta": {}})

    def validate(self, payload: dict) -> SandboxResponse:
        ref = str((payload.get("transaction") or {}).get("transaction_ref") or "")
        record = self.data["transactions"].get(ref)
        if record is None:
            return failed("25", "Unknown transaction")
        if record["status"] not in {"WaitingForOTP", "PendingValidation"}:
            return failed("94", f"The transaction is {record['status']}: nothing to validate")
        try:
            given = self._secret(payload)
        except ValueError:
            return failed("Z1", "Invalid auth details: secure could not be decrypted")
        expected = SANDBOX_ONEPIPE_OTP if record["status"] == "WaitingForOTP" else PENDING_VALIDATION_ANSWER
        if given != expected:
            return failed("Z5", "Invalid OTP" if record["status"] == "WaitingForOTP" else "Invalid information")
        return self._consent_granted(ref, record)

    def _hold(self, ref: str, record: dict, token: str) -> SandboxResponse:
        known = self.data["tokens"].get(token)
        if known is None:
            return failed("Z2", "Invalid provider token")
        if known["expires"] < time.time():
            return failed("Z3", "The provider token has expired")
        balance = self.data["balances"].get(known["account"], START_BALANCE)
        record.update(account=known["account"])
        self.data["transactions"][ref] = record
        if record["amount"] > balance:
            record["status"] = "Failed"
            return failed("51", "Insufficient funds")
        self.data["balances"][known["account"]] = balance - record["amount"]
        record["status"] = "Successful"
        record["hold_expiry"] = _expiry(datetime.now(UTC) + HOLD_LIFETIME)
        record["reference"] = secrets.token_hex(12)
        return onepipe_reply("Successful", "Transaction processed successfully", provider_response={
            "hold_expiry": record["hold_expiry"], "reference": record["reference"], "meta": {}})

    def query(self, payload: dict) -> SandboxResponse:
        ref = str((payload.get("transaction") or {}).get("transaction_ref") or "")
        record = self.data["transactions"].get(ref)
        if record is None:
            return failed("25", "Unknown transaction")
        status = {"Reversed": "Successful"}.get(record["status"], record["status"])
        return onepipe_reply(status, f"Transaction is {record['status']}", provider_response={
            "transaction_status": record["status"], "hold_expiry": record.get("hold_expiry"),
            "reference": record.get("reference"), "meta": {}})

    def reverse(self, payload: dict) -> SandboxResponse:
        ref = str((payload.get("transaction") or {}).get("transaction_ref") or "")
        record = self.data["transactions"].get(ref)
        if record is None or record["type"] != "provider_token":
            return failed("25", "Unknown hold")
        if record["status"] == "Successful" and not record.get("lapsed"):
            self.data["balances"][record["account"]] += record["amount"]
            record["status"] = "Reversed"
        return onepipe_reply("Successful", "Hold released", provider_response={"reference": record.get("reference")})

    def options(self, payload: dict) -> SandboxResponse:
        return onepipe_reply("OptionsDelivered", "Options delivered", provider_response={
            "options": ["bank.account", "wallet", "card"], "settlement_model": "Amount"})

    def notification(self, transaction_ref: str, *, app_code: str = "sandbox") -> dict:
        return notification(transaction_ref, state=self.state, app_code=app_code)
