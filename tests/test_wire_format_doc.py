"""The package's comments point at docs/reference/wire-format.md, and every anchor they cite exists there.

Users have that page; they do not have the documents it was distilled from. So a comment names a
provider fact by its anchor ("# Inferred: docs/reference/wire-format.md#refund-body"), never by an
unshipped document ("seed 000") or a bare confidence marker ("[I]", "[C]").
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "reference" / "wire-format.md"
SOURCES = [ROOT / "django_invoicepay", ROOT / "example_project"]
SUFFIXES = {".py", ".html", ".js", ".txt", ".css"}
CITATION = re.compile(r"docs/reference/wire-format\.md#([A-Za-z0-9_-]+)")
FORBIDDEN = [
    (re.compile(r"\bseeds?\b", re.IGNORECASE), "a seed document"),
    (re.compile(r"\[(?:I|C)(?:\]|[ ,:])"), "a bare [I]/[C] marker"),
    (re.compile(r"\[(?:inferred|confirmed)\b", re.IGNORECASE), "a bracketed [inferred]/[confirmed] marker"),
    (re.compile(r"\bshape [A-Z]\b"), "a lettered shape of an unshipped document"),
]
COMMENTS = {  # comment syntax of the non-Python files
    ".html": re.compile(r"\{#.*?#\}|\{%\s*comment\s*%\}.*?\{%\s*endcomment\s*%\}|<!--.*?-->", re.DOTALL),
    ".js": re.compile(r"/\*.*?\*/|//[^\n]*", re.DOTALL),
    ".css": re.compile(r"/\*.*?\*/", re.DOTALL),
}


def slugify(text: str) -> str:
    """Python-Markdown's toc slug: ASCII, punctuation dropped, lower case, spaces and hyphens to one '-'."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def headings() -> list[tuple[str, str]]:
    """(slug, section text) for every heading of the page, fenced code skipped."""
    return [(slug, body) for slug, _, body in sections()]


def facts() -> list[tuple[str, str]]:
    """(slug, section text) of the facts: the third-level headings."""
    return [(slug, body) for slug, level, body in sections() if level == 3]


def sections() -> list[tuple[str, int, str]]:
    found: list[tuple[str, int, list[str]]] = []
    fenced = False
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        match = None if fenced else re.match(r"(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if match:
            found.append((slugify(match.group(2)), len(match.group(1)), []))
        elif found:
            found[-1][2].append(line)
    return [(slug, level, "\n".join(body)) for slug, level, body in found]


def package_files() -> list[Path]:
    return sorted(
        path for root in SOURCES for path in root.rglob("*")
        if path.suffix in SUFFIXES and path.is_file() and "migrations" not in path.parts
    )


def python_comments(source: str) -> list[str]:
    """Comments and docstrings: what a reader takes for prose about the code."""
    texts = [tok.string for tok in tokenize.generate_tokens(io.StringIO(source).readline)
             if tok.type == tokenize.COMMENT]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            docstring = ast.get_docstring(node, clean=False)
            if docstring:
                texts.append(docstring)
    return texts


def comments(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        return python_comments(text)
    pattern = COMMENTS.get(path.suffix)
    return pattern.findall(text) if pattern else [text]


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_headings_have_unique_anchors():
    slugs = [slug for slug, _ in headings()]
    repeated = sorted({slug for slug in slugs if slugs.count(slug) > 1})
    assert not repeated, f"Headings sharing an anchor (the second would get a '_1' suffix): {repeated}"


def test_every_fact_says_whether_it_is_confirmed_or_inferred():
    assert len(facts()) > 40
    unmarked = [slug for slug, body in facts() if "**Confirmed" not in body and "**Inferred" not in body]
    assert not unmarked, f"Sections without **Confirmed** or **Inferred**: {unmarked}"


def test_every_cited_anchor_exists():
    anchors = {slug for slug, _ in headings()}
    cited = {
        (relative(path), anchor)
        for path in package_files()
        for anchor in CITATION.findall(path.read_text(encoding="utf-8"))
    }
    assert len(cited) > 10, "the package cites the wire format page"
    missing = sorted(f"{where}: #{anchor}" for where, anchor in cited if anchor not in anchors)
    assert not missing, "Cited anchors missing from docs/reference/wire-format.md:\n" + "\n".join(missing)


def test_every_inference_the_page_names_is_cited_by_the_code():
    inferred = {slug for slug, body in facts() if "**Inferred" in body}
    cited = {anchor for path in package_files() for anchor in CITATION.findall(path.read_text(encoding="utf-8"))}
    assert not inferred - cited, f"Inferences the code does not point at: {sorted(inferred - cited)}"


@pytest.mark.parametrize("pattern, what", FORBIDDEN, ids=[what for _, what in FORBIDDEN])
def test_no_comment_cites_unshipped_documents(pattern, what):
    offending = [
        f"{relative(path)}: {match.group()!r} in {text.strip()[:80]!r}"
        for path in package_files()
        for text in comments(path)
        for match in pattern.finditer(text)
    ]
    assert not offending, f"Comments citing {what}; point at docs/reference/wire-format.md instead:\n" + "\n".join(
        offending
    )


@pytest.mark.parametrize(
    "heading, slug",
    [
        ("Refund body", "refund-body"),
        ("OnePipe request and transaction refs", "onepipe-request-and-transaction-refs"),
        ("The `secure` field: 3DES (CBC)", "the-secure-field-3des-cbc"),
        ("  Spaces -- and   hyphens ", "spaces-and-hyphens"),
    ],
)
def test_slugify_follows_python_markdown(heading, slug):
    assert slugify(heading) == slug
