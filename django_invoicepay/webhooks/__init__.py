"""The webhook path: receivers (`views`), the intake every delivery goes through (`intake`:
authenticate, store, lease, process, answer), and what each provider's events mean (`handlers`,
registered in a table by provider name). See docs/webhooks.md."""
