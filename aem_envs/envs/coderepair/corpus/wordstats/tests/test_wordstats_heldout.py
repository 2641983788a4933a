import pytest

from wordstats import average_sentence_length, count_syllables, flesch_reading_ease, lexical_diversity, longest_word, top_words, word_counts


def test_skip_stopwords():
    assert word_counts("the cat and the hat", skip_stopwords=True) == {"cat": 1, "hat": 1}


def test_empty_text():
    assert average_sentence_length("") == 0.0
    assert flesch_reading_ease("") == 0.0
    assert longest_word("") == ""
    assert lexical_diversity("") == 0.0


def test_flesch_simple():
    assert flesch_reading_ease("The cat sat.") == pytest.approx(206.835 - 1.015 * 3 - 84.6 * 1)


def test_single_syllable_words():
    assert count_syllables("the") == 1
    assert count_syllables("rhythm") == 1


def test_lexical_diversity():
    assert lexical_diversity("a a b b") == 0.5


def test_top_words_ties_alphabetical():
    assert top_words("zeta alpha beta", 2) == ["alpha", "beta"]
