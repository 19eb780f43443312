"""A bare pay page for the browser tests: only django-invoicepay's shipped tags and script, under a strict CSP."""
