"""Every text the bot can show has a Russian and an English translation, and the compiled catalogs are
current.

Strings are extracted from the source the way scripts/i18n.sh does, so a new `_("...")` without a translation
fails here (run scripts/i18n.sh, translate locales/ru/LC_MESSAGES/messages.po, run it again).
"""

from __future__ import annotations

import gettext
import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
LOCALES = ROOT / "locales"
SOURCE_DIRS = (
    "bot",
    "handlers",
    "keyboards",
    "backbone",
    "circles",
    "scheduler",
    "bikewerk",
    "domain",
    "storage",
    "demo",
    "web",
)
KEYWORDS = {"_": None, "__": None, "gettext": None, "ngettext": (1, 2)}
PLACEHOLDER = re.compile(r"{[a-z_]*}")


def _catalog(lang: str) -> Catalog:
    with (LOCALES / lang / "LC_MESSAGES" / "messages.po").open("rb") as f:
        return read_po(f, locale=lang)


def _source_msgids() -> set[str]:
    found: set[str] = set()
    for folder in SOURCE_DIRS:
        if not (ROOT / folder).is_dir():
            continue
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT / folder, method_map=[("**.py", "python")], keywords=KEYWORDS
        ):
            found.add(message[0] if isinstance(message, tuple) else message)
    return found


def _forms(message: Message) -> list[str]:
    forms = message.string if isinstance(message.string, tuple | list) else [message.string]
    return [form or "" for form in forms]


def _singular(message: Message) -> str:
    return str(message.id[0] if isinstance(message.id, tuple | list) else message.id)


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_every_message_in_the_catalog_is_translated(lang: str) -> None:
    missing = [
        _singular(m)
        for m in _catalog(lang)
        if m.id and (m.fuzzy or not all(form.strip() for form in _forms(m)))
    ]
    assert not missing, f"{len(missing)} messages lack a {lang} translation, e.g. {missing[:5]}"


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_every_text_in_the_code_is_in_the_catalog(lang: str) -> None:
    known = {_singular(m) for m in _catalog(lang) if m.id}
    absent = sorted(_source_msgids() - known)
    assert not absent, (
        f"{len(absent)} texts are not in the {lang} catalog (run scripts/i18n.sh): {absent[:5]}"
    )


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_translations_keep_the_placeholders(lang: str) -> None:
    """A translation that drops or renames {placeholder} would crash .format() at run time."""
    broken = [
        _singular(m)
        for m in _catalog(lang)
        if m.id
        for form in _forms(m)
        if form and set(PLACEHOLDER.findall(form)) != set(PLACEHOLDER.findall(_singular(m)))
    ]
    assert not broken, f"placeholders differ in {lang}: {broken[:5]}"


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_compiled_catalog_matches_the_po_file(lang: str) -> None:
    """The bot reads the .mo: it must hold what the .po says (scripts/i18n.sh compile)."""
    with (LOCALES / lang / "LC_MESSAGES" / "messages.mo").open("rb") as f:
        compiled = gettext.GNUTranslations(f)
    stale = [
        _singular(m)
        for m in _catalog(lang)
        if m.id
        and not isinstance(m.id, tuple | list)
        and m.string
        and compiled.gettext(str(m.id)) != m.string
    ]
    assert not stale, f"the {lang} .mo is older than the .po: {stale[:5]}"
