"""The 28-point inspection checklist as data (SPEC §4) and its completeness gate.

The item texts live here in both languages, not in the gettext catalogs, because the items are data: numbers,
groups and rules must never drift apart between languages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

Answer = Literal["pass", "fail", "na"]
MissingReason = Literal[
    "unanswered",
    "na_not_allowed",
    "fail_needs_note",
    "fail_needs_photo",
    "photo_required",
    "battery_report_required",
]

ANSWERS: frozenset[str] = frozenset(get_args(Answer))
BATTERY_REPORT_ITEM = 25
SEVERE_DEFECT_ITEMS: frozenset[int] = frozenset({4, 6})  # frame or fork crack -> quality.severe_defect


@dataclass(frozen=True)
class ChecklistItem:
    number: int
    group: int
    optional: bool  # N/A allowed; e-bike items lose this on an e-bike (see allows_na)
    text_en: str
    text_ru: str
    photo_required: bool = False
    ebike_only: bool = False

    def allows_na(self, *, is_ebike: bool) -> bool:
        return self.optional and not (self.ebike_only and is_ebike)


@dataclass(frozen=True)
class ChecklistGroup:
    number: int
    title_en: str
    title_ru: str
    items: tuple[ChecklistItem, ...]


@dataclass(frozen=True)
class ItemAnswer:
    answer: Answer
    note: str | None = None
    photos: int = 0  # photos and documents attached to this item


@dataclass(frozen=True)
class Missing:
    item: int
    reason: MissingReason


class ChecklistError(ValueError):
    """An answer the checklist cannot take: unknown item or answer, or N/A on a required item."""

    def __init__(self, item: int, reason: str, message: str) -> None:
        self.item = item
        self.reason = reason
        super().__init__(message)


_OPTIONAL = frozenset({13, 22, 23, 24, 25, 26})
_PHOTO_REQUIRED = frozenset({1, 28})
_EBIKE_ONLY = frozenset({25, 26})

# (title_en, title_ru, ((number, text_en, text_ru), ...)) in SPEC §4 order.
_TABLE: tuple[tuple[str, str, tuple[tuple[int, str, str], ...]], ...] = (
    (
        "Identity",
        "Идентификация",
        (
            (
                1,
                "Frame serial number photographed and matches the documents",
                "Серийный номер рамы сфотографирован и совпадает с документами",
            ),
            (2, "Proof of purchase or ownership", "Есть подтверждение покупки или права собственности"),
            (3, "Seller identity verified", "Личность продавца подтверждена"),
        ),
    ),
    (
        "Frame & fork",
        "Рама и вилка",
        (
            (
                4,
                "No cracks on the frame (welds, bottom bracket, head tube, dropouts)",
                "На раме нет трещин (сварные швы, каретка, рулевой стакан, дропауты)",
            ),
            (5, "Dents and paint damage graded", "Вмятины и сколы краски оценены"),
            (6, "Fork straight, no cracks", "Вилка ровная, без трещин"),
            (7, "Headset has no play", "Рулевая колонка без люфта"),
            (8, "Bottom bracket has no play or noise", "Каретка без люфта и посторонних звуков"),
        ),
    ),
    (
        "Drivetrain",
        "Трансмиссия",
        (
            (9, "Chain wear measured", "Износ цепи измерен"),
            (10, "Cassette wear checked", "Износ кассеты проверен"),
            (11, "Chainring wear checked", "Износ звёзд системы проверен"),
            (12, "Rear derailleur and hanger aligned", "Задний переключатель и петух выровнены"),
            (13, "Front shifting works cleanly", "Передний переключатель работает чётко"),
            (14, "Cranks and pedals secure", "Шатуны и педали надёжно затянуты"),
        ),
    ),
    (
        "Brakes",
        "Тормоза",
        (
            (15, "Brake pads thick enough", "Тормозные колодки достаточной толщины"),
            (
                16,
                "Rotors or rims: wear within limits, running true",
                "Роторы или обода: износ в норме, без биения",
            ),
            (
                17,
                "Levers and hoses: no leaks, firm bite",
                "Тормозные ручки и гидролинии без подтёков, торможение уверенное",
            ),
        ),
    ),
    (
        "Wheels & tyres",
        "Колёса и покрышки",
        (
            (18, "Wheels true, even spoke tension", "Колёса без восьмёрок, натяжение спиц равномерное"),
            (19, "Hub bearings run smoothly without play", "Подшипники втулок крутятся плавно, без люфта"),
            (
                20,
                "Tyres, sidewalls, tubes or sealant in good order",
                "Покрышки, боковины, камеры или герметик в порядке",
            ),
        ),
    ),
    (
        "Cockpit",
        "Руль и посадка",
        (
            (
                21,
                "Bar and stem undamaged and torqued",
                "Руль и вынос без повреждений, затянуты с нужным моментом",
            ),
            (
                22,
                "Seatpost and saddle secure, dropper post works",
                "Подседельный штырь и седло надёжно закреплены, дроппер работает",
            ),
        ),
    ),
    (
        "Suspension",
        "Подвеска",
        (
            (23, "Fork stanchions, seals and service history", "Вилка: ноги, сальники, история обслуживания"),
            (24, "Rear shock, pivots and bearings", "Задний амортизатор, шарниры и подшипники подвески"),
        ),
    ),
    (
        "E-bike",
        "Электровелосипед",
        (
            (25, "Battery health report", "Отчёт о состоянии батареи"),
            (26, "Motor and display show no error codes", "Мотор и дисплей без кодов ошибок"),
        ),
    ),
    (
        "Overall",
        "Общая проверка",
        (
            (
                27,
                "Test ride: no noises, shifting and braking work under load",
                "Тестовая поездка: без посторонних звуков, переключение и торможение под нагрузкой в норме",
            ),
            (
                28,
                "Full photo set (drive side, non-drive side, defects) and size confirmed",
                "Полный комплект фото (с обеих сторон, все дефекты), размер рамы подтверждён",
            ),
        ),
    ),
)

GROUPS: tuple[ChecklistGroup, ...] = tuple(
    ChecklistGroup(
        group,
        title_en,
        title_ru,
        tuple(
            ChecklistItem(
                number,
                group,
                optional=number in _OPTIONAL,
                text_en=text_en,
                text_ru=text_ru,
                photo_required=number in _PHOTO_REQUIRED,
                ebike_only=number in _EBIKE_ONLY,
            )
            for number, text_en, text_ru in rows
        ),
    )
    for group, (title_en, title_ru, rows) in enumerate(_TABLE, start=1)
)
ITEMS: dict[int, ChecklistItem] = {item.number: item for group in GROUPS for item in group.items}


def _item(number: int) -> ChecklistItem:
    try:
        return ITEMS[number]
    except KeyError:
        raise ChecklistError(number, "unknown_item", f"checklist has no item {number}") from None


def validate_answer(item: int, answer: str, *, is_ebike: bool) -> None:
    """Refuse an answer the checklist cannot take, before it is stored."""
    entry = _item(item)
    if answer not in ANSWERS:
        raise ChecklistError(item, "unknown_answer", f"item {item}: unknown answer {answer!r}")
    if answer == "na" and not entry.allows_na(is_ebike=is_ebike):
        raise ChecklistError(item, "na_not_allowed", f"item {item} is required and cannot be N/A")


def _photo_gap(entry: ChecklistItem, answer: ItemAnswer, *, is_ebike: bool) -> MissingReason | None:
    # One reason per item: the most specific rule that asks for a photo (or document) wins.
    if answer.photos > 0 or answer.answer == "na":
        return None
    if answer.answer == "fail":
        return "fail_needs_photo"
    if entry.photo_required:
        return "photo_required"
    if entry.number == BATTERY_REPORT_ITEM and is_ebike:
        return "battery_report_required"
    return None


def missing_for_submit(answers: Mapping[int, ItemAnswer], *, is_ebike: bool) -> list[Missing]:
    """Everything that keeps the checklist from being returned, in item order; empty means complete."""
    unknown = sorted(set(answers) - ITEMS.keys())
    if unknown:
        raise ChecklistError(unknown[0], "unknown_item", f"checklist has no item {unknown[0]}")
    missing: list[Missing] = []
    for number, entry in ITEMS.items():
        answer = answers.get(number)
        if answer is None:
            missing.append(Missing(number, "unanswered"))
            continue
        if answer.answer == "na" and not entry.allows_na(is_ebike=is_ebike):
            missing.append(Missing(number, "na_not_allowed"))
        if answer.answer == "fail" and not (answer.note and answer.note.strip()):
            missing.append(Missing(number, "fail_needs_note"))
        gap = _photo_gap(entry, answer, is_ebike=is_ebike)
        if gap is not None:
            missing.append(Missing(number, gap))
    return missing


def is_complete(answers: Mapping[int, ItemAnswer], *, is_ebike: bool) -> bool:
    return not missing_for_submit(answers, is_ebike=is_ebike)


def severe_defects(answers: Mapping[int, ItemAnswer]) -> list[int]:
    """Items failed with a frame or fork crack: each raises `quality.severe_defect`."""
    return sorted(n for n in SEVERE_DEFECT_ITEMS if (a := answers.get(n)) is not None and a.answer == "fail")
