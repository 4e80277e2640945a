"""Fold accented Latin letters to their base letters, the same way for names and addresses.

One system keeps "Zoë" or "Rue de l'Église" where another (ASCII-only, or typed without accents)
has "Zoe" and "Rue de l'Eglise": both must compare as the same text.
"""

from __future__ import annotations

import unicodedata

# Latin letters that Unicode does not decompose into a base letter and an accent. (The ligature æ is
# not folded: rare in these records, it is dropped or splits a word as any other non-letter does.)
UNDECOMPOSED = str.maketrans({
    "ß": "ss", "ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "œ": "oe", "ı": "i",
    "Ø": "O", "Ł": "L", "Đ": "D", "Ð": "D", "Þ": "TH", "Œ": "OE",
})


def fold_accents(text: str) -> str:
    """`text` with accents removed from Latin letters ("Église" -> "Eglise", "Łódź" -> "Lodz").

    Letters of other scripts and every other character are kept as they are.
    """
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text.translate(UNDECOMPOSED))
    return "".join(c for c in decomposed if not unicodedata.combining(c))
