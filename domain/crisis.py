"""The crisis protocol's policy (SPEC §12, issue 12): when agents raise a critical signal by themselves, the
playbook (first steps per kind of crisis), and which severities still ask for a postmortem when the system
resolves a signal because its condition cleared. Read from the `[crisis]` table of the policy file.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SeverityName = Literal[
    "critical", "high", "medium", "low"
]  # domain.policy.Severity (that module imports this)

# Per kind (signal type) and language: the first steps, as the crisis chat reads them.
DEFAULT_PLAYBOOKS: dict[str, dict[str, list[str]]] = {
    "crisis.manual": {
        "en": [
            "Acknowledge in the crisis chat and name who leads the response.",
            "Write down what is known: which orders, which clients, since when.",
            "Tell the affected clients before they ask and say when the next update comes.",
        ],
        "ru": [
            "Подтвердите в кризисном чате и назовите, кто ведёт разбор.",
            "Запишите, что известно: какие заказы, какие клиенты, с какого времени.",
            "Предупредите затронутых клиентов, не дожидаясь вопросов, и скажите, "
            "когда будет следующая новость.",
        ],
    },
    "crisis.breach_storm": {
        "en": [
            "Open /signals high and see which status and which managers the breaches share.",
            "Move waiting orders to free managers (/reassign ORDER MANAGER) or ask for a bulk reassignment.",
            "Check that the CRM and the bot are both up (sync errors, /healthz).",
        ],
        "ru": [
            "Откройте список сигналов (/signals) и посмотрите, на каком статусе и у каких менеджеров "
            "просрочки.",
            "Передайте ждущие заказы свободным менеджерам (/reassign ЗАКАЗ МЕНЕДЖЕР) "
            "или запросите массовую передачу.",
            "Проверьте, что CRM и бот работают (ошибки синхронизации, /healthz).",
        ],
    },
    "crisis.crm_unreachable": {
        "en": [
            "Open the CRM in a browser; call its hosting if it is down.",
            "Tell the managers to keep working in the bot: its writes wait and reach the CRM later.",
            "Do not change orders in the CRM by hand until the sync is back.",
        ],
        "ru": [
            "Откройте CRM в браузере; если она лежит, звоните хостингу.",
            "Скажите менеджерам работать в боте дальше: записи подождут и дойдут до CRM позже.",
            "Не меняйте заказы в CRM вручную, пока синхронизация не вернётся.",
        ],
    },
    "crisis.paid_defect": {
        "en": [
            "Stop the shipment: the bike must not leave for the client.",
            "Call the client today: explain and offer a refund or a compensation (an admin approves it).",
            "Ask the seller for an explanation and keep the photos of the defect.",
        ],
        "ru": [
            "Остановите отправку: велосипед не должен уехать к клиенту.",
            "Позвоните клиенту сегодня: объясните и предложите возврат или компенсацию (её одобряет админ).",
            "Запросите объяснение у продавца и сохраните фото дефекта.",
        ],
    },
}


_CLEARED_POSTMORTEM: tuple[SeverityName, ...] = ("critical",)


class CrisisPolicy(BaseModel):
    """`[crisis]` in the policy file. Defaults are the values documented in policy.toml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # This many SLA breaches raised within `breach_window_minutes` raise crisis.breach_storm (0: never).
    breach_storm_count: int = Field(default=5, ge=0)
    breach_window_minutes: int = Field(default=60, gt=0)
    # The CRM unreachable (every sync failing) for this many minutes raises crisis.crm_unreachable (0: never).
    crm_unreachable_minutes: int = Field(default=15, ge=0)
    # A severe defect found on an order the client has already paid raises crisis.paid_defect.
    paid_defect: bool = True
    # Signals the system resolves because their condition cleared still ask for a postmortem at these
    # severities (a person resolving asks at critical and high, SPEC §6).
    postmortem_when_cleared: list[SeverityName] = Field(default_factory=lambda: list(_CLEARED_POSTMORTEM))
    # The first steps per crisis kind (signal type), shown on the ping.
    playbooks: dict[str, dict[str, list[str]]] = Field(
        default_factory=lambda: {kind: dict(steps) for kind, steps in DEFAULT_PLAYBOOKS.items()}
    )


def playbook_for(policy: CrisisPolicy, signal_type: str, lang: str) -> list[str]:
    """The first steps for a crisis kind in `lang` (else English); a kind without its own playbook gets the
    manual one."""
    steps = (
        policy.playbooks.get(signal_type)
        or DEFAULT_PLAYBOOKS.get(signal_type)
        or policy.playbooks.get("crisis.manual")
        or DEFAULT_PLAYBOOKS["crisis.manual"]
    )
    return steps.get(lang) or steps.get("en") or []


def breach_storm(policy: CrisisPolicy, breaches_in_window: int) -> bool:
    return policy.breach_storm_count > 0 and breaches_in_window >= policy.breach_storm_count


def crm_unreachable(policy: CrisisPolicy, failing_since: datetime | None, now: datetime) -> bool:
    """Whether every sync since `failing_since` failed for long enough to call it a crisis."""
    if policy.crm_unreachable_minutes == 0 or failing_since is None:
        return False
    return now - failing_since >= timedelta(minutes=policy.crm_unreachable_minutes)
