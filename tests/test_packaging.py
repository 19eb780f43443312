"""What a shop gets from `pip install django-invoicepay`: a complete wheel, honest metadata, a README
that works on a package index page (absolute links only, none of them rotten).

The wheel is built once per module from a copy of the package sources (so nothing is written into
the repository and no stale `build/` directory can leak into it), without build isolation when the
running environment has setuptools >= 77 (offline and fast), with it otherwise (pip then fetches
setuptools from the package index).
"""

from __future__ import annotations

import configparser
import gettext
import importlib.metadata
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from email.parser import HeaderParser
from pathlib import Path, PurePosixPath

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "django_invoicepay"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
URLS = PYPROJECT["project"]["urls"]
DOCS_URL = URLS["Documentation"]  # the one place the docs site's address is written
REPO_URL = URLS["Source"]
SUPPORTED_DJANGO = ("5.2", "6.0", "6.1")
SUPPORTED_PYTHON = ("3.11", "3.12", "3.13")
SETUPTOOLS_FOR_PEP_639 = Version("77")
# What the wheel is built from; anything else at the root (tests, docs, example project) stays out.
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "setup.py", "setup.cfg", PACKAGE)


def _setuptools_can_build() -> bool:
    try:
        return Version(importlib.metadata.version("setuptools")) >= SETUPTOOLS_FOR_PEP_639
    except importlib.metadata.PackageNotFoundError:
        return False


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif path.exists():
            shutil.copy2(path, source / name)
    out = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-w", str(out)]
    if _setuptools_can_build():
        command.append("--no-build-isolation")
    result = subprocess.run([*command, str(source)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"building the wheel failed:\n{result.stdout}\n{result.stderr}"
    (built,) = out.glob("django_invoicepay-*.whl")
    with zipfile.ZipFile(built) as archive:
        yield archive


@pytest.fixture(scope="module")
def names(wheel) -> set[str]:
    return set(wheel.namelist())


@pytest.fixture(scope="module")
def dist_info(names) -> str:
    (directory,) = {name.split("/")[0] for name in names if name.split("/")[0].endswith(".dist-info")}
    return directory


@pytest.fixture(scope="module")
def metadata(wheel, dist_info):
    return HeaderParser().parsestr(wheel.read(f"{dist_info}/METADATA").decode())


def source_files(*parts: str) -> list[str]:
    """Files under django_invoicepay/<parts> in the source tree, as wheel paths (caches, dotfiles and
    editor backups left out)."""
    base = ROOT / PACKAGE
    found = []
    for path in base.joinpath(*parts).rglob("*"):
        relative = path.relative_to(base)
        if (path.is_file() and "__pycache__" not in relative.parts and path.suffix != ".pyc"
                and not any(part.startswith(".") for part in relative.parts) and not path.name.endswith("~")):
            found.append(path.relative_to(ROOT).as_posix())
    return sorted(found)


def test_only_the_package_is_in_the_wheel(names, dist_info):
    assert {name.split("/")[0] for name in names} == {PACKAGE, dist_info}


def test_every_package_file_is_in_the_wheel(names):
    """Modules, migrations, subpackages (testing, sandbox, ...), templates, static files, locale, py.typed."""
    missing = [name for name in source_files() if name not in names]
    assert not missing, f"in the source tree but not in the wheel: {missing}"


@pytest.mark.parametrize("directory", ["templates", "static", "migrations"])
def test_data_directories_are_shipped(names, directory):
    expected = source_files(directory)
    assert expected, f"{PACKAGE}/{directory}/ is empty in the source tree"
    assert [name for name in expected if name not in names] == []


def test_typed_marker(names):
    assert f"{PACKAGE}/py.typed" in names
    assert (ROOT / PACKAGE / "py.typed").read_bytes() == b""


def test_compiled_catalog_for_every_translation(wheel, names):
    sources = [name for name in source_files("locale") if name.endswith(".po")]
    assert sources, f"no translations under {PACKAGE}/locale/"
    for po in sources:
        mo = po[: -len(".po")] + ".mo"
        assert po in names and mo in names, f"{po}: its source and compiled catalog must both ship"
        with wheel.open(mo) as fp:
            catalog = gettext.GNUTranslations(fp)._catalog  # noqa: SLF001 - the only way to count entries
        assert len(catalog) > 1, f"{mo} holds no translation (only the header)"


def test_testing_kit_and_its_pytest_plugin(wheel, names, dist_info):
    assert f"{PACKAGE}/testing/__init__.py" in names
    assert f"{PACKAGE}/testing/plugin.py" in names
    entry_points_file = f"{dist_info}/entry_points.txt"
    assert entry_points_file in names, "the wheel declares no entry points (pytest11 expected)"
    entry_points = configparser.ConfigParser()
    entry_points.read_string(wheel.read(entry_points_file).decode())
    assert entry_points.has_section("pytest11"), "no pytest11 entry point: the testing kit is not a pytest plugin"
    assert f"{PACKAGE}.testing.plugin" in dict(entry_points["pytest11"]).values()


def test_license_file_and_metadata(wheel, names, dist_info, metadata):
    licenses = [name for name in names if name in (f"{dist_info}/licenses/LICENSE", f"{dist_info}/LICENSE")]
    assert licenses, f"LICENSE is not in {dist_info}"
    text = wheel.read(licenses[0]).decode()
    assert text.startswith("MIT License")
    assert "Copyright (c) 2026 the django-invoicepay authors" in text
    assert text == (ROOT / "LICENSE").read_text()
    assert metadata["License-Expression"] == "MIT" or metadata["License"] == "MIT"
    assert "LICENSE" in metadata.get_all("License-File", [])


def test_django_requirement_admits_every_supported_series(metadata):
    (django,) = [Requirement(line) for line in metadata.get_all("Requires-Dist") if Requirement(line).name == "Django"]
    assert django.marker is None
    for series in SUPPORTED_DJANGO:
        assert django.specifier.contains(f"{series}.0") and django.specifier.contains(f"{series}.9"), series
    assert not django.specifier.contains("5.1.9")
    assert not django.specifier.contains("6.2.0")  # untested: admitted once its CI leg exists


def test_classifiers_match_what_is_supported(metadata):
    classifiers = metadata.get_all("Classifier")
    for series in SUPPORTED_DJANGO:
        assert f"Framework :: Django :: {series}" in classifiers
    for version in SUPPORTED_PYTHON:
        assert f"Programming Language :: Python :: {version}" in classifiers
    assert "Typing :: Typed" in classifiers
    # no classifier for a series the requirements exclude
    django = next(Requirement(line) for line in metadata.get_all("Requires-Dist") if Requirement(line).name == "Django")
    requires_python = SpecifierSet(metadata["Requires-Python"])
    for classifier in classifiers:
        if match := re.fullmatch(r"Framework :: Django :: (\d+\.\d+)", classifier):
            assert django.specifier.contains(f"{match[1]}.0"), classifier
        if match := re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", classifier):
            assert requires_python.contains(f"{match[1]}.0"), classifier


def test_project_urls(metadata):
    urls = dict(line.split(", ", 1) for line in metadata.get_all("Project-URL"))
    assert urls["Documentation"] == DOCS_URL
    assert urls["Source"] == REPO_URL


# --- README.md: rendered on the package index, where a relative link leads nowhere ---

FENCED_CODE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(?!`).+?(?<!`)\1", re.DOTALL)
LINK_TARGETS = (
    re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+[\"'(][^)]*)?\)"),  # [text](url), ![alt](url)
    re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE),  # [label]: url
    re.compile(r"<((?:https?|ftp|mailto):[^>\s]+)>"),  # <https://...>
    re.compile(r"""\b(?:href|src)\s*=\s*["']([^"']*)["']""", re.IGNORECASE),  # raw HTML
)


def readme_links() -> list[str]:
    text = CODE_SPAN.sub("", FENCED_CODE.sub("", (ROOT / "README.md").read_text()))
    return [match for pattern in LINK_TARGETS for match in pattern.findall(text)]


def github_slug(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def docs_page(url: str) -> tuple[Path, str]:
    """docs/<page>.md and the anchor for a link into the docs site (mkdocs directory URLs)."""
    path, _, anchor = url[len(DOCS_URL):].partition("#")
    path = path.split("?")[0].strip("/")
    if path.endswith(".html"):
        path = path[: -len(".html")]
    path = path.removesuffix("/index") if path != "index" else ""
    candidates = [ROOT / "docs" / f"{path}.md", ROOT / "docs" / path / "index.md"] if path else [ROOT / "docs/index.md"]
    existing = [candidate for candidate in candidates if candidate.is_file()]
    return (existing[0] if existing else candidates[0]), anchor


def test_readme_leads_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    first_block = FENCED_CODE.search(text)
    assert first_block and "make demo" in first_block[0] and "make test" in first_block[0]
    assert text.index("make demo") < text.index("## Use it in your shop")


def test_readme_links_are_absolute():
    links = readme_links()
    assert len(links) > 10, f"found only {links}: is the link pattern broken?"
    relative = [link for link in links if not re.match(r"(https?://|#)", link)]
    assert not relative, f"relative links lead nowhere on a package index page: {relative}"
    headings = {github_slug(h) for h in re.findall(r"^#+\s+(.*)$", (ROOT / "README.md").read_text(), re.MULTILINE)}
    broken = [link for link in links if link.startswith("#") and link[1:] not in headings]
    assert not broken, f"anchors with no heading in README.md: {broken}"


def test_readme_docs_links_name_existing_pages():
    links = [link for link in readme_links() if link.startswith(DOCS_URL)]
    assert links, f"README.md links nowhere into the docs site {DOCS_URL}"
    missing = [link for link in links if not docs_page(link)[0].is_file()]
    assert not missing, f"links into the docs site with no docs/*.md page: {missing}"
    mkdocs = (ROOT / "mkdocs.yml").read_text()
    assert not re.search(r"^use_directory_urls:\s*false", mkdocs, re.MULTILINE), "docs_page() assumes directory URLs"


def test_readme_docs_anchors_exist():
    markdown = pytest.importorskip("markdown")
    for link in readme_links():
        if not link.startswith(DOCS_URL):
            continue
        page, anchor = docs_page(link)
        if anchor:
            html = markdown.markdown(page.read_text(), extensions=["toc", "tables", "fenced_code", "admonition"])
            assert anchor in re.findall(r'\bid="([^"]+)"', html), f"{link}: no #{anchor} in {page.name}"


def test_readme_repository_links_name_existing_files():
    """Links to files of the repository (blob/tree on the main branch) must not rot either."""
    prefix = re.compile(re.escape(REPO_URL) + r"/(?:blob|tree)/main/([^#?]*)")
    checked = 0
    for link in readme_links():
        if not link.startswith(REPO_URL):
            continue
        assert re.match(re.escape(REPO_URL) + r"(/?$|/(blob|tree)/main/|/(issues|releases|pulls)\b)", link), (
            f"{link}: link to a file on the main branch (blob/main/... or tree/main/...)"
        )
        if match := prefix.match(link):
            path = ROOT / PurePosixPath(match[1])
            assert path.exists(), f"{link}: {match[1]} is not in the repository"
            checked += 1
    assert checked, "README.md links to no repository file (LICENSE at least is expected)"
