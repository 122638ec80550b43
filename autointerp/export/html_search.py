"""The HTML catalog's search over explanations, precomputed so it needs no server: word -> units.

Words are runs of letters and digits, lower-cased; the browser (catalog-common.js `words`) splits a
query the same way and matches each query word as a prefix of the indexed words. Postings are sorted
unit ids, delta-encoded to keep the shard small.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    """The searchable words of `text` (the same split as the browser's)."""
    return _WORD.findall(text.lower())


class SearchIndex:
    """Collects each unit's explanation words; `data()` is what search.js holds."""

    def __init__(self) -> None:
        self._postings: dict[str, list[int]] = defaultdict(list)

    def add(self, uid: int, text: str | None) -> None:
        for word in sorted(set(words(text or ""))):
            self._postings[word].append(uid)

    def data(self) -> dict[str, Any]:
        terms = sorted(self._postings)
        postings = []
        for term in terms:
            uids = sorted(self._postings[term])
            postings.append([b - a for a, b in zip([0, *uids], uids)])
        return {"terms": terms, "postings": postings}
