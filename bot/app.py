"""The bot process: one event loop running the Telegram bot (long polling or a webhook), the outgoing sender,
the CRM outbox worker and the scheduler, started and stopped together (`main.py run`).

`BotApp` is also what tests, benchmarks and the demo start: point TELEGRAM_API_URL at any server that speaks
the Bot API (Telegram, a self-hosted Bot API server, the local emulator) and hand in a clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError, TelegramUnauthorizedError
from aiogram.methods import AnswerCallbackQuery, EditMessageText, GetUpdates, Response, SendMessage
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

import handlers
from bikewerk.client import BikeWerkClient
from bikewerk.outbox import CrmOutboxWorker
from bikewerk.push import PushReceiver, setup_push
from bikewerk.sync import Syncer
from bot.clock import Clock, SystemClock
from bot.config import TELEGRAM_DEFAULT_API, ConfigError, Settings
from bot.http import HttpServer, Mount, build_http_app
from bot.i18n import i18n
from bot.limits import SendLimits
from bot.logs import log_event, setup_logging
from bot.metrics import BotMetrics, Live
from bot.middlewares import CallerMiddleware, ConfirmWhenHandled, LocaleMiddleware, UpdateTracker
from bot.roles import Role, configured_groups, resolve_roles
from bot.sender import Sender
from bot.services import Services
from circles.sales_ops.kpi import mark_installed
from domain.policy import calendar_for, load_policy
from handlers.common import set_chat_commands, set_default_commands
from scheduler.jobs import make_push_receiver, make_scheduler, make_syncer, register_jobs
from storage.db import Database
from storage.people import chat_language, linked_managers
from web import setup_panel

log = logging.getLogger(__name__)

# Besides what the handlers use: my_chat_member tells when a person blocks the bot or a group removes it.
_EXTRA_UPDATES = ("my_chat_member",)


def build_dispatcher(services: Services, tracker: UpdateTracker) -> Dispatcher:
    """A fresh Dispatcher with the middlewares and every audience's router."""
    # No FSM: what a person's next message answers is kept in SQLite (input_focus), so it survives a restart;
    # aiogram's FSM middleware would only cost every update a context nobody reads.
    dispatcher = Dispatcher(services=services, disable_fsm=True)
    dispatcher.update.outer_middleware(tracker)
    dispatcher.update.outer_middleware(CallerMiddleware())
    LocaleMiddleware(i18n).setup(dispatcher)
    dispatcher.include_routers(*handlers.routers())
    return dispatcher


# aiogram reads every answer as `Response[T]`, a class pydantic builds on first use and caches only weakly:
# the garbage collector drops it and a later answer builds it again (milliseconds each time, about 1 answer in
# 30 in bench_pipeline). Holding the answer types of every update's requests keeps them built.
_ANSWER_TYPES = tuple(
    Response[method.__returning__]  # type: ignore[name-defined]
    for method in (GetUpdates, SendMessage, EditMessageText, AnswerCallbackQuery)
)


def make_session(settings: Settings, timeout: float) -> AiohttpSession:
    """A session for Telegram, or for another Bot API server when TELEGRAM_API_URL names one."""
    if settings.telegram_api_url == TELEGRAM_DEFAULT_API:
        return AiohttpSession(timeout=timeout)
    return AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url), timeout=timeout)


class BotApp:
    """Everything the bot process runs, started and stopped together. See the module docstring."""

    services: Services
    bot: Bot
    dispatcher: Dispatcher
    sender: Sender
    scheduler: AsyncIOScheduler
    bikewerk: BikeWerkClient
    crm_outbox: CrmOutboxWorker
    syncer: Syncer

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        session_timeout: float = 30.0,
        send_limits: SendLimits | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        stop_grace: float = 3.0,
        bikewerk: BikeWerkClient | None = None,
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.session_timeout = session_timeout
        self.send_limits = send_limits
        self.stop_grace = stop_grace
        # The CRM client: a benchmark hands in one with short timeouts and retries (closed on stop).
        self._bikewerk = bikewerk
        self.tracker = UpdateTracker()
        self._monotonic = monotonic
        self._sleep = sleep
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._intake: asyncio.Task[Any] | None = None
        self._http: HttpServer | None = None
        self.http_url: str | None = None  # the bot's HTTP server (None: none runs)
        self._webhook_open = False  # the webhook route takes updates (after start_intake)
        self.push: PushReceiver | None = None
        self.push_url: str | None = None  # where the CRM's pushes are taken (None: not taken)
        self.metrics = BotMetrics(self._live)
        self.http_mounts: list[Mount] = []  # more routes for the HTTP server (added before start)
        self._db: Database | None = None
        self._started = False

    @property
    def intake(self) -> asyncio.Task[Any] | None:
        """The long-polling task (None in webhook mode or without intake); it ends only on stop or failure."""
        return self._intake

    async def start(self, *, polling: bool = True, scheduler: bool = True) -> None:
        """Open the store and start everything.

        `polling=False` takes no updates (neither long polling nor the webhook WEBHOOK_URL selects) until
        `start_intake()`; `scheduler=False` registers the jobs without running them.
        """
        settings = self.settings
        token = settings.token
        if settings.webhook_url is not None and settings.webhook_secret is None:
            raise ConfigError(
                "WEBHOOK_SECRET: required in webhook mode, so updates can be told from forgeries"
            )
        policy = load_policy(settings.policy_file)
        calendar = calendar_for(policy, settings.timezone)
        self._db = db = await Database.open(settings.database_path)
        try:
            self.bot = Bot(
                token,
                session=make_session(settings, self.session_timeout),
                default=DefaultBotProperties(parse_mode="HTML"),
            )
            await self._check_bot()
            self.sender = Sender(
                self.bot,
                db,
                self.clock,
                limits=self.send_limits,
                monotonic=self._monotonic,
                sleep=self._sleep,
                settings=settings,
                policy=policy,
            )
            self.services = Services(
                settings=settings,
                db=db,
                clock=self.clock,
                policy=policy,
                calendar=calendar,
                wake_sender=self.sender.wake,
            )
            # The KPI baseline counts its first 14 days from here.
            await mark_installed(db, self.clock.now())
            self.dispatcher = build_dispatcher(self.services, self.tracker)
            self.dispatcher.update.outer_middleware(self.metrics.middleware)
            self.bikewerk = self._bikewerk or BikeWerkClient(
                settings.bikewerk_api_url, settings.bikewerk_api_token.get_secret_value()
            )
            await self._set_commands()
            self._tasks.append(asyncio.create_task(self.sender.run(self._stop), name="sender"))
            self.crm_outbox = CrmOutboxWorker(
                db,
                self.bikewerk,
                self.clock,
                settings=settings,
                policy=self.services.policy,
                wake_sender=self.sender.wake,
            )
            self._tasks.append(asyncio.create_task(self.crm_outbox.run(self._stop), name="crm-outbox"))
            self.syncer = make_syncer(self.services, self.bikewerk)
            self.scheduler = make_scheduler(settings)
            self.metrics.watch_jobs(self.scheduler)
            register_jobs(self.scheduler, self.services, self.bikewerk, syncer=self.syncer)
            await self._start_http()
            if scheduler:
                self.scheduler.start()
            if polling:
                await self.start_intake()
        except BaseException:
            await self._close()
            raise
        self._started = True
        log_event(
            log,
            "bot.started",
            mode="no intake" if not polling else "webhook" if settings.webhook_url else "polling",
            api=settings.telegram_api_url,
            scheduler=scheduler,
        )

    async def _start_http(self) -> None:
        """The one HTTP server (bot/http.py) on HTTP_HOST:HTTP_PORT, or in webhook mode without HTTP_PORT on
        WEBHOOK_HOST:WEBHOOK_PORT: health, metrics, the CRM's pushes (when BIKEWERK_WEBHOOK_SECRET is set),
        the admin panel, the Telegram webhook (in webhook mode) and `http_mounts`."""
        settings = self.settings
        self.push = make_push_receiver(self.syncer, self.services)
        if self.push is not None:
            self._tasks.append(asyncio.create_task(self.push.run(self._stop), name="crm-push"))
        if settings.http_port is not None:
            host, port = settings.http_host, settings.http_port
        elif settings.webhook_url is not None:
            host, port = settings.webhook_host, settings.webhook_port
        else:
            return
        mounts = list(self.http_mounts)
        mounts.append(lambda app: setup_panel(app, self.services))
        push = self.push
        if push is not None:
            mounts.append(lambda app: setup_push(app, push))
        if settings.webhook_url is not None:
            mounts.append(self._mount_webhook)
        app = build_http_app(health=self.health, metrics=self._render_metrics, mounts=mounts)
        self._http = HttpServer(app)
        self.http_url = await self._http.start(host, port)
        if push is not None:
            self.push_url = self.http_url
        self.services.web_url = settings.web_base_url or self.http_url

    def _mount_webhook(self, app: web.Application) -> None:
        settings = self.settings
        assert settings.webhook_url is not None and settings.webhook_secret is not None
        # Answered once handled, not before: Telegram sends an update again until it gets its 200, so a
        # crash mid-handling cannot lose it.
        handler = SimpleRequestHandler(
            self.dispatcher,
            self.bot,
            handle_in_background=False,
            secret_token=settings.webhook_secret.get_secret_value(),
        )

        async def webhook(request: web.Request) -> web.StreamResponse:
            if not self._webhook_open:  # not taking updates yet (or any more): Telegram retries later
                return web.json_response({"error": "not taking updates"}, status=503)
            return await handler.handle(request)

        # Not handler.register(): its shutdown hook closes the Bot session, which the sender still needs then.
        app.router.add_post(urlsplit(settings.webhook_url).path or "/", webhook)

    def task(self, name: str) -> asyncio.Task[Any] | None:
        """The supervised task of that name ("sender", "crm-outbox", "crm-push"), if started."""
        return next((t for t in self._tasks if t.get_name() == name), None)

    def health(self) -> dict[str, str | None]:
        """Each part of the process: None when alive, else why not (GET /healthz)."""
        checks: dict[str, str | None] = {}
        if self.settings.webhook_url is not None:
            checks["intake"] = None if self._webhook_open else "webhook not taking updates"
        else:
            intake = self._intake
            checks["intake"] = "not started" if intake is None else "task ended" if intake.done() else None
        for name in ("sender", "crm-outbox"):
            task = self.task(name)
            checks[name] = "not started" if task is None else "task ended" if task.done() else None
        running = hasattr(self, "scheduler") and self.scheduler.running
        checks["scheduler"] = None if running else "not running"
        checks["sync"] = self._sync_problem()
        return checks

    def _sync_problem(self) -> str | None:
        if not hasattr(self, "syncer") or self.syncer.last_ok_at is None:
            return "no successful sync yet"
        age = (self.clock.now() - self.syncer.last_ok_at).total_seconds()
        if age > self.services.policy.reliability.sync_lag_minutes * 60:  # the reliability circle's bound
            return f"last successful sync {age:.0f} s ago"
        return None

    def _live(self) -> Live:
        if not hasattr(self, "sender"):
            return Live()
        syncer = getattr(self, "syncer", None)
        report = None if syncer is None else syncer.last_report
        duration = None
        if report is not None and report.finished_at is not None:
            duration = (report.finished_at - report.started_at).total_seconds()
        last_ok = None if syncer is None else syncer.last_ok_at
        return Live(
            messages_sent=self.sender.delivered,
            messages_failed=self.sender.failures,
            retry_afters=self.sender.retry_afters,
            sync_duration_seconds=duration,
            sync_lag_seconds=None if last_ok is None else (self.clock.now() - last_ok).total_seconds(),
            sync_failures=0 if syncer is None else syncer.failures,
        )

    async def _render_metrics(self) -> bytes:
        return await self.metrics.render(self.services.db)

    async def start_intake(self) -> None:
        """Start taking updates: a webhook when WEBHOOK_URL is set, long polling otherwise."""
        if self.settings.webhook_url is not None:
            await self._start_webhook()
            return
        await self.bot.delete_webhook(drop_pending_updates=False)
        self.bot.session.middleware(ConfirmWhenHandled(self.tracker))
        self._intake = asyncio.create_task(
            self.dispatcher.start_polling(
                self.bot,
                handle_signals=False,
                close_bot_session=False,
                allowed_updates=self._allowed_updates(),
            ),
            name="polling",
        )

    async def _check_bot(self) -> None:
        """Fail fast on a wrong token or an unreachable server, with a message naming the setting."""
        try:
            me = await self.bot.get_me()
        except TelegramUnauthorizedError:
            raise ConfigError("BOT_TOKEN: the Bot API server rejected this token") from None
        except (TelegramNetworkError, TelegramAPIError) as exc:
            raise ConfigError(
                f"TELEGRAM_API_URL: cannot talk to the Bot API at {self.settings.telegram_api_url}: {exc}"
            ) from None
        log_event(log, "bot.identity", username=me.username, bot_id=me.id)

    def _allowed_updates(self) -> list[str]:
        return sorted({*self.dispatcher.resolve_used_update_types(), *_EXTRA_UPDATES})

    async def _set_commands(self) -> None:
        """The command menu per scope: everyone, then each known person's and each configured group's chat."""
        settings, db = self.settings, self.services.db
        await set_default_commands(self.bot, settings.default_language)
        people = {*settings.admin_ids, *settings.lead_ids}
        if settings.owner_id is not None:
            people.add(settings.owner_id)
        managers = {int(row["telegram_id"]): row for row in await linked_managers(db)}
        for person in sorted(people | managers.keys()):
            roles = resolve_roles(settings, person, managers.get(person))
            lang = await chat_language(db, person, settings.default_language)
            await set_chat_commands(self.bot, person, roles, lang)
        group_roles = {
            settings.leads_chat_id: frozenset({Role.LEAD}),
            settings.crisis_chat_id: frozenset({Role.LEAD}),
            settings.admin_chat_id: frozenset({Role.ADMIN}),
        }
        for chat_id in sorted(configured_groups(settings)):
            await set_chat_commands(self.bot, chat_id, group_roles[chat_id], settings.default_language)

    async def _start_webhook(self) -> None:
        settings = self.settings
        assert settings.webhook_url is not None and settings.webhook_secret is not None
        self._webhook_open = True
        await self.bot.set_webhook(
            settings.webhook_url,
            secret_token=settings.webhook_secret.get_secret_value(),
            allowed_updates=self._allowed_updates(),
        )

    async def stop(self) -> None:
        """Stop taking updates and running jobs, let handlers in flight finish, let the sender deliver what is
        due within a short grace (the rest stays queued for the next start), then close the session and store.
        """
        if not self._started:
            return
        self._started = False
        self._stop_scheduler()
        if self._intake is not None:
            try:
                await self.dispatcher.stop_polling()
            except RuntimeError:  # polling has not begun yet (a stop right after start) or has ended
                self._intake.cancel()
            await asyncio.wait([self._intake])
        self._webhook_open = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.tracker.wait_idle(), self.stop_grace)
        delivered = await self.sender.drain(self.stop_grace)
        await self._close()
        log_event(log, "bot.stopped", delivered_on_stop=delivered)

    def _stop_scheduler(self) -> None:
        # Running jobs are cancelled; each is one transaction per unit of work, so a cancel loses nothing.
        if hasattr(self, "scheduler") and self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    async def _close(self) -> None:
        """Release everything start() acquired (also after a failed start)."""
        self._webhook_open = False
        if self._http is not None:
            await self._http.stop()
            self._http = None
        self._stop.set()
        self._stop_scheduler()
        if self._tasks:
            _done, pending = await asyncio.wait(self._tasks, timeout=self.stop_grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks.clear()
        if hasattr(self, "bikewerk"):
            await self.bikewerk.close()
        if hasattr(self, "bot"):
            await self.bot.session.close()
        if self._db is not None:
            await self._db.close()
            self._db = None


async def run_bot(settings: Settings) -> int:
    """`main.py run`: the bot until SIGINT or SIGTERM, then a clean stop. Needs BOT_TOKEN."""
    settings.token  # noqa: B018 - raises ConfigError naming BOT_TOKEN before anything starts
    setup_logging(settings.log_level)
    app = BotApp(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    # What start-up built lives as long as the process: keep it out of the collector's full passes, which
    # otherwise pause a dispatch pass or a digest for a few hundred milliseconds.
    gc.collect()
    gc.freeze()
    waiting = asyncio.ensure_future(stop.wait())
    watched = {waiting} | ({app.intake} if app.intake is not None else set())
    done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
    failed = (
        app.intake in done
        and app.intake is not None
        and not app.intake.cancelled()
        and app.intake.exception()
    )
    if failed:
        log_event(log, "bot.intake_failed", logging.ERROR, error=str(failed))
    waiting.cancel()
    await app.stop()
    return 1 if failed else 0
