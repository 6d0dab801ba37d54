"""The ONE aiohttp server of the bot process, on HTTP_HOST:HTTP_PORT (SPEC §13).

It serves `GET /healthz` and `GET /metrics`, the CRM's pushes (`POST /crm/events`) and, in webhook mode, the
Telegram webhook. Other modules add their routes through a *mount*: a function that takes the aiohttp
application and adds routes (or sub-applications) to it, e.g.

    build_http_app(health=..., metrics=..., mounts=[lambda app: setup_push(app, receiver)])

Mounts run once, before the server starts (aiohttp freezes the router then).

`/healthz` answers 200 `{"ok": true, "checks": {...}}` when every check passes, 503 with `"failing"`
naming the checks that do not (and why) otherwise. `/metrics` is the Prometheus text format.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping

from aiohttp import web

Mount = Callable[[web.Application], None]
# Health checks: name -> None when fine, else a short reason ("task ended", "last success 900 s ago").
HealthCheck = Callable[[], Mapping[str, str | None]]
RenderMetrics = Callable[[], Awaitable[bytes]]

HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4"


def build_http_app(
    *, health: HealthCheck, metrics: RenderMetrics, mounts: Iterable[Mount] = ()
) -> web.Application:
    """The bot's application: health, metrics, then every mount's routes."""
    app = web.Application()

    async def healthz(_request: web.Request) -> web.Response:
        checks = dict(health())
        failing = {name: reason for name, reason in checks.items() if reason is not None}
        body = {"ok": not failing, "checks": {name: reason or "ok" for name, reason in checks.items()}}
        if failing:
            body["failing"] = sorted(failing)
        return web.json_response(body, status=503 if failing else 200)

    async def metrics_view(_request: web.Request) -> web.Response:
        return web.Response(body=await metrics(), content_type=METRICS_CONTENT_TYPE, charset="utf-8")

    app.router.add_get(HEALTH_PATH, healthz)
    app.router.add_get(METRICS_PATH, metrics_view)
    for mount in mounts:
        mount(app)
    return app


class HttpServer:
    """Runs one application on host:port (port 0: any free port; `url` tells which)."""

    def __init__(self, app: web.Application) -> None:
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        self.url: str | None = None

    async def start(self, host: str, port: int) -> str:
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, host, port).start()
        except OSError:
            await self._runner.cleanup()
            raise
        self.url = f"http://{host}:{self._runner.addresses[0][1]}"
        return self.url

    async def stop(self) -> None:
        await self._runner.cleanup()
