"""Helpers for the reliability suite (tests/test_reliability.py): settings for the server
processes, a signal recorder, and a small command-line tool to set up and inspect a run."""

#: Secrets planted in every setting and request; none may appear in logs, responses or the delivery log.
PLANTED = {
    "api_key": "sk_rel_planted_api_key_7c1d",
    "webhook_secret": "whsec_rel_planted_4f2a",
    "onepipe_key": "op_rel_planted_key_91b0",
    "onepipe_secret": "op_rel_planted_secret_5e3c",
    "otp": "739146",
}
