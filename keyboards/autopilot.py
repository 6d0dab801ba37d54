"""Texts of the Phase 4 autopilot: action names and the owner's notice when an action goes back to people."""

from __future__ import annotations

from bot.i18n import _, ngettext


def action_label(action: str) -> str:
    labels = {
        "reassign_on_accept_timeout": _("Reassign when an offer is not accepted in time"),
        "remind": _("Remind the step's owner"),
        "reoffer_after_decline": _("Offer again after a decline"),
        "rescreen_after_list_update": _("Screen again after a list update"),
    }
    return labels.get(action, action)


def switched_back_text(action: str, bad: int, judged: int) -> str:
    runs = ngettext(
        "{bad} of {judged} automatic run did not help",
        "{bad} of {judged} automatic runs did not help",
        judged,
    ).format(bad=bad, judged=judged)
    return _(
        "🤖 Autopilot: «{action}» now asks a person first — {runs} over the last weeks. "
        "An admin can turn it back on after a look at the decision log."
    ).format(action=action_label(action), runs=runs)
