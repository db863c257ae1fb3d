"""A campaign's test to oneself: the admin sends the campaign's message to their own address (a
Telegram chat id, a WhatsApp number) before launching it.

Straight through the channel's adapter, not the outbox: no contact, conversation or message row is
made, so a test is never counted in the campaign's figures and never reaches a contact. It still
goes through the send pacer (outreach/pacing.py) as a reply: it counts toward the bot's limits. The
console's audit log records it (channel, the address's last two digits, the outcome), never the
whole address.
"""

from __future__ import annotations

import dataclasses
import re

from bots.base import DeliveryError
from outreach.campaigns import channels_of, outbound_for
from outreach.pacing import REPLY, pacer_of

ADDRESS = {"telegram": re.compile(r"^-?\d{1,20}$"), "whatsapp": re.compile(r"^\d{6,15}$")}
TESTABLE = tuple(ADDRESS)


class TestSendRefused(ValueError):
    """What the admin reads (French): why the test cannot go."""


def check(rt, campaign, channel: str, address: str) -> str:
    """The address to send to, normalised; TestSendRefused with the reason otherwise."""
    if channel not in TESTABLE:
        raise TestSendRefused("Envoi test : choisissez Telegram ou WhatsApp.")
    if channel not in channels_of(campaign):
        raise TestSendRefused("Envoi test : la campagne n'a pas encore de message pour cette messagerie.")
    if rt.channels.get(channel) is None:
        raise TestSendRefused("Envoi test : cette messagerie n'est pas configurée.")
    cleaned = re.sub(r"[\s.+()-]", "", address) if channel == "whatsapp" else address.strip()
    if not ADDRESS[channel].match(cleaned):
        raise TestSendRefused("Envoi test : identifiant de discussion Telegram (des chiffres) ou numéro WhatsApp "
                              "au format international, sans le + (par exemple 33612345678).")
    return cleaned


async def send_test(rt, campaign, channel: str, address: str) -> str | None:
    """Send it; returns None when it went, else the platform's reason (short, for the page)."""
    outbound, extra = outbound_for(campaign, channel)
    if extra.get("campaign_template"):  # the approved template, as the campaign itself sends it
        outbound = dataclasses.replace(outbound, template=extra["campaign_template"]["name"],
                                       template_params=tuple(extra["campaign_template"]["params"]))
    adapter = rt.channels[channel]
    await pacer_of(rt).acquire(channel, None, address, REPLY)
    try:
        await adapter.send(address, outbound)
    except DeliveryError as failure:
        return failure.reason[:200]
    return None


def masked(address: str) -> str:
    return "…" + address[-2:]
