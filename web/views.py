"""The admin panel's pages and actions, mounted by `setup_panel(app, services)` on any aiohttp Application.

Nothing is visible without a session (web/auth.py): every page handler is wrapped in `signed_in`, which
refuses with 401 and no content. Every POST checks the session's CSRF token before anything else. Actions on
signals go through backbone.commands.act, the use case behind the Telegram buttons, so the pings in Telegram
are edited exactly as when a button is pressed. Pages render in the reader's language (their Telegram one).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, get_args

import aiohttp_jinja2
import jinja2
from aiohttp import web

from backbone.commands import Refusal, act
from bot.i18n import in_locale
from bot.roles import Role
from bot.services import Services
from circles.registry import OWNER_ROLES, circle_names
from circles.sales_ops.digests import last_week, retro_view
from circles.sales_ops.dispatcher import reassign_candidates
from circles.strategy.autopilot import week_report
from circles.strategy.ceo import ceo_summary
from domain.signals import (
    MAX_COMMENT,
    SEVERITIES,
    SIGNAL_TYPES,
    Actor,
    DecideAction,
    SignalCommand,
    signal_type,
)
from keyboards import autopilot as autopilot_texts
from keyboards import signals as cards
from keyboards.digest import value_text
from storage import panel as store
from storage.people import chat_language
from storage.signals import decisions_of_signal, get_signal, person_names
from web import auth, texts
from web.charts import bars, sparkline

TEMPLATES = Path(__file__).resolve().parent / "templates"
PANEL_SERVICES = web.AppKey("bikewerk_panel_services", Services)
PANEL_JINJA = web.AppKey("bikewerk_panel_jinja2", jinja2.Environment)
PER_PAGE = 50
_ORDER_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,32}$")
PAGE_ACTIONS: dict[str, DecideAction] = {
    "ack": DecideAction.ACK,
    "resolve": DecideAction.RESOLVE,
    "approve": DecideAction.APPROVE,
    "reject": DecideAction.REJECT,
    "reassign": DecideAction.REASSIGN,
}
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the sign-in link's token never leaks to another site
    "Content-Security-Policy": "default-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'",
}


@dataclass(frozen=True)
class Page:
    """Who is looking, in which language, and when."""

    services: Services
    session: auth.Session
    roles: frozenset[Role]
    lang: str
    now: datetime

    @property
    def actor(self) -> Actor:
        staff = bool(self.roles & {Role.LEAD, Role.ADMIN, Role.OWNER})
        return Actor(self.session.user_id, staff=staff, approver=bool(self.roles & {Role.ADMIN, Role.OWNER}))


PageHandler = Callable[[web.Request, Page], Awaitable[web.StreamResponse]]


def _secure(response: web.StreamResponse) -> web.StreamResponse:
    for name, value in _HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _refusal(request: web.Request, status: int, key: str, lang: str | None = None) -> web.StreamResponse:
    services = request.app[PANEL_SERVICES]
    with in_locale(lang or services.settings.default_language):
        labels = texts.labels()
        response = aiohttp_jinja2.render_template(
            "refused.html", request, {"t": labels, "message": labels[key]}, app_key=PANEL_JINJA, status=status
        )
    return _secure(response)


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def signed_in(handler: PageHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def wrapper(request: web.Request) -> web.StreamResponse:
        services = request.app[PANEL_SERVICES]
        now = services.clock.now()
        session = await auth.session_of(services, request.cookies.get(auth.COOKIE), now)
        if session is None:
            return _refusal(request, 401, "sign_in_needed")
        roles = await auth.caller_roles(services, session.user_id)
        lang = await chat_language(services.db, session.user_id, services.settings.default_language)
        page = Page(services, session, roles, lang, now)
        if request.method == "POST":
            form = await request.post()
            if not auth.csrf_ok(session, str(form.get("csrf") or "")):
                return _refusal(request, 403, "csrf_refused", lang)
        with in_locale(lang):  # the whole request reads and renders in the reader's language
            return _secure(await handler(request, page))

    return wrapper


def _render(request: web.Request, page: Page, template: str, context: dict[str, Any]) -> web.Response:
    with in_locale(page.lang):
        base = {
            "t": texts.labels(),
            "csrf": page.session.csrf,
            "me": page.session.user_id,
            "section": template.removesuffix(".html"),
            "lang": page.lang,
        }
        return aiohttp_jinja2.render_template(template, request, {**base, **context}, app_key=PANEL_JINJA)


# --- signing in and out -------------------------------------------------------------------------------------


async def login(request: web.Request) -> web.StreamResponse:
    services = request.app[PANEL_SERVICES]
    session = await auth.sign_in(services, request.match_info["token"], services.clock.now())
    if session is None:
        return _refusal(request, 403, "link_refused")
    response = _see_other("/")
    secure = (services.settings.web_base_url or "").startswith("https://")
    response.set_cookie(
        auth.COOKIE,
        session.cookie,
        max_age=session.max_age,
        httponly=True,
        samesite="Lax",  # Strict would drop the cookie on the first page opened from Telegram
        secure=secure,
        path="/",
    )
    return _secure(response)


@signed_in
async def logout(request: web.Request, page: Page) -> web.StreamResponse:
    await auth.sign_out(page.services, page.session, page.now)
    response = _see_other("/")
    response.del_cookie(auth.COOKIE, path="/")
    return response


# --- the circles panel (with the AI-CEO summary on top) -----------------------------------------------------


async def _owners(services: Services) -> dict[str, list[int]]:
    settings = services.settings
    return {
        "owner": [settings.owner_id] if settings.owner_id is not None else [],
        "lead": list(settings.lead_ids),
        "admin": list(settings.admin_ids),
    }


@signed_in
async def circles_page(request: web.Request, page: Page) -> web.StreamResponse:
    services = page.services
    summary = await ceo_summary(services, page.now)
    live = await store.live_signals(services.db, limit=500)
    by_circle: dict[str, list[Any]] = {}
    for signal in live:
        by_circle.setdefault(signal.circle, []).append(signal)
    reports = {r.circle: r for r in summary.circles}
    names_in_order = list(dict.fromkeys([*circle_names(), *by_circle]))
    owners = await _owners(services)
    people = await person_names(
        services.db, [p for ids in owners.values() for p in ids] + [s.owner_person for s in live]
    )
    circles = [
        {
            "name": name,
            "role": OWNER_ROLES.get(name, "lead"),
            "owners": [people.get(p, str(p)) for p in owners.get(OWNER_ROLES.get(name, "lead"), [])],
            "report": reports.get(name),
            "signals": by_circle.get(name, []),
        }
        for name in names_in_order
    ]
    return _render(
        request,
        page,
        "circles.html",
        {"summary": summary, "circles": circles, "names": {**summary.names, **people}},
    )


# --- the decision log ---------------------------------------------------------------------------------------


def _day(text: str | None, tz: Any, *, end: bool = False) -> datetime | None:
    try:
        day = date.fromisoformat(text or "")
    except ValueError:
        return None
    return datetime.combine(day + timedelta(days=1) if end else day, time.min, tzinfo=tz)


def _log_filter(query: Any, tz: Any) -> tuple[store.LogFilter, dict[str, str]]:
    raw = {key: str(query.get(key, "")).strip()[:40] for key in ("circle", "severity", "order", "person")}
    raw["since"] = str(query.get("since", ""))[:10]
    raw["until"] = str(query.get("until", ""))[:10]
    person = raw["person"].lstrip("-")
    where = store.LogFilter(
        circle=raw["circle"] or None,
        severity=raw["severity"] if raw["severity"] in SEVERITIES else None,
        order_id=raw["order"] if _ORDER_ID.match(raw["order"]) else None,
        person=int(raw["person"]) if person.isdigit() else None,
        since=_day(raw["since"], tz),
        until=_day(raw["until"], tz, end=True),
    )
    return where, raw


@signed_in
async def log_page(request: web.Request, page: Page) -> web.StreamResponse:
    services = page.services
    where, raw = _log_filter(request.query, services.settings.tz)
    try:
        number = max(0, int(request.query.get("page", "0")))
    except ValueError:
        number = 0
    entries, total = await store.signal_log(services.db, where, limit=PER_PAGE, offset=number * PER_PAGE)
    loose = (
        []
        if where.circle or where.severity
        else await store.decisions_without_signal(services.db, where, limit=PER_PAGE)
    )
    people = [s.owner_person for s, _ in entries] + [
        int(d.actor) for _, ds in entries for d in ds if d.actor.isdigit()
    ]
    circles = sorted({*circle_names(), *await store.circles_with_signals(services.db)})
    return _render(
        request,
        page,
        "log.html",
        {
            "entries": entries,
            "loose": loose,
            "total": total,
            "page": number,
            "pages": max(1, -(-total // PER_PAGE)),
            "filter": raw,
            "circles": circles,
            "severities": SEVERITIES,
            "names": await person_names(services.db, people),
        },
    )


# --- one signal, and acting on it ---------------------------------------------------------------------------


@signed_in
async def signal_page(request: web.Request, page: Page) -> web.StreamResponse:
    services = page.services
    signal_id = _int(request.match_info["signal_id"])
    signal = None if signal_id is None else await get_signal(services.db, signal_id)
    if signal is None:
        return _refusal(request, 404, "not_found", page.lang)
    decisions = await decisions_of_signal(services.db, signal.id)
    people = [signal.owner_person, signal.acked_by, signal.resolved_by] + [
        int(d.actor) for d in decisions if d.actor.isdigit()
    ]
    with in_locale(page.lang):
        flash = _flash(request, signal.id)
    return _render(
        request,
        page,
        "signal.html",
        {
            "signal": signal,
            "decisions": decisions,
            "flash": flash,
            "managers": await reassign_candidates(services) if page.actor.staff else [],
            "actor": page.actor,
            "names": await person_names(services.db, people),
            "max_comment": MAX_COMMENT,
        },
    )


def _flash(request: web.Request, signal_id: int) -> tuple[str, str] | None:
    done, refused = request.query.get("done", ""), request.query.get("refused", "")
    if done in PAGE_ACTIONS:
        return "ok", texts.flash_done(done, signal_id)
    if refused in get_args(Refusal):
        action = PAGE_ACTIONS.get(request.query.get("action", ""), DecideAction.ACK)
        return "refused", cards.refusal_text(refused, SignalCommand(signal_id, action))
    return None


def _int(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) < 18 else None


@signed_in
async def act_on_signal(request: web.Request, page: Page) -> web.StreamResponse:
    """A form on the signal page: the same use case as the Telegram buttons and /decide."""
    signal_id = _int(request.match_info["signal_id"])
    form = await request.post()
    action = PAGE_ACTIONS.get(str(form.get("action", "")))
    if signal_id is None or action is None:
        return _refusal(request, 400, "not_found", page.lang)
    manager = str(form.get("manager", "")).strip() or None
    comment = str(form.get("comment", "")).strip()[:MAX_COMMENT]
    command = SignalCommand(signal_id, action, manager if action is DecideAction.REASSIGN else None, comment)
    outcome = await act(page.services, command, page.actor, page.services.clock.now())
    code = str(form.get("action"))
    target = f"/signals/{signal_id}?" + (
        f"done={code}" if outcome.ok else f"refused={outcome.refusal}&action={code}"
    )
    return _see_other(target)


# --- an order's whole history -------------------------------------------------------------------------------


@signed_in
async def order_page(request: web.Request, page: Page) -> web.StreamResponse:
    order_id = request.match_info["order_id"]
    if not _ORDER_ID.match(order_id):
        return _refusal(request, 404, "not_found", page.lang)
    history = await store.order_history(page.services.db, order_id)
    if history.order is None and not history.signals and not history.decisions:
        return _refusal(request, 404, "order_unknown", page.lang)
    people = [s.owner_person for s in history.signals] + [
        int(d.actor) for d in history.decisions if d.actor.isdigit()
    ]
    return _render(
        request,
        page,
        "order.html",
        {
            "order_id": order_id,
            "h": history,
            "names": await person_names(page.services.db, people),
            "photos": {a["item"]: a for a in history.artifacts},
        },
    )


@signed_in
async def artifact_file(request: web.Request, page: Page) -> web.StreamResponse:
    """A checklist photo stored on disk under ARTIFACTS_DIR (never a path outside it)."""
    artifact_id = _int(request.match_info["artifact_id"])
    found = None if artifact_id is None else await store.artifact(page.services.db, artifact_id)
    path = _inside(page.services.settings.artifacts_dir, found.get("local_path") if found else None)
    if path is None:
        return _refusal(request, 404, "not_found", page.lang)
    return web.FileResponse(path)


def _inside(root: Path, local_path: str | None) -> Path | None:
    """The stored file when it exists under `root`; None otherwise (a path outside, a missing file)."""
    if not local_path:
        return None
    path = Path(local_path).resolve()
    return path if path.is_file() and root.resolve() in path.parents else None


# --- the weekly retrospective -------------------------------------------------------------------------------


def _circle_of(type_code: str) -> str:
    return str(signal_type(type_code).circle) if type_code in SIGNAL_TYPES else "?"


@signed_in
async def retro_page(request: web.Request, page: Page) -> web.StreamResponse:
    services = page.services
    try:
        week = date.fromisoformat(request.query.get("week", ""))
        week -= timedelta(days=week.weekday())
    except ValueError:
        week = last_week(services, page.now)
    view = await retro_view(services, week)
    circles: dict[str, list[Any]] = {}
    for group in view.groups:
        circles.setdefault(_circle_of(group.type), []).append(group)
    with in_locale(page.lang):
        charts = {
            name: bars([(cards.type_title(g.type), len(g.signals), g.helped.part) for g in groups])
            for name, groups in circles.items()
        }
        autopilot = [
            {**row, "label": autopilot_texts.action_label(row["action"])}
            for row in await week_report(services, view.window.start, view.window.end)
        ]
    return _render(
        request,
        page,
        "retro.html",
        {
            "view": view,
            "week": week,
            "previous": week - timedelta(days=7),
            "next": week + timedelta(days=7),
            "circles": circles,
            "charts": charts,
            "autopilot": autopilot,
            "autopilot_chart": bars([(r["label"], r["ran"], r["helped"]) for r in autopilot]),
        },
    )


# --- wiring -------------------------------------------------------------------------------------------------


def _when(page_tz: Any) -> Callable[[datetime | str | None], str]:
    def when(value: datetime | str | None) -> str:
        if value is None or value == "":
            return "—"
        instant = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
        return instant.astimezone(page_tz).strftime("%d.%m.%Y %H:%M")

    return when


def setup_panel(app: web.Application, services: Services) -> None:
    """Mount the panel on `app` (routes under /, /log, /signals, /orders, /retro, /login, /logout)."""
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        app_key=PANEL_JINJA,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["when"] = _when(services.settings.tz)
    env.filters["value"] = value_text
    env.globals.update(
        spark=sparkline,
        type_title=cards.type_title,
        severity_label=cards.severity_label,
        effect_text=texts.effect_text,
        priority_label=cards.priority_label,
        parked_line=cards.parked_line,
        day_counts=texts.day_counts,
        circle_label=texts.circle_label,
        state_label=texts.state_label,
        role_label=texts.role_label,
        signals_count=texts.signals_count,
    )
    app[PANEL_SERVICES] = services
    app.router.add_get("/", circles_page)
    app.router.add_get("/login/{token}", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/log", log_page)
    app.router.add_get(r"/signals/{signal_id}", signal_page)
    app.router.add_post(r"/signals/{signal_id}/act", act_on_signal)
    app.router.add_get(r"/orders/{order_id}", order_page)
    app.router.add_get(r"/artifacts/{artifact_id}", artifact_file)
    app.router.add_get("/retro", retro_page)
