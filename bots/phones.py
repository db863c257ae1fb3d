"""French phone numbers as a person taps them: `tel:` links (E.164) and the digits shown in text.

`tel_url("04 78 12 34 56")` -> "tel:+33478123456"; `tel_url("115")` -> "tel:115" (a short national
number stays short); `display("tel:+33478123456")` -> "+33 4 78 12 34 56", the form Telegram and
WhatsApp make tappable in a text. Anything that is not a phone number gives None: never raises.
"""

from __future__ import annotations

import re

# Overseas départements dial a 10-digit national number whose prefix names the country code.
_OVERSEAS = {
    "0590": "590", "0690": "590", "0591": "590", "0691": "590",  # Guadeloupe, Saint-Martin, Saint-Barthélemy
    "0594": "594", "0694": "594",  # Guyane
    "0596": "596", "0696": "596", "0697": "596",  # Martinique
    "0262": "262", "0263": "262", "0692": "262", "0693": "262",  # La Réunion
    "0269": "262", "0639": "262",  # Mayotte
}  # fmt: skip
_SHORT = re.compile(r"\d{2,6}")  # 15, 115, 3919, 116117, 3237
MAX_INPUT = 64


def e164(number: str | None) -> str | None:
    """A French number in E.164 ("+33478123456"), a short number as is ("115"), or None."""
    if not isinstance(number, str) or not number.strip() or len(number) > MAX_INPUT:
        return None
    text = number.strip().replace("(0)", "")
    if re.search(r"[^\d\s.+\-()/\u00a0\u202f]", text):
        return None  # letters, "ext.", two numbers with a word between them: not one number
    plus = text.startswith("+")
    digits = re.sub(r"\D", "", text)
    if plus or digits.startswith("00"):
        digits = digits[2:] if digits.startswith("00") else digits
        if not 8 <= len(digits) <= 15 or digits.startswith("0"):
            return None
        if digits.startswith("33") and len(digits) != 11:
            return None
        return "+" + digits
    if len(digits) == 10 and digits.startswith("0") and digits[1] != "0":
        return f"+{_OVERSEAS.get(digits[:4], '33')}{digits[1:]}"  # 0690 12 34 56 -> +590 690 12 34 56
    if _SHORT.fullmatch(digits) and not digits.startswith("0"):
        return digits
    return None


def tel_url(number: str | None) -> str | None:
    """"tel:+33478123456" for a number a person can call, or None."""
    found = e164(number)
    return f"tel:{found}" if found else None


def display(url_or_number: str) -> str:
    """The number as shown in a text: "+33 4 78 12 34 56"; a short number as is ("115")."""
    number = url_or_number.removeprefix("tel:")
    if number.startswith("+33") and len(number) == 12:
        rest = number[3:]
        return "+33 " + rest[0] + " " + " ".join(rest[i:i + 2] for i in range(1, 9, 2))
    if number.startswith("+") and len(number) == 13:  # +590 690 12 34 56
        rest = number[4:]
        return f"{number[:4]} {rest[:3]} " + " ".join(rest[i:i + 2] for i in range(3, 9, 2))
    return number


def digits(text: str) -> str:
    return re.sub(r"\D", "", text or "")
