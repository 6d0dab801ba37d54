"""Texts: Babel gettext catalogs in locales/ (Russian by default, English second) and a locale switch.

Handlers get the caller's locale from the middleware; agents and the sender, which run outside any update,
render a text for a chat inside `with in_locale(lang):`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import lazy_gettext as __

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
LANGUAGES = ("ru", "en")
DEFAULT_LANGUAGE = "ru"

i18n = I18n(path=LOCALES_DIR, default_locale=DEFAULT_LANGUAGE, domain="messages")

__all__ = ["LANGUAGES", "_", "__", "i18n", "in_locale", "ngettext"]


def ngettext(singular: str, plural: str, n: int) -> str:
    return i18n.gettext(singular, plural, n)


@contextmanager
def in_locale(lang: str | None) -> Iterator[None]:
    """Render texts in `lang` (the default language when None or unknown)."""
    locale = lang if lang in LANGUAGES else i18n.default_locale
    with i18n.context(), i18n.use_locale(locale):
        yield
