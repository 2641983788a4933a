"""Count words in text, ignoring case and punctuation."""

import re


def words(text):
    return re.findall(r"[a-z']+", text.lower())


def count(text):
    counts = {}
    for w in words(text):
        counts[w] = counts.get(w, 0) + 1
    return counts


def most_common(text, n=1):
    """The n most common words, most frequent first; ties alphabetical."""
    ranked = sorted(count(text).items(), key=lambda kv: (kv[1], kv[0]))
    return [w for w, _ in ranked[:n]]
