"""GET /chat: the web chat page in the person's language.

The language is the contact's (their choice, kept on the contact) when the identity cookie names a
known person, else the browser's Accept-Language (a proposal only), else French. The page's words
travel as JSON in the body's data-words attribute (the Content-Security-Policy forbids inline
script), each in the page's language (French where a translation lacks one).
"""

from __future__ import annotations

from fastapi import Request
from sqlalchemy import select

from conversations.models import Address, Contact
from conversations.webchat_identity import identity_of
from words.catalogue import SOURCE, direction, language_of, negotiate, room

WORDS = room(__file__)


async def contact_locale(request: Request) -> str | None:
    """The language kept on the contact of the request's web chat identity, if any."""
    external_id = await identity_of(request)
    if external_id is None:
        return None
    async with request.app.state.rt.sessionmaker() as session:
        return (await session.execute(select(Contact.locale).join(Address, Address.contact_id == Contact.id).where(
            Address.channel == "webchat", Address.external_id == external_id))).scalar()


async def locale_for(request: Request) -> str:
    known = await contact_locale(request)
    if known:
        return language_of(known)
    return negotiate(request.headers.get("accept-language")) or SOURCE


def words_for(locale: str) -> dict:
    """Every page word in `locale` (French where that language lacks one), by dotted key."""
    return {key: WORDS.text(key, locale) for key in WORDS.keys()}


async def page(request: Request):
    locale = await locale_for(request)
    words = words_for(locale)
    return request.app.state.templates.TemplateResponse(request, "webchat.html", {
        "locale": locale, "dir": direction(locale), "words": words,
        "page_words": {"locale": locale, "dir": direction(locale), "words": words},
    })
