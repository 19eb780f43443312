"""The French translation: a complete catalog, a compiled .mo that matches it, a catalog that covers every
translatable string of the package, and the widgets and API messages actually rendered in French."""

from __future__ import annotations

import ast
import gettext
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.template import Context, Template
from django.utils import translation
from rest_framework.test import APIClient

import django_invoicepay
from django_invoicepay import sandbox
from django_invoicepay.models import Invoice

PACKAGE = Path(django_invoicepay.__file__).resolve().parent
PO = PACKAGE / "locale" / "fr" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")
NBSP = "\u00a0"  # French puts a no-break space before ":" and ";"


# -- a small .po reader (no dependency) -------------------------------------------------------------


@dataclass
class Entry:
    msgid: str = ""
    msgctxt: str | None = None
    msgid_plural: str | None = None
    msgstr: list[str] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)
    obsolete: bool = False

    @property
    def key(self) -> tuple[str | None, str, str | None]:
        return (self.msgctxt, self.msgid, self.msgid_plural)


def read_po(path: Path) -> tuple[dict[str, str], list[Entry]]:
    """(header fields, entries without the header and without obsolete `#~` ones)."""
    entries: list[Entry] = []
    current = Entry()
    target: tuple[str, int] | None = None
    seen_keyword = False

    def finish() -> None:
        nonlocal current, seen_keyword
        if seen_keyword:
            entries.append(current)
        current, seen_keyword = Entry(), False

    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line:
            finish()
            continue
        if line.startswith("#~"):
            current.obsolete = True
            continue
        if line.startswith("#,"):
            current.flags.update(flag.strip() for flag in line[2:].split(","))
            continue
        if line.startswith("#"):
            continue
        match = re.match(r"^(msgctxt|msgid_plural|msgid|msgstr)(?:\[(\d+)\])?\s+(\".*\")$", line)
        if match:
            keyword, index, text = match.group(1), match.group(2), ast.literal_eval(match.group(3))
            seen_keyword = True
            if keyword == "msgstr":
                position = int(index or 0)
                while len(current.msgstr) <= position:
                    current.msgstr.append("")
                current.msgstr[position] = text
                target = ("msgstr", position)
            else:
                setattr(current, keyword, text)
                target = (keyword, 0)
            continue
        assert line.startswith('"') and target is not None, f"{path}: cannot read {raw!r}"
        text = ast.literal_eval(line)
        if target[0] == "msgstr":
            current.msgstr[target[1]] += text
        else:
            setattr(current, target[0], getattr(current, target[0]) + text)
    finish()
    header = next((e for e in entries if e.msgid == "" and e.msgctxt is None), None)
    assert header is not None, f"{path} has no header"
    fields = dict(line.split(": ", 1) for line in header.msgstr[0].splitlines() if ": " in line)
    fields["#fuzzy"] = "fuzzy" in header.flags
    return fields, [e for e in entries if e is not header and not e.obsolete]


PLACEHOLDER = re.compile(r"%\(\w+\)[sdr]|\{\w*\}|</?\w+>")


def placeholders(text: str) -> list[str]:
    return sorted(PLACEHOLDER.findall(text))


# -- a. the catalog is complete ----------------------------------------------------------------------


def test_the_french_catalog_is_complete():
    header, entries = read_po(PO)
    assert header["Language"] == "fr"
    assert header["Plural-Forms"] == "nplurals=2; plural=(n > 1);"
    assert header["Content-Type"] == "text/plain; charset=UTF-8"
    assert not header["#fuzzy"], "the header is marked fuzzy"
    assert len(entries) > 200
    problems = []
    for entry in entries:
        name = f"{entry.msgctxt + ' | ' if entry.msgctxt else ''}{entry.msgid!r}"
        if "fuzzy" in entry.flags:
            problems.append(f"{name}: fuzzy")
        expected = 2 if entry.msgid_plural is not None else 1
        if len(entry.msgstr) != expected or not all(s.strip() for s in entry.msgstr):
            problems.append(f"{name}: not translated ({entry.msgstr!r})")
            continue
        for index, translated in enumerate(entry.msgstr):
            source = entry.msgid if index == 0 or entry.msgid_plural is None else entry.msgid_plural
            if placeholders(translated) != placeholders(source):
                problems.append(f"{name}: placeholders {placeholders(translated)} != {placeholders(source)}")
            if re.search(r"\S[:;](?:\s|$)", translated) and "://" not in translated:
                problems.append(f"{name}: French wants a no-break space before ':' and ';' ({translated!r})")
    assert not problems, "\n".join(problems)


def test_keys_are_unique_in_the_catalog():
    _, entries = read_po(PO)
    keys = [(e.msgctxt, e.msgid) for e in entries]
    assert len(keys) == len(set(keys))


# -- b. the shipped .mo is the compiled .po -----------------------------------------------------------


def test_the_shipped_mo_is_compiled_from_the_po():
    assert MO.is_file(), f"{MO} is missing: run `django-admin compilemessages` in django_invoicepay/"
    _, entries = read_po(PO)
    with MO.open("rb") as handle:
        mo = gettext.GNUTranslations(handle)
    assert mo.info().get("language") == "fr"
    expected_keys = {""}
    stale = []
    for entry in entries:
        ctx = f"{entry.msgctxt}\x04" if entry.msgctxt is not None else ""
        if entry.msgid_plural is None:
            expected_keys.add(ctx + entry.msgid)
            got = mo.pgettext(entry.msgctxt, entry.msgid) if entry.msgctxt else mo.gettext(entry.msgid)
            if got != entry.msgstr[0]:
                stale.append(f"{entry.msgid!r}: .mo has {got!r}, .po has {entry.msgstr[0]!r}")
            continue
        expected_keys.update({(ctx + entry.msgid, 0), (ctx + entry.msgid, 1)})
        for n, index in ((1, 0), (2, 1), (0, 0)):  # French: 0 and 1 are singular
            if entry.msgctxt:
                got = mo.npgettext(entry.msgctxt, entry.msgid, entry.msgid_plural, n)
            else:
                got = mo.ngettext(entry.msgid, entry.msgid_plural, n)
            if got != entry.msgstr[index]:
                stale.append(f"{entry.msgid!r} (n={n}): .mo has {got!r}, .po has {entry.msgstr[index]!r}")
    assert not stale, "the .mo is out of date: run `django-admin compilemessages`\n" + "\n".join(stale)
    extra = set(mo._catalog) - expected_keys  # noqa: SLF001 - the only way to list a .mo's messages
    assert not extra, f"the .mo has messages the .po no longer has: {sorted(map(str, extra))[:10]}"


# -- c. the catalog covers every translatable string of the package -------------------------------------


def _gettext_tools() -> list[str]:
    return [tool for tool in ("xgettext", "msguniq", "msgmerge", "msgattrib") if shutil.which(tool) is None]


def test_the_catalog_covers_every_translatable_string(tmp_path):
    missing_tools = _gettext_tools()
    if missing_tools:
        if os.environ.get("INVOICEPAY_REQUIRE_GETTEXT") == "1":
            pytest.fail(f"GNU gettext is required (INVOICEPAY_REQUIRE_GETTEXT=1) but {missing_tools} are missing")
        pytest.skip(f"GNU gettext's {', '.join(missing_tools)} not installed (apt install gettext): "
                    "cannot extract the package's strings")
    copy = tmp_path / "django_invoicepay"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("locale", "__pycache__", "*.pyc"))
    (copy / "locale").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-m", "django", "makemessages", "-l", "fr", "--add-location=file"],
        cwd=copy, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr
    _, extracted = read_po(copy / "locale" / "fr" / "LC_MESSAGES" / "django.po")
    _, shipped = read_po(PO)
    in_source = {e.key for e in extracted}
    in_catalog = {e.key for e in shipped}
    how = "run `django-admin makemessages -l fr --add-location=file` in django_invoicepay/ and translate"
    assert not in_source - in_catalog, f"strings missing from the French catalog ({how}): {in_source - in_catalog}"
    assert not in_catalog - in_source, f"strings the source no longer has ({how}): {in_catalog - in_source}"


def test_the_widget_script_has_no_text_of_its_own():
    """invoicepay.js shows only texts the server translated (its <template> snippets and the API's messages)."""
    source = (PACKAGE / "static" / "invoicepay" / "invoicepay.js").read_text(encoding="utf-8")
    code = re.sub(r"/\*.*?\*/", "", source, flags=re.S)
    code = re.sub(r"(^|\s)//.*$", r"\1", code, flags=re.M)
    literals = re.findall(r'"((?:[^"\\\n]|\\.)*)"|\'((?:[^\'\\\n]|\\.)*)\'', code)
    sentences = [a or b for a, b in literals if re.search(r"[A-Za-z]+ [A-Za-z]+ [A-Za-z]+", a or b)]
    assert sentences == []


# -- d. rendered in French ---------------------------------------------------------------------------------


def render(source: str, **context) -> str:
    return Template("{% load invoicepay %}" + source).render(Context(context))


def text(html: str) -> str:
    return re.sub(r"[ \t\r\n]+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def french(source: str, invoice) -> str:
    with translation.override("fr"):
        return text(render(source, invoice=Invoice.objects.get(pk=invoice.pk)))


def assert_french(shown: str, expected: list[str], english: list[str]) -> None:
    for phrase in expected:
        assert phrase in shown, f"{phrase!r} not in {shown!r}"
    for phrase in english:
        assert phrase not in shown, f"English {phrase!r} in {shown!r}"


HINTS_EN = ["Reload this page", "This page updates by itself"]
HINTS_FR = ["Rechargez cette page pour voir le dernier statut."]


@pytest.mark.django_db
def test_the_scan_to_pay_qr_code_in_french(invoice):
    sandbox.choose_processor(invoice.remote_id, "native")
    invoice.sync()
    with translation.override("fr"):
        html = render("{% invoicepay_qr invoice show_link=True %}", invoice=invoice)
    assert 'aria-label="Scannez pour payer 12.50 USD à Test Shop"' in html
    assert_french(text(html), ["Scannez pour payer 12.50 USD à Test Shop", "Ouvrir dans l’application de votre "
                               "portefeuille", *HINTS_FR], ["Scan to pay", "Open in your wallet app", *HINTS_EN])
    assert "Scan to pay 12.50 USD to Test Shop" in text(render("{% invoicepay_qr invoice %}", invoice=invoice))


@pytest.mark.django_db
def test_the_qr_explanations_in_french(invoice):
    assert_french(french("{% invoicepay_qr invoice %}", invoice),
                  ["Choisissez de payer depuis votre portefeuille pour afficher un code QR à scanner.", *HINTS_FR],
                  ["Choose to pay", *HINTS_EN])
    sandbox.pay(invoice.remote_id)
    invoice.sync()
    assert_french(french("{% invoicepay_qr invoice %}", invoice),
                  [f"Cette facture est payée{NBSP}: il n’y a rien à scanner."], ["This invoice is", "paid"])


@pytest.mark.django_db
def test_a_bank_deposit_waiting_for_payment_in_french(invoice):
    sandbox.choose_processor(invoice.remote_id, "bank_transfer")
    invoice.sync()
    assert_french(french("{% invoicepay_deposit invoice %}", invoice),
                  ["Montant à payer 12.50 USD", "Référence du paiement", "Nous attendons votre paiement.", *HINTS_FR,
                   "Recharger"],
                  ["Amount to pay", "Payment reference", "We are waiting", *HINTS_EN])


@pytest.mark.django_db
def test_underpaid_in_french(invoice):
    sandbox.choose_processor(invoice.remote_id, "bank_transfer")
    sandbox.underpay(invoice.remote_id, 300)
    invoice.sync()
    assert invoice.status == "underpaid"
    assert_french(french("{% invoicepay_deposit invoice %}", invoice),
                  [f"Une partie du paiement est arrivée. Il reste 3.00 USD à payer{NBSP}: veuillez régler ce montant "
                   "avec les informations ci-dessous.", "Montant à payer 3.00 USD"],
                  ["Part of the payment", "still owed", "Amount to pay"])


@pytest.mark.django_db
def test_crypto_confirmations_follow_french_plural_rules(invoice):
    sandbox.crypto_deposit(invoice.remote_id, confirmations=0)
    invoice.sync()
    (tx,) = invoice.pending_transactions
    shown = french("{% invoicepay_deposit invoice %}", invoice)
    # French counts 0 in the singular: "0 confirmation" (English: "0 confirmations").
    assert_french(shown, [f"Votre paiement a été détecté ( {tx.tx_hash} ) avec 0 confirmation et attend d’être "
                          "confirmé.", "Envoyez à cette adresse"], ["Your payment", "confirmations", "Send to"])
    sandbox.confirm(invoice.remote_id)
    invoice.sync()
    assert "avec 1 confirmation et attend" in french("{% invoicepay_deposit invoice %}", invoice)
    sandbox.crypto_deposit(invoice.remote_id, amount=1, confirmations=0)
    sandbox.confirm(invoice.remote_id)
    invoice.sync()
    shown = french("{% invoicepay_deposit invoice %}", invoice)
    assert "avec 2 confirmations et attend" in shown and "avec 1 confirmation et attend" in shown


@pytest.mark.django_db
def test_paid_in_french(invoice):
    sandbox.pay(invoice.remote_id)
    invoice.sync()
    assert_french(french("{% invoicepay_deposit invoice %}", invoice), ["Facture payée intégralement. Merci."],
                  ["Paid in full", "Thank you", *HINTS_EN])


@pytest.mark.django_db
def test_overpaid_and_its_refund_in_french(invoice):
    sandbox.overpay(invoice.remote_id, 275)
    invoice.sync()
    assert_french(french("{% invoicepay_deposit invoice %}", invoice),
                  ["Facture payée intégralement, avec un trop-perçu de 2.75 USD.",
                   "La boutique vous contactera au sujet de la différence."],
                  ["Paid in full", "more than needed", "The shop will be in touch"])
    invoice.refund_overpayment()
    assert_french(french("{% invoicepay_deposit invoice %}", invoice), ["2.75 USD vous a été remboursé."],
                  ["has been refunded"])


@pytest.mark.django_db
def test_expired_and_renewed_in_french(invoice):
    sandbox.expire(invoice.remote_id)
    invoice.sync()
    shown = french("{% invoicepay_deposit invoice %}", invoice)
    assert_french(shown, ["Cette facture a expiré et ne peut plus être payée. Une nouvelle facture avec les mêmes "
                          "informations peut être créée.", "Créer une nouvelle facture"],
                  ["This invoice has expired", "Create a new invoice"])
    invoice.renew()
    shown = french("{% invoicepay_qr invoice %}", invoice)
    assert_french(shown, [f"Cette facture est expirée{NBSP}: il n’y a rien à scanner."], ["This invoice is"])


@pytest.mark.django_db
def test_cancelled_in_french(invoice):
    invoice.cancel()
    assert_french(french("{% invoicepay_deposit invoice %}", invoice), ["Cette facture est annulée."],
                  ["This invoice is", "cancelled"])


@pytest.mark.django_db
def test_no_way_to_pay_chosen_yet_in_french(invoice):
    assert_french(french("{% invoicepay_deposit invoice %}", invoice),
                  ["Choisissez votre moyen de paiement pour afficher les informations de paiement."], ["Choose how"])


def test_the_script_snippets_in_french():
    with translation.override("fr"):
        html = render("{% invoicepay_scripts %}")
    for snippet in ("Facture payée intégralement. Merci.", "Impossible de joindre la boutique.",
                    "Une erreur s’est produite. Veuillez réessayer.", "Nous attendons votre paiement.",
                    "Cette facture est {status}.", "Une nouvelle facture a été créée.",
                    "Facture payée intégralement, avec un trop-perçu de {extra}."):
        assert snippet in html, snippet
    assert '<template data-invoicepay-template="status" data-status="paid">payée</template>' in html
    assert '<template data-invoicepay-template="status" data-status="cancelled">annulée</template>' in html
    assert "avec 0 confirmation et" in html and "avec 2 confirmations et" in html
    for english in ("Paid in full", "We could not reach", "Something went wrong", "This invoice is"):
        assert english not in html
    english = render("{% invoicepay_scripts %}")
    assert '<template data-invoicepay-template="status" data-status="paid">paid</template>' in english
    assert "Something went wrong. Please try again." in english


def test_status_words_and_model_names_in_french():
    from django_invoicepay.statuses import label

    with translation.override("fr"):
        assert [label(s) for s in ("paid", "overpaid", "underpaid", "expired", "whatever")] == [
            "payée", "payée en trop", "partiellement payée", "expirée", "whatever"]
        assert render("{{ s|invoicepay_status }}", s="failed") == "en échec"
        assert (str(Invoice._meta.verbose_name), str(Invoice._meta.verbose_name_plural)) == ("facture", "factures")
    assert label("paid") == "paid"


# -- the payer API answers in the payer's language (LocaleMiddleware) -----------------------------------------


def test_the_example_project_picks_the_payers_language():
    assert "django.middleware.locale.LocaleMiddleware" in settings.MIDDLEWARE
    assert "fr" in dict(settings.LANGUAGES)


@pytest.mark.django_db
def test_payer_api_errors_in_french_with_accept_language(invoice):
    api = APIClient()
    url = f"/invoicepay/api/invoices/{invoice.public_token}/"
    assert api.get("/invoicepay/api/invoices/no-such-token/", HTTP_ACCEPT_LANGUAGE="fr").json() == {
        "detail": "Facture introuvable."}
    assert api.get("/invoicepay/api/invoices/no-such-token/").json() == {"detail": "No such invoice."}
    wrong = api.post(f"{url}otp/", {"otp": "12"}, format="json", HTTP_ACCEPT_LANGUAGE="fr-FR,fr;q=0.9")
    assert (wrong.status_code, wrong.json()) == (400, {"otp": [f"Saisissez le code reçu par SMS{NBSP}: de 4 à 8 "
                                                               "chiffres."]})
    sandbox.pay(invoice.remote_id)
    invoice.sync()
    closed = api.post(f"{url}payer/", {"payer_email": "ann@example.com", "payer_mobile_number": "+27821234567"},
                      format="json", HTTP_ACCEPT_LANGUAGE="fr")
    assert (closed.status_code, closed.json()["detail"]) == (409, f"Cette facture est payée{NBSP}: elle ne peut "
                                                                  "plus être payée.")
    english = api.post(f"{url}payer/", {"payer_email": "ann@example.com", "payer_mobile_number": "+27821234567"},
                       format="json")
    assert english.json()["detail"] == "This invoice is paid: it cannot be paid any more."
