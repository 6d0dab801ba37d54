"""The 28-point checklist at the use-case level: answers, notes, files as artifacts of the current item,
pages, the completeness gate on submit, the severe-defect signal, and resuming after a restart. Real SQLite
under tmp_path; the Telegram download is the only edge replaced (by writing the file's bytes)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.services import Services
from circles.sales_ops import checklist
from circles.sales_ops.orders import ActionRefused
from domain.checklist import ITEMS
from domain.statuses import Status
from tests.support.order_world import (
    ADMIN,
    LEADS_CHAT,
    add_manager,
    add_order,
    attach,
    clock_of,
    fake_download,
    fill_checklist,
    make_services,
    rows,
)

M1 = 1001


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    s = await make_services(tmp_path)
    await add_manager(s, "m1", M1)
    await add_manager(s, "m2", 1002)
    await add_order(s, "A-1", status=Status.INSPECTION, manager_id="m1")
    yield s
    await s.db.close()


async def message(services: Services, order_id: str = "A-1", chat_id: int = M1) -> dict:
    found = await rows(
        services,
        "SELECT * FROM tg_messages WHERE chat_id = ? AND ref = ?",
        chat_id,
        f"order:{order_id}:checklist",
    )
    assert found, "no checklist message"
    return found[0]


def buttons(msg: dict) -> list[str]:
    markup = json.loads(msg["markup"]) if msg["markup"] else {"inline_keyboard": []}
    return [b["text"] for row in markup["inline_keyboard"] for b in row]


async def answer(services: Services, item: int, value: str, order_id: str = "A-1") -> None:
    await checklist.answer_item(
        services, order_id, item, value, actor_telegram_id=M1, now=services.clock.now()
    )


async def open_it(services: Services, order_id: str = "A-1", who: int = M1) -> None:
    await checklist.open_checklist(services, order_id, actor_telegram_id=who, now=services.clock.now())


async def refused_photo(services: Services) -> str:
    """M1 sends a photo that the checklist must refuse; the refusal's code."""
    with pytest.raises(ActionRefused) as refused:
        await checklist.attach_file(
            services,
            telegram_id=M1,
            kind="photo",
            file_id="f",
            file_unique_id="u",
            file_name=None,
            fetch=fake_download(),
            now=services.clock.now(),
        )
    return refused.value.code


async def test_the_checklist_is_one_message_paged_by_group(services: Services) -> None:
    await open_it(services)
    first = await message(services)
    assert "Checklist · order A-1" in first["body"] and "page 1/9: Identity" in first["body"]
    assert "1.</b> Frame serial number photographed" in first["body"]
    assert buttons(first)[:4] == ["✅ 1", "❌ 1", "📎 1", "✅ 2"]  # required items have no N/A
    assert buttons(first)[-2:] == ["Next »", "📤 Submit"]

    await checklist.show_page(services, "A-1", 3, actor_telegram_id=M1, now=services.clock.now())
    await answer(services, 13, "na")  # front shifting is optional

    third = await message(services)
    assert third["id"] == first["id"] and third["version"] > first["version"]  # the same message, edited
    assert "page 3/9: Drivetrain" in third["body"] and "➖ <b>13.</b>" in third["body"]
    assert "N/A 13" in buttons(third) and "N/A 12" not in buttons(third)
    assert len(await rows(services, "SELECT * FROM tg_messages")) == 1


async def test_answers_the_checklist_cannot_take_are_refused(services: Services) -> None:
    await open_it(services)
    for item, value, code in (
        (12, "na", "bad_answer"),
        (29, "pass", "bad_answer"),
        (3, "maybe", "bad_answer"),
    ):
        with pytest.raises(ActionRefused) as refused:
            await answer(services, item, value)
        assert refused.value.code == code
    with pytest.raises(ActionRefused) as bad_page:
        await checklist.show_page(services, "A-1", 10, actor_telegram_id=M1, now=services.clock.now())
    assert bad_page.value.code == "bad_page"
    assert await rows(services, "SELECT * FROM checklist_answers") == []


async def test_only_the_orders_manager_or_an_admin_fills_it_and_only_during_inspection(
    services: Services,
) -> None:
    with pytest.raises(ActionRefused) as stranger:
        await open_it(services, who=1002)
    assert stranger.value.code == "forbidden"
    with pytest.raises(ActionRefused) as not_open:
        await answer(services, 1, "pass")
    assert not_open.value.code == "no_checklist"
    await add_order(services, "B-1", status=Status.ACCEPTED, manager_id="m1")
    with pytest.raises(ActionRefused) as early:
        await open_it(services, "B-1")
    assert early.value.code == "checklist_closed"
    await open_it(services, who=ADMIN)
    await checklist.answer_item(services, "A-1", 2, "pass", actor_telegram_id=ADMIN, now=services.clock.now())
    assert [r["answered_by"] for r in await rows(services, "SELECT * FROM checklist_answers")] == [ADMIN]


async def test_a_fail_asks_for_a_note_and_photos_which_go_to_that_item(
    services: Services, tmp_path: Path
) -> None:
    await open_it(services)
    await answer(services, 9, "fail")
    asking = await message(services)
    assert "Send the note for item 9 as your next message" in asking["body"]

    item = await checklist.add_note(
        services, telegram_id=M1, text="  chain stretched 0.75 %  ", is_reply=False, now=services.clock.now()
    )
    await checklist.attach_file(
        services,
        telegram_id=M1,
        kind="photo",
        file_id="file-chain",
        file_unique_id="uniq-chain",
        file_name=None,
        fetch=fake_download(b"JPEG chain"),
        now=services.clock.now(),
    )

    assert item == 9
    stored = await rows(services, "SELECT item, answer, note FROM checklist_answers")
    assert stored == [{"item": 9, "answer": "fail", "note": "chain stretched 0.75 %"}]
    artifact = (await rows(services, "SELECT * FROM artifacts"))[0]
    assert (artifact["item"], artifact["kind"], artifact["file_id"], artifact["file_unique_id"]) == (
        9,
        "photo",
        "file-chain",
        "uniq-chain",
    )
    saved = Path(artifact["local_path"])
    assert await asyncio.to_thread(saved.read_bytes) == b"JPEG chain"
    assert saved.is_relative_to(tmp_path / "artifacts")
    shown = await message(services)
    assert "📝 chain stretched 0.75 %" in shown["body"] and "📎 1" in shown["body"]
    # A text now (no note awaited, not a reply) is not a note.
    assert (
        await checklist.add_note(
            services, telegram_id=M1, text="hi", is_reply=False, now=services.clock.now()
        )
        is None
    )


async def test_a_reply_to_the_checklist_is_a_note_for_the_current_item(services: Services) -> None:
    await open_it(services)
    await answer(services, 5, "pass")
    await checklist.select_item(services, "A-1", 5, actor_telegram_id=M1, now=services.clock.now())
    await checklist.add_note(
        services, telegram_id=M1, text="two chips", is_reply=False, now=services.clock.now()
    )
    await checklist.add_note(
        services, telegram_id=M1, text="two chips, left stay", is_reply=True, now=services.clock.now()
    )
    assert (await rows(services, "SELECT note FROM checklist_answers"))[0]["note"] == "two chips, left stay"
    await checklist.select_item(services, "A-1", 6, actor_telegram_id=M1, now=services.clock.now())
    with pytest.raises(ActionRefused) as unanswered:
        await checklist.add_note(
            services, telegram_id=M1, text="straight", is_reply=False, now=services.clock.now()
        )
    assert unanswered.value.code == "answer_first"


async def test_the_same_file_twice_is_one_artifact_and_a_failed_download_keeps_the_file_id(
    services: Services,
) -> None:
    await open_it(services)

    async def broken(path: Path) -> None:
        raise OSError("connection reset")

    assert await refused_photo(services) == "choose_item"
    await attach(services, M1, 1, "serial")
    await attach(services, M1, 1, "serial")
    await checklist.select_item(services, "A-1", 28, actor_telegram_id=M1, now=services.clock.now())
    kept = await checklist.attach_file(
        services,
        telegram_id=M1,
        kind="document",
        file_id="doc-1",
        file_unique_id="size-chart",
        file_name="size chart.PDF",
        fetch=broken,
        now=services.clock.now(),
    )

    assert kept.item == 28 and kept.new and not kept.saved
    stored = await rows(services, "SELECT item, kind, file_unique_id, local_path FROM artifacts ORDER BY id")
    assert [(r["item"], r["kind"], r["file_unique_id"]) for r in stored] == [
        (1, "photo", "serial"),
        (28, "document", "size-chart"),
    ]
    assert stored[0]["local_path"].endswith("01-serial.jpg") and stored[1]["local_path"] is None


async def test_files_outside_an_open_checklist_are_refused(services: Services) -> None:
    assert await refused_photo(services) == "no_checklist"
    assert await rows(services, "SELECT * FROM artifacts") == []


async def test_submit_is_refused_with_what_is_missing_then_accepted(services: Services) -> None:
    await open_it(services)
    for item in ITEMS:
        if item not in (1, 7, 28):
            await answer(services, item, "pass")
    await answer(services, 7, "fail")  # headset play: needs a note and a photo

    refused = await checklist.submit_checklist(
        services, "A-1", actor_telegram_id=M1, now=services.clock.now()
    )

    assert not refused.accepted
    assert [(m.item, m.reason) for m in refused.missing] == [
        (1, "unanswered"),
        (7, "fail_needs_note"),
        (7, "fail_needs_photo"),
        (28, "unanswered"),
    ]
    shown = await message(services)
    assert "Not ready to submit" in shown["body"]
    assert (
        "1: not answered; 7: a failed item needs a note; 7: a failed item needs a photo; 28: not answered"
        in shown["body"]
    )
    assert (await rows(services, "SELECT status FROM orders WHERE id = 'A-1'"))[0]["status"] == "inspection"

    await answer(services, 1, "pass")
    await answer(services, 28, "pass")
    second = await checklist.submit_checklist(services, "A-1", actor_telegram_id=M1, now=services.clock.now())
    assert [(m.item, m.reason) for m in second.missing] == [
        (1, "photo_required"),
        (7, "fail_needs_note"),
        (7, "fail_needs_photo"),
        (28, "photo_required"),
    ]
    await checklist.select_item(services, "A-1", 7, actor_telegram_id=M1, now=services.clock.now())
    await checklist.add_note(
        services, telegram_id=M1, text="slight play, adjusted", is_reply=False, now=services.clock.now()
    )
    await attach(services, M1, 7, "headset")
    await attach(services, M1, 1, "serial")
    await attach(services, M1, 28, "drive-side")

    done = await checklist.submit_checklist(services, "A-1", actor_telegram_id=M1, now=services.clock.now())

    assert done.accepted and done.order.status is Status.AWAITING_CLIENT
    final = await message(services)
    assert "Submitted" in final["body"] and final["markup"] is None
    writes = await rows(services, "SELECT payload FROM crm_outbox WHERE kind = 'status'")
    assert [json.loads(w["payload"])["status"] for w in writes] == ["awaiting_client"]
    with pytest.raises(ActionRefused) as again:
        await answer(services, 2, "fail")
    assert again.value.code == "checklist_submitted"


async def test_an_ebike_needs_its_battery_report(services: Services) -> None:
    await add_order(services, "E-1", status=Status.INSPECTION, manager_id="m1", is_ebike=True)
    await fill_checklist(services, "E-1", M1)
    with pytest.raises(ActionRefused):
        await answer(services, 25, "na", order_id="E-1")  # N/A is not an option on an e-bike
    result = await checklist.submit_checklist(services, "E-1", actor_telegram_id=M1, now=services.clock.now())
    assert [(m.item, m.reason) for m in result.missing] == [(25, "battery_report_required")]


@pytest.mark.parametrize("item", [4, 6])
async def test_a_frame_or_fork_crack_raises_a_severe_defect_for_the_leads(
    services: Services, item: int
) -> None:
    await open_it(services)
    await answer(services, item, "fail")
    await answer(services, item, "fail")  # answering it again does not raise a second signal

    signals = await rows(services, "SELECT * FROM ai_signals WHERE type = 'quality.severe_defect'")
    assert len(signals) == 1
    assert (signals[0]["order_id"], signals[0]["severity"]) == ("A-1", "high")
    assert json.loads(signals[0]["details"])["item"] == item
    pings = await rows(
        services, "SELECT chat_id FROM tg_messages WHERE ref = ?", f"signal:{signals[0]['id']}"
    )
    assert [p["chat_id"] for p in pings] == [LEADS_CHAT]


async def test_a_pass_on_the_crack_items_raises_nothing(services: Services) -> None:
    await open_it(services)
    await answer(services, 4, "pass")
    await answer(services, 6, "pass")
    assert await rows(services, "SELECT * FROM ai_signals") == []


async def test_leaving_and_a_restart_resume_where_the_manager_was(tmp_path: Path) -> None:
    first = await make_services(tmp_path)
    await add_manager(first, "m1", M1)
    await add_order(first, "A-1", status=Status.INSPECTION, manager_id="m1")
    await checklist.open_checklist(first, "A-1", actor_telegram_id=M1, now=first.clock.now())
    await checklist.answer_item(first, "A-1", 9, "pass", actor_telegram_id=M1, now=first.clock.now())
    await checklist.select_item(first, "A-1", 10, actor_telegram_id=M1, now=first.clock.now())
    before = await message(first)
    await first.db.close()

    second = await make_services(tmp_path)  # the process came back on the same database
    try:
        clock_of(second).set(first.clock.now())
        await checklist.open_checklist(second, "A-1", actor_telegram_id=M1, now=second.clock.now())
        after = await message(second)
        assert "page 3/9: Drivetrain" in after["body"] and "👉 ⬜ <b>10.</b>" in after["body"]
        assert after["id"] == before["id"]  # still the same message
        # A photo sent now still goes to item 10, the item chosen before the restart.
        await checklist.attach_file(
            second,
            telegram_id=M1,
            kind="photo",
            file_id="f10",
            file_unique_id="u10",
            file_name=None,
            fetch=fake_download(),
            now=second.clock.now(),
        )
        assert [r["item"] for r in await rows(second, "SELECT item FROM artifacts")] == [10]
    finally:
        await second.db.close()
