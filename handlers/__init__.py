"""Telegram handlers, one module per audience; `routers()` gives a fresh set in the order they match."""

from __future__ import annotations

from aiogram import Router

from handlers import (
    admin,
    checklist,
    circles,
    common,
    crisis,
    digest,
    errors,
    manager,
    panel,
    reassign,
    risk_circles,
    signals,
)


def routers() -> list[Router]:
    return [
        errors.router(),  # failures of any router below: logged once, a failed button press answered
        common.router(),
        # Each audience's router goes here, one line each (`module.router(),`), above the fallback.
        crisis.router(),
        reassign.router(),
        manager.router(),
        checklist.router(),
        signals.router(),
        admin.router(),
        digest.router(),
        circles.router(),
        risk_circles.router(),
        panel.router(),
        common.fallback_router(),  # keep last: answers what no router above handled
    ]
