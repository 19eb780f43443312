"""Record the app's public signals during a test, to assert what the shop's receivers were told."""

from __future__ import annotations

from typing import Any

from .. import signals

#: Every public signal (docs/signals.md), by name.
PUBLIC_SIGNALS = (
    "invoice_status_changed",
    "invoice_overpaid",
    "invoice_underpaid",
    "invoice_expired",
    "hold_status_changed",
    "consent_status_changed",
)


class SignalRecorder(list):
    """A list of `(signal name, kwargs)` in the order they were sent (kwargs without `signal`).

    Use as a context manager, or call `connect()` and `disconnect()`.
    """

    def __init__(self) -> None:
        super().__init__()
        self._receivers: list[tuple[Any, Any]] = []

    def connect(self) -> SignalRecorder:
        for name in PUBLIC_SIGNALS:
            def receiver(sender: Any, _name: str = name, **kwargs: Any) -> None:
                kwargs.pop("signal", None)
                self.append((_name, kwargs))

            signal = getattr(signals, name)
            signal.connect(receiver, weak=False)
            self._receivers.append((signal, receiver))
        return self

    def disconnect(self) -> None:
        for signal, receiver in self._receivers:
            signal.disconnect(receiver)
        self._receivers.clear()

    def __enter__(self) -> SignalRecorder:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    def names(self) -> list[str]:
        """The names of the signals sent, in order."""
        return [name for name, _ in self]

    def of(self, name: str) -> list[dict[str, Any]]:
        """The kwargs of every `name` signal sent, in order."""
        return [kwargs for sent, kwargs in self if sent == name]

    def transitions(self) -> list[tuple[str, str]]:
        """`(old_status, new_status)` of every invoice_status_changed, in order."""
        return [(kw["old_status"], kw["new_status"]) for kw in self.of("invoice_status_changed")]
