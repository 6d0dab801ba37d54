# mypy: allow-untyped-defs
"""The Bot API emulator, driven by a real aiogram Bot over HTTP: what aiogram sends must be accepted, what the
emulator answers must validate as aiogram's models, and Telegram's rules must fail the way Telegram fails."""

import asyncio
import base64
import struct
import zlib

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from testkit.emulator import BotAPIEmulator, RateLimits, _parse_multipart

USER = 111
GROUP = -500


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def keyboard(*buttons: tuple[str, str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=t, callback_data=d) for t, d in buttons]]
    )


def make_bot(emu: BotAPIEmulator, token: str = "123:ABC") -> Bot:
    return Bot(token=token, session=AiohttpSession(api=TelegramAPIServer.from_base(emu.base_url)))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def emu(clock):
    emulator = BotAPIEmulator(monotonic=clock)
    await emulator.start()
    emulator.add_user(USER, "Anna", language_code="ru", username="anna")
    yield emulator
    await emulator.stop()


@pytest.fixture
async def bot(emu):
    b = make_bot(emu)
    yield b
    await b.session.close()


async def test_get_me(bot, emu):
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.username) == (emu.bot_id, True, "bikewerk_bot")


async def test_sent_message_is_in_the_transcript(bot, emu):
    sent = await bot.send_message(USER, "<b>Order 7</b> is late", parse_mode="HTML")
    assert sent.text == "Order 7 is late"
    assert sent.entities is not None and sent.entities[0].type == "bold"
    assert sent.html_text == "<b>Order 7</b> is late"
    [msg] = emu.transcript(USER)
    assert (msg.message_id, msg.text, msg.raw_text, msg.kind) == (
        sent.message_id,
        sent.text,
        sent.html_text,
        "text",
    )
    assert emu.calls_of("sendMessage")[0]["chat_id"] == USER


async def test_unknown_chat_and_unsupported_html(bot):
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(424242, "hi")
    with pytest.raises(TelegramBadRequest, match='can\'t parse entities: Unsupported start tag "br"'):
        await bot.send_message(USER, "line<br>line", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(USER, "1 < 2", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match=r"Character '\.' is reserved"):
        await bot.send_message(USER, "Done.", parse_mode="MarkdownV2")


async def test_button_press_reaches_the_bot_and_the_answer_is_recorded(bot, emu):
    sent = await bot.send_message(
        USER, "New order", reply_markup=keyboard(("Accept", "o:7:acc"), ("Decline", "o:7:dec"))
    )
    assert emu.buttons(USER) == [("Accept", "o:7:acc"), ("Decline", "o:7:dec")]
    query_id = emu.press(USER, USER, "accept")
    [update] = await bot.get_updates()
    query = update.callback_query
    assert isinstance(query, CallbackQuery)
    assert (query.id, query.data, query.from_user.id) == (query_id, "o:7:acc", USER)
    assert query.chat_instance and isinstance(query.message, Message)
    assert query.message.message_id == sent.message_id
    assert emu.unanswered_callbacks() == [query_id]

    assert await bot.answer_callback_query(query_id, text="Accepted")
    assert emu.callback_answers[query_id] == {
        "text": "Accepted",
        "show_alert": False,
        "url": None,
        "cache_time": None,
    }
    assert emu.unanswered_callbacks() == []
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query_id)
    with pytest.raises(TelegramBadRequest, match="query ID is invalid"):
        await bot.answer_callback_query("999")


async def test_late_callback_answer_is_too_old(bot, emu, clock):
    await bot.send_message(USER, "Card", reply_markup=keyboard(("Ack", "ack")))
    query_id = emu.press(USER, USER, "Ack")
    clock.advance(16)
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query_id)


async def test_press_without_such_button_lists_the_buttons(bot, emu):
    await bot.send_message(USER, "Card", reply_markup=keyboard(("Acknowledge", "a"), ("Resolve", "r")))
    with pytest.raises(LookupError, match="Acknowledge"):
        emu.press(USER, USER, "Reassign")
    with pytest.raises(LookupError, match="no bot message"):
        emu.press_button(USER, USER, 999, "a")


async def test_long_poll_returns_as_soon_as_an_update_arrives(bot, emu):
    loop = asyncio.get_running_loop()
    started = loop.time()
    poll = asyncio.create_task(bot.get_updates(timeout=30))
    await emu.wait_for(lambda: bool(emu.calls_of("getUpdates")))
    assert not poll.done()
    emu.send_text(USER, "/start")
    updates = await asyncio.wait_for(poll, 30)
    assert loop.time() - started < 5
    message = updates[0].message
    assert message is not None and message.text == "/start"
    assert message.entities is not None and message.entities[0].type == "bot_command"


async def test_offset_confirms_updates(bot, emu):
    emu.send_text(USER, "one")
    emu.send_text(USER, "two")
    first = await bot.get_updates()
    assert [u.message.text for u in first if u.message] == ["one", "two"]
    again = await bot.get_updates(offset=first[0].update_id + 1)
    assert [u.message.text for u in again if u.message] == ["two"]
    assert await bot.get_updates(offset=first[1].update_id + 1) == []
    assert emu.pending_updates == []


async def test_edit_changes_the_transcript_and_a_noop_edit_fails(bot, emu):
    sent = await bot.send_message(USER, "Order 7: new", reply_markup=keyboard(("Accept", "acc")))
    await bot.edit_message_text("Order 7: accepted", chat_id=USER, message_id=sent.message_id)
    [msg] = emu.transcript(USER)
    assert (msg.text, msg.edits) == ("Order 7: accepted", 1)
    assert msg.reply_markup is None  # an edit without reply_markup drops the keyboard, as in Telegram
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("Order 7: accepted", chat_id=USER, message_id=sent.message_id)
    await bot.edit_message_reply_markup(
        chat_id=USER, message_id=sent.message_id, reply_markup=keyboard(("Done", "d"))
    )
    assert emu.buttons(USER) == [("Done", "d")]
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=USER, message_id=999)


async def test_deleted_message_leaves_the_transcript(bot, emu):
    sent = await bot.send_message(USER, "temporary")
    assert await bot.delete_message(USER, sent.message_id)
    assert emu.transcript(USER) == [] and emu.last_message(USER) is None
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=USER, message_id=sent.message_id)


async def test_private_chat_flood_limit(bot, emu, clock):
    for i in range(3):  # a short burst is tolerated
        await bot.send_message(USER, f"m{i}")
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(USER, "too fast")
    assert caught.value.retry_after == 1
    assert emu.count_429 == 1
    clock.advance(1.0)
    await bot.send_message(USER, "ok again")
    await bot.edit_message_text("edits are not limited", chat_id=USER, message_id=1)
    assert len(emu.transcript(USER)) == 4


async def test_group_and_global_flood_limits(bot, emu, clock):
    emu.add_group(GROUP, "Leads")
    for i in range(20):
        await bot.send_message(GROUP, f"ping {i}")
        clock.advance(1.0)
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(GROUP, "one too many")
    assert caught.value.retry_after == 40  # the first of the 20 leaves the rolling minute 40 s from now
    clock.advance(40)
    await bot.send_message(GROUP, "fits again")

    clock.advance(1.0)  # a fresh second for the global limit
    for user_id in range(1, 31):
        emu.add_user(user_id)
        await bot.send_message(user_id, "broadcast")
    emu.add_user(31)
    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(31, "31st in one second")
    assert emu.count_429 == 2


async def test_blocked_user(bot, emu):
    emu.block_bot(USER)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(USER, "hello?")
    [update] = await bot.get_updates()
    assert update.my_chat_member is not None
    assert update.my_chat_member.new_chat_member.status == "kicked"
    emu.send_text(USER, "/start")  # writing again unblocks, as in the apps
    await bot.send_message(USER, "welcome back")


async def test_user_who_never_started_the_bot(bot, emu):
    emu.add_user(222, "Boris", started=False)
    with pytest.raises(TelegramForbiddenError, match="can't initiate conversation"):
        await bot.send_message(222, "hi")


async def test_migrated_group(bot, emu):
    emu.add_group(GROUP, "Leads", kind="group")
    new_id = emu.migrate_group(GROUP)
    with pytest.raises(TelegramMigrateToChat) as caught:
        await bot.send_message(GROUP, "ping")
    assert caught.value.migrate_to_chat_id == new_id
    await bot.send_message(new_id, "ping")
    assert emu.last_message(new_id) is not None
    updates = await bot.get_updates()
    assert next(u.message.migrate_to_chat_id for u in updates if u.message) == new_id


async def test_bot_photo_is_stored_and_downloadable(bot, emu):
    data = png(40, 30)
    sent = await bot.send_photo(USER, BufferedInputFile(data, "chart.png"), caption="KPI")
    assert sent.photo is not None and (sent.photo[-1].width, sent.photo[-1].height) == (40, 30)
    [msg] = emu.transcript(USER)
    assert (msg.kind, msg.caption, msg.photo_bytes) == ("photo", "KPI", data)
    assert emu.files[sent.photo[-1].file_id] == data
    file = await bot.get_file(sent.photo[-1].file_id)
    assert file.file_path
    downloaded = await bot.download(sent.photo[-1])
    assert downloaded is not None and downloaded.read() == data
    resent = await bot.send_photo(USER, sent.photo[-1].file_id)  # a file_id is reusable
    assert resent.photo is not None


async def test_user_photo_and_document_reach_the_bot(bot, emu):
    data = png(8, 6)
    emu.send_photo(USER, data, caption="after repair")
    emu.send_document(USER, b"%PDF-1.4 test", "act.pdf")
    photo_update, doc_update = await bot.get_updates()
    assert photo_update.message is not None and photo_update.message.photo
    assert photo_update.message.caption == "after repair"
    assert (await bot.download(photo_update.message.photo[-1])).read() == data
    document = doc_update.message.document
    assert document is not None and (document.file_name, document.mime_type) == ("act.pdf", "application/pdf")
    assert (await bot.download(document)).read() == b"%PDF-1.4 test"


async def test_bot_document(bot, emu):
    sent = await bot.send_document(USER, BufferedInputFile(b"a;b\n1;2\n", "report.csv"), caption="Report")
    assert sent.document is not None and sent.document.file_name == "report.csv"
    [msg] = emu.transcript(USER)
    assert (msg.kind, msg.document_bytes, msg.file_name) == ("document", b"a;b\n1;2\n", "report.csv")


async def test_text_limits(bot, emu):
    await bot.send_message(USER, "x" * 4096)
    await bot.send_message(USER, "<b>" + "y" * 4096 + "</b>", parse_mode="HTML")  # tags do not count
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(USER, "x" * 4097)
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(USER, "<b> </b>", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="message caption is too long"):
        await bot.send_photo(USER, BufferedInputFile(png(1, 1), "p.png"), caption="c" * 1025)


async def test_callback_data_over_64_bytes_is_rejected(bot):
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(USER, "x", reply_markup=keyboard(("Go", "d" * 65)))
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(USER, "x", reply_markup=keyboard(("Go", "я" * 33)))  # 66 bytes in UTF-8
    await bot.send_message(USER, "x", reply_markup=keyboard(("Go", "d" * 64)))


async def test_injected_errors(bot, emu):
    emu.inject_error(
        "sendMessage", error_code=429, description="Too Many Requests: retry after 7", retry_after=7
    )
    emu.inject_error("sendMessage", error_code=500, description="Internal Server Error", chat_id=USER)
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(USER, "a")
    assert caught.value.retry_after == 7 and emu.count_429 == 1
    with pytest.raises(TelegramServerError):
        await bot.send_message(USER, "b")
    await bot.send_message(USER, "c")
    assert [m.text for m in emu.transcript(USER)] == ["c"]


async def test_commands(bot, emu):
    await bot.set_my_commands([BotCommand(command="my", description="My orders")], language_code="en")
    assert [c.command for c in await bot.get_my_commands(language_code="en")] == ["my"]
    assert emu.my_commands(language_code="en") == [{"command": "my", "description": "My orders"}]
    assert await bot.get_my_commands() == []
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Shift", description="x")])
    assert await bot.delete_my_commands(language_code="en")
    assert emu.my_commands(language_code="en") == []


async def test_group_privacy_mode(bot, emu):
    emu.add_group(GROUP, "Admins")
    emu.send_text(USER, "chatter", chat_id=GROUP)
    emu.send_text(USER, "/signals", chat_id=GROUP)
    emu.send_text(USER, "/help@other_bot", chat_id=GROUP)
    updates = await bot.get_updates()
    assert [u.message.text for u in updates if u.message] == ["/signals"]
    chat = await bot.get_chat(GROUP)
    assert (chat.type, chat.title) == ("supergroup", "Admins")


async def test_unknown_method_and_token_check(emu):
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{emu.base_url}/bot123:ABC/sendTelepathy") as resp,
    ):
        assert resp.status == 404
        assert await resp.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
    strict = BotAPIEmulator(token_check=True)
    await strict.start()
    wrong, right = make_bot(strict), strict.make_bot()
    try:
        with pytest.raises(TelegramUnauthorizedError):
            await wrong.get_me()
        assert (await right.get_me()).id == right.id == strict.bot_id
    finally:
        await wrong.session.close()
        await right.session.close()
        await strict.stop()


async def test_wait_for_explains_a_timeout(emu):
    with pytest.raises(TimeoutError, match="is the bot polling"):
        emu.send_text(USER, "anyone?")
        await emu.wait_for(lambda: emu.last_message(USER) is not None, timeout=0.05)


async def test_control_http_api(bot, emu):
    async with aiohttp.ClientSession(base_url=emu.base_url) as http:

        async def post(action: str, body: dict) -> object:
            async with http.post(f"/control/{action}", json=body) as resp:
                payload = await resp.json()
                assert payload["ok"], payload
                return payload["result"]

        await post("users", {"user_id": 5, "first_name": "Vera"})
        await post("text", {"user_id": 5, "text": "/my"})
        await post("photo", {"user_id": 5, "data": base64.b64encode(png(2, 2)).decode()})
        updates = await bot.get_updates()
        assert updates[0].message.text == "/my" and updates[1].message.photo
        await bot.send_message(5, "Your orders", reply_markup=keyboard(("Order 1", "o:1")))
        query_id = await post("press", {"user_id": 5, "chat_id": 5, "text_contains": "Order 1"})
        assert query_id in emu.unanswered_callbacks()
        async with http.get("/control/transcript/5") as resp:
            transcript = (await resp.json())["result"]
        assert [m["text"] for m in transcript] == ["Your orders"]
        async with http.post(
            "/control/press", json={"user_id": 5, "chat_id": 5, "text_contains": "nope"}
        ) as resp:
            assert resp.status == 400 and "Order 1" in (await resp.json())["description"]
        await post("block", {"user_id": 5})
        with pytest.raises(TelegramForbiddenError):
            await bot.send_message(5, "blocked")
        await post("groups", {"chat_id": -7, "title": "Old", "kind": "group"})
        new_id = await post("migrate", {"chat_id": -7})
        with pytest.raises(TelegramMigrateToChat):
            await bot.send_message(-7, "x")
        await post("errors", {"method": "sendMessage", "error_code": 502, "description": "Bad Gateway"})
        with pytest.raises(TelegramServerError):
            await bot.send_message(new_id, "x")


def echo_router() -> Router:
    router = Router()

    @router.message(F.text)
    async def echo(message: Message) -> None:
        await message.answer(f"echo: {message.text}", reply_markup=keyboard(("Again", "again")))

    @router.callback_query(F.data == "again")
    async def again(query: CallbackQuery) -> None:
        await query.answer("pressed")

    return router


async def test_dispatcher_polling_end_to_end(bot, emu):
    dp = Dispatcher()
    dp.include_router(echo_router())
    polling = asyncio.create_task(dp.start_polling(bot, handle_signals=False, polling_timeout=5))
    try:
        emu.send_text(USER, "hello")
        await emu.wait_for(lambda: [m.text for m in emu.transcript(USER)] == ["echo: hello"])
        query_id = emu.press(USER, USER, "Again")
        await emu.wait_for(lambda: query_id in emu.callback_answers)
        assert emu.callback_answers[query_id]["text"] == "pressed"
        # The bot confirms a batch with its next getUpdates offset; wait for that before stopping.
        await emu.wait_for(lambda: not emu.pending_updates)
    finally:
        await dp.stop_polling()
        await polling


async def _serve_webhook(dp: Dispatcher, bot: Bot, **handler_kwargs) -> tuple[web.AppRunner, str]:
    app = web.Application()
    SimpleRequestHandler(dispatcher=dp, bot=bot, **handler_kwargs).register(app, path="/tg")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}/tg"


async def test_webhook_delivery_with_secret_token(bot, emu):
    dp = Dispatcher()
    dp.include_router(echo_router())
    runner, url = await _serve_webhook(dp, bot, secret_token="s3cret")
    try:
        await bot.set_webhook(url, secret_token="s3cret")
        emu.send_text(USER, "via webhook")
        await emu.wait_for(lambda: emu.last_message(USER) is not None)
        assert emu.last_message(USER).text == "echo: via webhook"
        with pytest.raises(TelegramConflictError):
            await bot.get_updates()

        await bot.set_webhook(url, secret_token="wrong")  # the bot's handler now answers 401
        emu.send_text(USER, "lost")
        await emu.wait_for(lambda: emu._webhook_error is not None)
        info = await bot.get_webhook_info()
        assert info.pending_update_count == 1 and "401" in (info.last_error_message or "")
        await bot.delete_webhook(drop_pending_updates=True)
        assert emu.pending_updates == []
    finally:
        await runner.cleanup()


async def test_webhook_reply_carries_a_method_call(bot, emu):
    router = Router()

    @router.message()
    async def reply_in_response(message: Message) -> object:
        return message.answer("answered in the webhook response")

    dp = Dispatcher()
    dp.include_router(router)
    runner, url = await _serve_webhook(dp, bot, handle_in_background=False)
    try:
        await bot.set_webhook(url)
        emu.send_text(USER, "hi")
        await emu.wait_for(lambda: emu.last_message(USER) is not None)
        assert emu.last_message(USER).text == "answered in the webhook response"
    finally:
        await runner.cleanup()


async def test_a_second_poller_terminates_the_first(bot, emu):
    first = asyncio.create_task(bot.get_updates(timeout=30))
    await emu.wait_for(lambda: len(emu.calls_of("getUpdates")) == 1)
    second = asyncio.create_task(bot.get_updates(timeout=30))
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
        await asyncio.wait_for(first, 30)
    emu.send_text(USER, "x")
    assert len(await asyncio.wait_for(second, 30)) == 1


def test_multipart_reply_keeps_binary_content_intact():
    data = b"\x00\xffbinary\r\n"
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="method"\r\n\r\nsendPhoto\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="photo"; filename="p.jpg"\r\n\r\n' + data + b"\r\n"
        b"--XyZ--\r\n"
    )
    fields = _parse_multipart(body, "multipart/form-data; boundary=XyZ")
    assert fields["method"] == "sendPhoto"
    assert fields["photo"].data == data and fields["photo"].filename == "p.jpg"


async def test_limits_can_be_disabled(clock):
    async with BotAPIEmulator(monotonic=clock, rate_limits=RateLimits(enabled=False)) as emulator:
        emulator.add_user(1)
        b = emulator.make_bot()
        try:
            for i in range(10):
                await b.send_message(1, str(i))
        finally:
            await b.session.close()
        assert emulator.count_429 == 0 and len(emulator.transcript(1)) == 10
