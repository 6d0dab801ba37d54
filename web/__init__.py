"""The admin panel: server-rendered pages (Jinja2 through aiohttp-jinja2) mounted on the bot's aiohttp
server by `setup_panel(app, services)`; see web/views.py for the pages and web/auth.py for signing in."""

from __future__ import annotations

from web.views import setup_panel

__all__ = ["setup_panel"]
