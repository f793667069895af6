"""The matching rules of spec/README.md, and the folding used by search.

Every comparison in the directory goes through a *key*: a value is stored as the
client sent it, and beside it the key that comparisons use. Both backends compare
keys with plain equality, so they give the same answers.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import TypeVar

import phonenumbers

_NON_DIGITS = re.compile(r"\D+")
_WHITESPACE = re.compile(r"\s+")

#: Separates the fields of a search text. White space, so no search term (terms
#: are split on white space) can match across the end of one field and the start
#: of the next.
SEARCH_FIELD_SEPARATOR = "\n"


def email_key(email: str | None) -> str | None:
    """The whole address, NFC-normalised and case-folded (``Ann.Lee@Example.COM``)."""
    if email is None:
        return None
    return _fold_key(email)


def name_key(name: str | None) -> str | None:
    """NFC-normalised and case-folded: ``SMITH`` equals ``Smith``, ``Zoë`` differs from ``Zoe``."""
    if name is None:
        return None
    return _fold_key(name)


def _fold_key(value: str) -> str | None:
    value = value.strip()
    # ASCII is its own NFC form and case-folds as lower(): the same key, faster.
    key = value.lower() if value.isascii() else unicodedata.normalize("NFC", value).casefold()
    return key or None


def phone_key(phone: str | None, default_region: str) -> str | None:
    """E.164 when the number parses as a possible number, else the digits alone.

    ``01234 567890``, ``+44 1234 567890`` and ``+441234567890`` (region GB) all give
    ``+441234567890``. A value with no digits at all has no key.
    """
    if phone is None:
        return None
    return _phone_key(phone.strip(), default_region)


#: Large enough to hold every number of a few import batches: parsing is the
#: costliest step of deriving a person's keys, and a batch asks for each several times.
@lru_cache(maxsize=65536)
def _phone_key(phone: str, default_region: str) -> str | None:
    try:
        parsed = phonenumbers.parse(phone, default_region)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is not None and phonenumbers.is_possible_number(parsed):
        return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))
    digits = _NON_DIGITS.sub("", phone)
    return digits or None


def search_fold(text: str) -> str:
    """Accents removed, case folded and compatibility forms unified: ``César`` ->
    ``cesar``, ``Straße`` -> ``strasse``, ``ﬁ`` -> ``fi``.

    The result stays decomposed (NFKD): a Hangul syllable is its jamo, and a two-part
    vowel sign its two parts. Nothing is joined back, so a text's fold is its characters'
    folds one after the other: a value that holds a term as written holds the term's
    fold in its own, however either was composed (``ㄴ`` and ``내``, typed on the way to
    ``낸``, find it). Until migration 0015 the fold recomposed (NFKC), and a term cut
    inside a decomposed syllable was no part of any fold.
    """
    if text.isascii():
        return text.lower()  # what the steps below give for ASCII, without them
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unicodedata.normalize("NFKD", stripped.casefold())


def search_terms(search: str | None) -> list[str]:
    """The folded terms of a search string; empty for no search or only blanks.

    Terms are split on white space before and after folding, so a character that
    folds into white space still separates terms. Repeated terms are kept once.
    """
    if not search:
        return []
    terms: list[str] = []
    for raw in _WHITESPACE.split(search.strip()):
        for term in _WHITESPACE.split(search_fold(raw)):
            if term and term not in terms:
                terms.append(term)
    return terms


_T = TypeVar("_T")


def matching(items: Iterable[_T], search: str | None, text: Callable[[_T], str]) -> list[_T]:
    """The items whose ``text`` holds every term of ``search``, accents and case ignored
    as in the People API's search (every item, for no search): a short list searched by
    name in memory, such as an account's teams or a client's accounts."""
    terms = search_terms(search)
    if not terms:
        return list(items)
    return [item for item in items if all(term in search_fold(text(item)) for term in terms)]


def search_text(texts: Iterable[str | None], phones: Iterable[str | None], region: str) -> str:
    """The folded text a search looks in, one line per field.

    Names, emails and employee numbers are folded as they are. A phone number is
    there as sent, as its digits alone and in E.164, so ``7700900123`` and
    ``+447700900123`` both find ``07700 900123``. The whole text is decomposed (NFKD)
    as every folded term is, the digits of a number too (fullwidth ones become ASCII).
    """
    parts = [search_fold(value) for value in texts if value]
    for phone in phones:
        if not phone:
            continue
        forms = [search_fold(phone), _NON_DIGITS.sub("", phone), phone_key(phone, region) or ""]
        parts.extend(dict.fromkeys(form for form in forms if form))
    text = SEARCH_FIELD_SEPARATOR.join(parts)
    return text if text.isascii() else unicodedata.normalize("NFKD", text)
