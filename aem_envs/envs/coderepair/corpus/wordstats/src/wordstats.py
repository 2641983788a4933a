"""Word and sentence statistics for plain English text."""

import re

_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
_SENTENCE_END = re.compile(r"[.!?]+")
STOPWORDS = {"the", "a", "an", "and", "or", "of", "to", "in", "is", "it"}


def tokenize(text):
    """Lower-cased words; apostrophes inside words are kept ("don't")."""
    return [w.lower() for w in _WORD.findall(text)]


def word_counts(text, skip_stopwords=False):
    counts = {}
    for w in tokenize(text):
        if skip_stopwords and w in STOPWORDS:
            continue
        counts[w] = counts.get(w, 0) + 1
    return counts


def top_words(text, n=3, skip_stopwords=True):
    """The n most frequent words; ties in alphabetical order."""
    counts = word_counts(text, skip_stopwords)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [w for w, _ in ranked[:n]]


def sentences(text):
    parts = [p.strip() for p in _SENTENCE_END.split(text)]
    return [p for p in parts if p]


def average_sentence_length(text):
    sents = sentences(text)
    if not sents:
        return 0.0
    return sum(len(tokenize(s)) for s in sents) / len(sents)


def count_syllables(word):
    """Vowel-group heuristic with a silent final 'e'; at least one syllable."""
    w = word.lower()
    groups = re.findall(r"[aeiouy]+", w)
    count = len(groups)
    if w.endswith("e") and not w.endswith("le") and count > 1:
        count -= 1
    return max(count, 1)


def flesch_reading_ease(text):
    words = tokenize(text)
    sents = sentences(text)
    if not words or not sents:
        return 0.0
    syllables = sum(count_syllables(w) for w in words)
    return 206.835 - 1.015 * (len(words) / len(sents)) - 84.6 * (syllables / len(words))


def longest_word(text):
    """Longest word, the first one on ties; '' when there are none."""
    best = ""
    for w in tokenize(text):
        if len(w) > len(best):
            best = w
    return best


def lexical_diversity(text):
    words = tokenize(text)
    return len(set(words)) / len(words) if words else 0.0
