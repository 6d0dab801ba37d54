"""Benchmark: sanctions screening of new orders against a large list (issue 15).

A made-up list of 50,000 entries in OpenSanctions' `targets.simple.csv` format (people and companies, each
with two or three aliases: a Cyrillic spelling, a German one, an initial) is parsed and indexed; then 10,000
new orders (a client and a seller each, so 20,000 names) are screened against it. About 1 % of the orders
carry a listed name in another spelling; the rest share first names and surname stems with the list (the
hard case for a blocking index).

Targets: screening the 10,000 orders in < 2 s, and the process's peak memory (RSS, Python included) < 200 MB.
Also reported: parsing and indexing the list (done once per list version, not per order).
`--small` runs 5,000 entries and 1,000 orders (a CI smoke run: prints PASS/FAIL, never fails the build).
Usage: python benchmarks/bench_sanctions.py [--small] [--entries N] [--orders M] [--repeat R]
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from domain.sanctions import KNOWN_COLUMNS, NameIndex, parse_list

TARGET_S = 2.0
TARGET_MB = 200.0

_FIRST = tuple(
    [
        "Vladimir",
        "Sergei",
        "Alexei",
        "Dmitri",
        "Nikolai",
        "Andrei",
        "Mikhail",
        "Yuri",
        "Oleg",
        "Igor",
        "Pavel",
        "Boris",
        "Viktor",
        "Gennadi",
        "Arkadi",
        "Konstantin",
        "Yevgeni",
        "Anatoli",
        "Roman",
        "Ilya",
        "Olga",
        "Irina",
        "Natalia",
        "Svetlana",
        "Tatiana",
        "Yelena",
        "Marina",
        "Anna",
        "Galina",
        "Ludmila",
        "Ahmed",
        "Ali",
        "Hassan",
        "Omar",
        "Kim",
        "Li",
        "Wang",
        "Carlos",
        "Jose",
        "Juan",
    ]
)
_SYL = tuple(
    [
        "ko",
        "va",
        "ne",
        "ri",
        "sto",
        "mar",
        "lin",
        "dro",
        "gor",
        "bel",
        "sha",
        "tur",
        "pet",
        "kin",
        "zal",
        "mor",
        "dan",
        "vik",
        "rus",
        "tem",
        "lev",
        "nov",
        "sky",
        "chen",
        "gul",
        "bay",
        "mir",
        "tov",
        "sen",
        "zar",
    ]
)
_CITIZENS = tuple(
    [
        "Müller",
        "Schmidt",
        "Schneider",
        "Fischer",
        "Weber",
        "Meyer",
        "Wagner",
        "Becker",
        "Hoffmann",
        "Koch",
        "Richter",
        "Wolf",
        "Klein",
        "Neumann",
        "Schulz",
        "Krüger",
        "Hartmann",
        "Lange",
        "Werner",
    ]
)
_FORMS = ("LLC", "OOO", "GmbH", "Ltd", "JSC", "AG")
_WORDS = tuple(
    ["Trading", "Import", "Logistics", "Holding", "Invest", "Energy", "Metal", "Shipping", "Group", "Capital"]
)
_CYR = {
    "a": "а",
    "b": "б",
    "v": "в",
    "g": "г",
    "d": "д",
    "e": "е",
    "z": "з",
    "i": "и",
    "k": "к",
    "l": "л",
    "m": "м",
    "n": "н",
    "o": "о",
    "p": "п",
    "r": "р",
    "s": "с",
    "t": "т",
    "u": "у",
    "f": "ф",
    "y": "ы",
    "h": "х",
    "c": "к",
    "j": "й",
    "w": "в",
    "x": "кс",
}  # fmt: skip


def _surname(rng: random.Random) -> str:
    stem = "".join(rng.choice(_SYL) for _ in range(rng.randint(2, 3)))
    return (stem + rng.choice(("ov", "ev", "in", "enko", "sky", "yan", ""))).capitalize()


def _cyrillic(name: str) -> str:
    return "".join(_CYR.get(ch, ch) if ch.islower() else _CYR.get(ch.lower(), ch).upper() for ch in name)


def _german(name: str) -> str:
    return name.replace("v", "w").replace("V", "W").replace("sh", "sch")


def make_list(entries: int, rng: random.Random) -> tuple[bytes, list[str]]:
    """The CSV bytes and the primary names (for the orders that must hit)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(KNOWN_COLUMNS)
    names: list[str] = []
    for k in range(entries):
        if rng.random() < 0.75:
            name = f"{rng.choice(_FIRST)} {_surname(rng)}"
            schema = "Person"
            aliases = [_cyrillic(name), _german(name), f"{name[0]}. {name.split()[-1]}"]
        else:
            name = f"{_surname(rng)} {rng.choice(_WORDS)} {rng.choice(_FORMS)}"
            schema = "Company"
            aliases = [_cyrillic(name), _german(name)]
        names.append(name)
        row = dict.fromkeys(KNOWN_COLUMNS, "")
        row.update(
            id=f"bench-{k}",
            schema=schema,
            name=name,
            aliases=";".join(aliases),
            countries="ru",
            sanctions="Made-up benchmark entry",
            dataset="Bench List",
            last_change="2026-11-19T00:00:00",
        )
        writer.writerow(row.values())
    return out.getvalue().encode(), names


def make_orders(orders: int, listed: list[str], rng: random.Random) -> list[tuple[str, str]]:
    parties: list[tuple[str, str]] = []
    for _ in range(orders):
        if rng.random() < 0.01:
            client = _german(rng.choice(listed))
        else:
            client = f"{rng.choice(_FIRST)} {rng.choice((_surname(rng), rng.choice(_CITIZENS)))}"
        seller = (
            f"{rng.choice(_FIRST)} {rng.choice(_CITIZENS)[0]}. (private)"
            if rng.random() < 0.7
            else f"{rng.choice(_CITIZENS)} Rad {rng.choice(_FORMS)}"
        )
        parties.append((client, seller))
    return parties


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", action="store_true", help="5,000 entries, 1,000 orders (CI smoke run)")
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threshold", type=float, default=90.0)
    args = parser.parse_args(argv)
    entries, orders = (5_000, 1_000) if args.small else (args.entries, args.orders)
    rng = random.Random(15)
    data, listed = make_list(entries, rng)
    parties = make_orders(orders, listed, rng)

    started = time.perf_counter()
    parsed = parse_list(data)
    parsed_s = time.perf_counter() - started
    started = time.perf_counter()
    index = NameIndex.build((e.id, e.name, e.names) for e in parsed.entries)
    index_s = time.perf_counter() - started

    runs: list[float] = []
    hits = 0
    for _ in range(max(1, args.repeat)):
        started = time.perf_counter()
        hits = 0
        for client, seller in parties:
            hits += index.best(client, args.threshold) is not None
            hits += index.best(seller, args.threshold) is not None
        runs.append(time.perf_counter() - started)
    best, median = min(runs), statistics.median(runs)
    rss = _rss_mb()
    print(
        f"list: {entries:,} entries ({len(index.skeletons):,} names with aliases), {len(data) / 1e6:.1f} MB"
    )
    print(f"parse {parsed_s:.2f} s, index {index_s:.2f} s (once per list version)")
    print(
        f"screening {orders:,} orders ({2 * orders:,} names): best {best:.3f} s, median {median:.3f} s "
        f"over {len(runs)} runs; {hits} hits; peak RSS {rss:.0f} MB"
    )
    ok = best < TARGET_S and rss < TARGET_MB
    print(f"{'PASS' if ok else 'FAIL'}: target < {TARGET_S:g} s and < {TARGET_MB:g} MB")
    return 0 if ok or args.small else 1


if __name__ == "__main__":
    sys.exit(main())
