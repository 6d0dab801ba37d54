#!/usr/bin/env bash
# Texts: extract every _() / __() / ngettext() string into locales/messages.pot, merge it into the Russian and
# English catalogs, copy English msgids into empty English translations (msgids are English), and compile .mo.
#
#   scripts/i18n.sh            extract -> update -> fill English -> compile
#   scripts/i18n.sh compile    compile only (after editing locales/ru/LC_MESSAGES/messages.po)
#
# tests/test_i18n.py fails while any string lacks a translation in either catalog.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV_BIN=${VENV_BIN:-.venv/bin}
PYBABEL="$VENV_BIN/pybabel"
CATALOG=locales/messages.pot
LANGS=(ru en)

if [[ "${1:-}" != "compile" ]]; then
    sources=()
    for path in main.py bot handlers keyboards backbone circles scheduler bikewerk domain storage demo web; do
        [[ -e "$path" ]] && sources+=("$path")
    done
    "$PYBABEL" extract -F babel.cfg -k _ -k __ -k ngettext:1,2 --sort-by-file \
        --project=bikewerk-ops-bot --copyright-holder=BikeWerk --msgid-bugs-address=ops@bikewerk.example \
        -o "$CATALOG" "${sources[@]}"
    for lang in "${LANGS[@]}"; do
        po="locales/$lang/LC_MESSAGES/messages.po"
        if [[ -f "$po" ]]; then
            "$PYBABEL" update -i "$CATALOG" -d locales -D messages -l "$lang" --previous
        else
            "$PYBABEL" init -i "$CATALOG" -d locales -D messages -l "$lang"
        fi
    done
    # English is the source language: an empty English translation is the msgid itself.
    "$VENV_BIN/python" - <<'PY'
from babel.messages.pofile import read_po, write_po

path = "locales/en/LC_MESSAGES/messages.po"
with open(path, "rb") as f:
    catalog = read_po(f, locale="en")
for message in catalog:
    if not message.id:
        continue
    if isinstance(message.id, tuple):
        if not all(message.string):
            message.string = (message.id[0], message.id[1])
            message.flags.discard("fuzzy")
    elif not message.string or message.fuzzy:
        message.string = message.id
        message.flags.discard("fuzzy")
with open(path, "wb") as f:
    write_po(f, catalog, width=110)
PY
fi
"$PYBABEL" compile -d locales -D messages --statistics
