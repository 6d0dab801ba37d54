"""Signing in to the admin panel: one-time links that `/web` sends in Telegram, then a signed session cookie,
and a CSRF token per session for every form.

- A link carries a random token; only its SHA-256 is stored, it lives WEB_LINK_MINUTES and works once.
- A session id is random; the cookie is "<id>.<HMAC-SHA256(secret, id)>" (HttpOnly, SameSite=Lax, Secure on
  https, Max-Age of WEB_SESSION_HOURS); only the id's SHA-256 is stored, with its expiry.
- The CSRF token of a session is HMAC(secret, "csrf:" + id): every POST must carry it.
- The secret is WEB_SECRET, or one generated once and kept in the database.
Who may sign in: admins, the owner and leads (the roles of Telegram, from the settings).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.config import Settings
from bot.roles import Role, resolve_roles
from bot.services import Services
from storage import web as store
from storage.people import manager_by_telegram_id

COOKIE = "bw_session"
PANEL_ROLES = frozenset({Role.ADMIN, Role.OWNER, Role.LEAD})


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _sign(secret: str, value: str) -> str:
    return hmac.new(secret.encode(), value.encode(), hashlib.sha256).hexdigest()


async def panel_secret(services: Services) -> str:
    settings = services.settings
    if settings.web_secret is not None and settings.web_secret.get_secret_value():
        return settings.web_secret.get_secret_value()
    return await store.stored_secret(services.db, secrets.token_hex(32))


def may_sign_in(settings: Settings, user_id: int) -> bool:
    return bool(resolve_roles(settings, user_id, None) & PANEL_ROLES)


def panel_url(settings: Settings, fallback: str | None = None) -> str | None:
    """The panel's public address: WEB_BASE_URL, or `fallback` (where the server listens) when unset."""
    return settings.web_base_url or fallback


async def issue_link(services: Services, user_id: int, now: datetime, base_url: str) -> str:
    """A one-time sign-in link for `user_id` (the caller checked `may_sign_in`)."""
    token = secrets.token_urlsafe(32)
    expires = now + timedelta(minutes=services.settings.web_link_minutes)
    async with services.db.transaction() as conn:
        await store.forget_expired(conn, now)
        await store.insert_link(conn, _sha(token), user_id, now, expires)
    return f"{base_url.rstrip('/')}/login/{token}"


@dataclass(frozen=True)
class NewSession:
    user_id: int
    cookie: str
    max_age: int  # seconds


async def sign_in(services: Services, token: str, now: datetime) -> NewSession | None:
    """Spend a link and open a session; None when the link is unknown, used, expired, or its person no
    longer holds a panel role."""
    if not token or len(token) > 100:
        return None
    session_id = secrets.token_urlsafe(32)
    hours = services.settings.web_session_hours
    async with services.db.transaction() as conn:
        user_id = await store.use_link(conn, _sha(token), now)
        if user_id is None or not may_sign_in(services.settings, user_id):
            return None
        await store.insert_session(conn, _sha(session_id), user_id, now, now + timedelta(hours=hours))
    secret = await panel_secret(services)
    return NewSession(user_id, f"{session_id}.{_sign(secret, session_id)}", hours * 3600)


@dataclass(frozen=True)
class Session:
    user_id: int
    session_id: str
    csrf: str


async def session_of(services: Services, cookie: str | None, now: datetime) -> Session | None:
    """The live session a cookie names, if its signature is right and it has neither expired nor ended."""
    if not cookie or "." not in cookie:
        return None
    session_id, _, signature = cookie.partition(".")
    secret = await panel_secret(services)
    if not hmac.compare_digest(signature, _sign(secret, session_id)):
        return None
    user_id = await store.session_user(services.db, _sha(session_id), now)
    if user_id is None or not may_sign_in(services.settings, user_id):
        return None
    return Session(user_id, session_id, _sign(secret, "csrf:" + session_id))


def csrf_ok(session: Session, submitted: str | None) -> bool:
    return bool(submitted) and hmac.compare_digest(session.csrf, submitted or "")


async def sign_out(services: Services, session: Session, now: datetime) -> None:
    async with services.db.transaction() as conn:
        await store.end_session(conn, _sha(session.session_id), now)


async def caller_roles(services: Services, user_id: int) -> frozenset[Role]:
    """The person's roles, as in Telegram (a manager row adds the manager role)."""
    manager = await manager_by_telegram_id(services.db, user_id)
    return resolve_roles(services.settings, user_id, manager)
