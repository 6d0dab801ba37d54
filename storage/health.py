"""Counts for the health endpoint and the metrics, read from the store (plain reads, read-only connection)."""

from __future__ import annotations

from dataclasses import dataclass, field

from storage.db import Database


@dataclass(frozen=True)
class StoreCounts:
    messages_queued: int = 0  # Telegram messages waiting to be (re)sent
    messages_dead: int = 0  # given up on (blocked chat, permanent error)
    outbox_pending: int = 0  # CRM writes not acknowledged yet
    outbox_refused: int = 0  # of those, refused by the CRM as they are
    kept_aside: int = 0  # CRM records and answers kept aside (contract violations)
    open_signals: dict[tuple[str, str], int] = field(default_factory=dict)  # (severity, circle) -> count


async def store_counts(db: Database) -> StoreCounts:
    messages = await db.fetchone(
        "SELECT COALESCE(SUM(sent_version < version AND dead = 0), 0) AS queued,"
        " COALESCE(SUM(dead), 0) AS dead FROM tg_messages"
    )
    outbox = await db.fetchone(
        "SELECT COALESCE(SUM(acked_at IS NULL), 0) AS pending,"
        " COALESCE(SUM(acked_at IS NULL AND refused_at IS NOT NULL), 0) AS refused FROM crm_outbox"
    )
    aside = await db.fetchone("SELECT COUNT(*) AS n FROM contract_violations")
    signals = await db.fetchall(
        "SELECT severity, circle, COUNT(*) AS n FROM ai_signals WHERE state <> 'resolved'"
        " GROUP BY severity, circle"
    )
    assert messages is not None and outbox is not None and aside is not None
    return StoreCounts(
        messages_queued=int(messages["queued"]),
        messages_dead=int(messages["dead"]),
        outbox_pending=int(outbox["pending"]),
        outbox_refused=int(outbox["refused"]),
        kept_aside=int(aside["n"]),
        open_signals={(str(r["severity"]), str(r["circle"])): int(r["n"]) for r in signals},
    )
