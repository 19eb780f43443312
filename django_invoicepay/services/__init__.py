"""The services: the only code that changes the mirror's rows (docs/development.md#layers).

Each module is one job: `invoices` (create, sync, cancel, and `apply_invoice`, the one path provider
data takes into the database), `payments` (what the payer API asks of an invoice), `refunds`,
`renewals`, `holds` (OnePipe consents and holds), `polling` (the sweep), `announcements` (the outbox
that sends the signals) and `otp` (one code checked at a time, lock-outs). Views, template tags,
admin actions, commands and tasks call these; provider clients (`rehive`, `onepipe`) know nothing
of them.
"""
