"""Numbers written in words or in Arabic-Indic digits, turned into ASCII digits. Pure functions.

French and English use text2num's `alpha2digit` (a maintained parser of written numbers: "mille
deux cents" -> "1200", "thirty four" -> "34"). Ukrainian and Arabic, which it does not cover, use
the small tables below (units, tens, hundreds, thousands: enough for ages, children and euros).
"""

from __future__ import annotations

import re
import unicodedata

from text_to_num import alpha2digit

# Arabic-Indic (U+0660..) and Eastern Arabic-Indic (U+06F0..) digits, Arabic decimal/thousands marks.
_DIGITS = {**{0x0660 + i: str(i) for i in range(10)}, **{0x06F0 + i: str(i) for i in range(10)},
           0x066B: ",", 0x066C: " ", 0x060C: ","}


def _key(word: str) -> str:
    word = unicodedata.normalize("NFKD", word.casefold())
    word = "".join(c for c in word if not unicodedata.combining(c))
    return word.replace("'", "").replace("’", "").replace("ʼ", "").replace("ـ", "")


_UK = {
    "нуль": 0, "один": 1, "одна": 1, "одне": 1, "два": 2, "дві": 2, "три": 3, "чотири": 4, "пять": 5,
    "шість": 6, "сім": 7, "вісім": 8, "девять": 9, "десять": 10, "одинадцять": 11, "дванадцять": 12,
    "тринадцять": 13, "чотирнадцять": 14, "пятнадцять": 15, "шістнадцять": 16, "сімнадцять": 17,
    "вісімнадцять": 18, "девятнадцять": 19, "двадцять": 20, "тридцять": 30, "сорок": 40,
    "пятдесят": 50, "шістдесят": 60, "сімдесят": 70, "вісімдесят": 80, "девяносто": 90, "сто": 100,
    "двісті": 200, "триста": 300, "чотириста": 400, "пятсот": 500, "шістсот": 600, "сімсот": 700,
    "вісімсот": 800, "девятсот": 900,
}
_UK_THOUSAND = {"тисяча", "тисячі", "тисяч"}

_AR = {
    "صفر": 0, "واحد": 1, "واحدة": 1, "احد": 1, "اثنان": 2, "اثنين": 2, "اثنتان": 2, "اثنتين": 2, "اثنا": 2,
    "اثنتا": 2, "ثلاثة": 3, "ثلاث": 3, "اربعة": 4, "اربع": 4, "خمسة": 5, "خمس": 5, "ستة": 6, "ست": 6,
    "سبعة": 7, "سبع": 7, "ثمانية": 8, "ثماني": 8, "ثمان": 8, "تسعة": 9, "تسع": 9, "عشرة": 10, "عشر": 10,
    "عشرون": 20, "عشرين": 20, "ثلاثون": 30, "ثلاثين": 30, "اربعون": 40, "اربعين": 40, "خمسون": 50,
    "خمسين": 50, "ستون": 60, "ستين": 60, "سبعون": 70, "سبعين": 70, "ثمانون": 80, "ثمانين": 80,
    "تسعون": 90, "تسعين": 90, "مائة": 100, "مئة": 100, "مية": 100, "مئتان": 200, "مئتين": 200,
    "مائتان": 200, "مائتين": 200, "ثلاثمائة": 300, "ثلاثمئة": 300, "اربعمائة": 400, "اربعمئة": 400,
    "خمسمائة": 500, "خمسمئة": 500, "ستمائة": 600, "ستمئة": 600, "سبعمائة": 700, "سبعمئة": 700,
    "ثمانمائة": 800, "ثمانمئة": 800, "تسعمائة": 900, "تسعمئة": 900, "الفان": 2000, "الفين": 2000,
}
_AR_THOUSAND = {"الف", "الاف", "آلاف"}
_TABLE = {**{_key(k): v for k, v in _UK.items()}, **{_key(k): v for k, v in _AR.items()}}
_THOUSAND = {_key(k) for k in _UK_THOUSAND | _AR_THOUSAND}
_HUNDRED = {_key(k) for k in ("сто", "مائة", "مئة")}


def _value(token: str) -> tuple[str, int] | None:
    key = _key(token)
    if key in _THOUSAND:
        return ("thousand", 1000)
    if key in _TABLE:
        return ("number", _TABLE[key])
    if len(key) > 1 and key.startswith("و"):  # Arabic "and" is written on the word: "وثلاثون"
        rest = key[1:]
        if rest in _THOUSAND:
            return ("thousand", 1000)
        if rest in _TABLE:
            return ("number", _TABLE[rest])
    return None


def _tables(text: str) -> str:
    """Runs of Ukrainian or Arabic number words replaced by their digits."""
    text = re.sub(r"(?<=[^\W\d_])([,;!?،.])", r" \1", text)  # "три, сім": the comma apart
    tokens = re.split(r"(\s+)", text)
    out: list[str] = []
    total = current = 0
    run = False

    for token in tokens:
        if not token.strip():
            out.append(token)
            continue
        found = _value(token)
        if found is None:
            if run:
                trailing = []
                while out and not out[-1].strip():
                    trailing.append(out.pop())
                out.append(str(total + current))
                out.extend(reversed(trailing))
                total = current = 0
                run = False
            out.append(token)
            continue
        kind, value = found
        if not run:
            run = True
        else:
            while out and not out[-1].strip():
                out.pop()
        if kind == "thousand":
            total += (current or 1) * 1000
            current = 0
        elif _key(token).lstrip("و") in _HUNDRED and 0 < current < 10:
            current *= 100  # "ثلاث مائة", "три сто" written apart
        else:
            current += value
    if run:
        out.append(str(total + current))
    return "".join(out)


def digits(text: str) -> str:
    """`text` with its numbers as ASCII digits: "trente ans" -> "30 ans", "٣٠" -> "30",
    "тридцять два" -> "32". Text without letters is returned unchanged ("1 200 €", "450,50")."""
    text = text.translate(_DIGITS)
    if not any(c.isalpha() for c in text):
        return text
    text = _tables(text)
    for language in ("fr", "en"):
        try:
            text = alpha2digit(text, language, threshold=0)
        except (ValueError, IndexError):  # the parser refuses some odd inputs: keep the text
            pass
    return text
