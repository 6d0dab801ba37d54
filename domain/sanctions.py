"""Sanctions screening as pure rules (SPEC §12 governance): reading a list in OpenSanctions'
`targets.simple.csv` format, turning any spelling of a name into a Latin skeleton, and matching names
against the list through a blocking index.

Names are compared as skeletons: Cyrillic transliterated to Latin, accents dropped, the usual German,
Polish, French and English spellings of the same sounds folded together (w→v, sch/sh, tsch/ch, kh→h,
j/y→i, ck→k, ou→u, doubled letters once), legal forms of companies (OOO, GmbH, LLC, ...) left out. So
"Vladimir Ivanov", "Wladimir Iwanow" and "Владимир Иванов" are the same skeleton `ivanov vladimir`.

Scoring (`score`) pairs every word of the shorter name with a word of the longer one (rapidfuzz's ratio per
pair) and takes the weakest pair; a one-word name never matches a list name of two or more ("Ivanov" alone
is not "Vladimir Ivanov"). The index keys every list name by its tokens (and their consonants), so a query
is compared only with list names sharing a rare key, or two common ones, with it, not with the whole list
(10,000 orders × 50,000 entries would be 5 × 10⁸ comparisons).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process

# The columns a list must have; the others of targets.simple.csv are kept when present.
REQUIRED_COLUMNS = ("id", "schema", "name", "aliases")
KNOWN_COLUMNS = (
    "id",
    "schema",
    "name",
    "aliases",
    "birth_date",
    "countries",
    "addresses",
    "identifiers",
    "sanctions",
    "phones",
    "emails",
    "program_ids",
    "dataset",
    "first_seen",
    "last_seen",
    "last_change",
)
MAX_NAME_CHARS = 500

_CYRILLIC = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z", "и": "i",
    "й": "i", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t",
    "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "shch", "ъ": "", "ы": "y", "ь": "",
    "э": "e", "ю": "yu", "я": "ya", "і": "i", "ї": "i", "є": "e", "ґ": "g", "ў": "u",
}  # fmt: skip
_TRANSLIT = str.maketrans({**_CYRILLIC, "ß": "ss", "ł": "l", "ø": "o", "æ": "ae", "œ": "oe", "đ": "d"})
# Spellings of one sound, folded in this order (longer patterns first).
_FOLDS: tuple[tuple[str, str], ...] = (
    ("shch", "sh"),
    ("tsch", "ch"),
    ("sch", "sh"),
    ("sz", "sh"),
    ("cz", "ch"),
    ("tch", "ch"),
    ("kh", "h"),
    ("ck", "k"),
    ("ph", "f"),
    ("w", "v"),
    ("q", "k"),
    ("x", "ks"),
    ("tz", "ts"),
    ("j", "i"),
    ("y", "i"),
    ("ou", "u"),
)
_DOUBLE = re.compile(r"(.)\1+")
_WORD = re.compile(r"[a-z0-9]+")
# Legal forms and filler words that say nothing about who it is.
STOP_WORDS = frozenset(
    {
        "ooo", "oao", "zao", "pao", "ao", "ip", "llc", "ltd", "limited", "inc", "corp", "co", "company",
        "gmbh", "ag", "kg", "ug", "mbh", "sa", "sarl", "srl", "spa", "bv", "nv", "plc", "jsc", "pjsc", "ojsc",
        "cjsc", "ou", "as", "oy", "ab", "the", "and", "of", "und", "private", "privat",
    }
)  # fmt: skip


def _fold(token: str) -> str:
    for old, new in _FOLDS:
        if old in token:
            token = token.replace(old, new)
    token = _DOUBLE.sub(r"\1", token)
    if token.endswith("of") and len(token) > 4:  # Romanoff, Ivanof: -ov spelled the French way
        token = token[:-1] + "v"
    return token


def name_tokens(name: str) -> list[str]:
    """The skeleton tokens of a name, in order: legal forms and initials (one letter) left out."""
    text = unicodedata.normalize("NFKD", name.casefold().translate(_TRANSLIT))
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).translate(_TRANSLIT)
    tokens = (_fold(w) for w in _WORD.findall(text) if not w.isdigit() and w not in STOP_WORDS)
    return [t for t in tokens if len(t) > 1]


def skeleton(name: str) -> str:
    """A name as its sorted skeleton tokens: the form every comparison uses."""
    return " ".join(sorted(set(name_tokens(name))))


def score(a: str, b: str) -> float:
    """Similarity (0..100) of two skeletons (see `skeleton`): every word of the shorter name is paired with
    its best unused word of the longer one; the score is the weakest pair's. So a patronymic the other side
    lacks costs nothing ("Vladimir Ivanov" = "Vladimir Petrovich Ivanov"), but one word that differs sinks it
    ("Tatiana Shadro" is not "Tatiana Shadrosky"). A one-word name never matches a name of two or more."""
    short, long = sorted((a.split(), b.split()), key=len)
    if not short or (len(short) == 1) != (len(long) == 1):
        return 0.0
    free = list(long)
    weakest = 100.0
    for token in sorted(short, key=len, reverse=True):
        best, at = 0.0, -1
        for k, other in enumerate(free):
            value = 100.0 if token == other else fuzz.ratio(token, other)
            if value > best:
                best, at = value, k
        weakest = min(weakest, best)
        if at < 0 or weakest == 0:
            return 0.0
        free.pop(at)
    return weakest


# --- the list -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One list entry (a person, a company, ...)."""

    id: str
    schema: str
    name: str
    aliases: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    birth_date: str = ""
    sanctions: str = ""
    dataset: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass(frozen=True)
class ParsedList:
    entries: list[Entry]
    version: str  # the file's content hash (first 16 hex digits): the same file is the same version
    datasets: tuple[str, ...]
    published: str | None  # the newest `last_change` (else `last_seen`) of its entries, as written


class ListError(ValueError):
    """A list file that cannot be used: `line` (1 = the header) and the reason."""

    def __init__(self, line: int, reason: str) -> None:
        self.line = line
        self.reason = reason
        super().__init__(f"line {line}: {reason}")


def _multi(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(";") if part.strip())


def parse_list(data: bytes) -> ParsedList:
    """Read a `targets.simple.csv` file; ListError names the first line that breaks the format."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ListError(line, "not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise ListError(1, "the file is empty")
        columns = [c.strip().casefold() for c in header]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise ListError(1, f"missing column(s) {', '.join(missing)}; expected targets.simple.csv")
        at = {c: columns.index(c) for c in KNOWN_COLUMNS if c in columns}
        entries: list[Entry] = []
        seen: set[str] = set()
        published = ""
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(columns):
                raise ListError(line, f"{len(row)} fields, the header has {len(columns)}")

            def cell(name: str, row: Sequence[str] = row) -> str:
                return row[at[name]].strip() if name in at else ""

            entry_id, name = cell("id"), cell("name")
            if not entry_id:
                raise ListError(line, "empty id")
            if entry_id in seen:
                raise ListError(line, f"id {entry_id!r} appears twice")
            if not name:
                raise ListError(line, f"entry {entry_id} has no name")
            if len(name) > MAX_NAME_CHARS:
                raise ListError(line, f"entry {entry_id}: name longer than {MAX_NAME_CHARS} characters")
            seen.add(entry_id)
            published = max(published, cell("last_change") or cell("last_seen"))
            entries.append(
                Entry(
                    id=entry_id,
                    schema=cell("schema") or "LegalEntity",
                    name=name,
                    aliases=_multi(cell("aliases")),
                    countries=_multi(cell("countries")),
                    birth_date=cell("birth_date"),
                    sanctions=cell("sanctions")[:500],
                    dataset=cell("dataset"),
                )
            )
    except csv.Error as exc:
        raise ListError(reader.line_num or 1, f"not valid CSV: {exc}") from None
    if not entries:
        raise ListError(2, "the list has no entries")
    datasets = tuple(sorted({d for e in entries for d in _multi(e.dataset)}))
    return ParsedList(entries, hashlib.sha256(data).hexdigest()[:16], datasets, published or None)


# --- matching -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    entry_id: str
    entry_name: str  # the list's primary name of the entry
    matched_name: str  # the name or alias that matched
    score: float


_COMMON = 128  # a key on more list names than this is too common to retrieve candidates on its own
_VOWELS = str.maketrans("", "", "aeiou")


def _keys(token: str) -> tuple[str, ...]:
    """The blocking keys of a token: itself, and for longer ones its consonants (a vowel typo still meets)."""
    if len(token) < 4:
        return (token,)
    consonants = token.translate(_VOWELS)
    return (token, "#" + consonants) if len(consonants) > 2 else (token,)


@dataclass
class NameIndex:
    """Every name and alias of a list as skeletons, keyed by their tokens (the blocking index)."""

    skeletons: list[str] = field(default_factory=list)
    owners: list[int] = field(default_factory=list)  # skeleton position -> entry position
    names: list[str] = field(default_factory=list)  # skeleton position -> the name as listed
    entries: list[tuple[str, str]] = field(default_factory=list)  # entry position -> (id, primary name)
    by_key: dict[str, list[int]] = field(default_factory=dict)
    _sets: dict[str, frozenset[int]] = field(default_factory=dict)  # common keys' postings, as sets

    @classmethod
    def build(cls, entries: Iterable[tuple[str, str, Sequence[str]]]) -> NameIndex:
        """From (entry id, primary name, all names incl. aliases)."""
        index = cls()
        for entry_id, primary, names in entries:
            position = len(index.entries)
            index.entries.append((entry_id, primary))
            seen: set[str] = set()
            for name in names:
                sk = skeleton(name)
                if not sk or sk in seen:
                    continue
                seen.add(sk)
                slot = len(index.skeletons)
                index.skeletons.append(sk)
                index.owners.append(position)
                index.names.append(name)
                for token in sk.split(" "):
                    for key in _keys(token):
                        index.by_key.setdefault(key, []).append(slot)
        return index

    def __len__(self) -> int:
        return len(self.entries)

    def _postings(self, key: str) -> frozenset[int]:
        found = self._sets.get(key)
        if found is None:
            found = self._sets[key] = frozenset(self.by_key[key])
        return found

    def candidates(self, query: str) -> set[int]:
        """List names sharing a rare key with the query, or two common ones (a first name alone is not
        enough to be compared: "Vladimir" is on thousands of list names)."""
        found: set[int] = set()
        common: list[tuple[int, str]] = []  # (which query token, key)
        for position, token in enumerate(query.split(" ")):
            for key in _keys(token):
                postings = self.by_key.get(key)
                if postings is None:
                    continue
                if len(postings) <= _COMMON:
                    found.update(postings)
                else:
                    common.append((position, key))
        for i, (word, first) in enumerate(common):
            for other, second in common[i + 1 :]:
                if other != word:  # two words of the name, not one word and its consonants
                    found.update(self._postings(first) & self._postings(second))
        return found

    def best(self, name: str, threshold: float) -> Match | None:
        """The best list match of `name` at or above `threshold`, or None."""
        query = skeleton(name)
        if not query:
            return None
        slots = self.candidates(query)
        if not slots:
            return None
        # rapidfuzz's token-set ratio in C narrows the candidates; `score` decides on the few left.
        rough = process.extract(
            query,
            {slot: self.skeletons[slot] for slot in slots},
            scorer=fuzz.token_set_ratio,
            processor=None,
            score_cutoff=max(0.0, threshold - 15),
            limit=None,
        )
        best: tuple[float, int] | None = None
        for listed, _, slot in rough:
            value = score(query, listed)
            if value >= threshold and (best is None or value > best[0]):
                best = (value, slot)
        if best is None:
            return None
        value, slot = best
        entry_id, primary = self.entries[self.owners[slot]]
        return Match(entry_id, primary, self.names[slot], round(value, 1))
