import pytest

from wordstats import average_sentence_length, count_syllables, longest_word, sentences, tokenize, top_words, word_counts


def test_tokenize():
    assert tokenize("Don't stop -- it's 5 o'clock!") == ["don't", "stop", "it's", "o'clock"]


def test_word_counts():
    assert word_counts("a b a") == {"a": 2, "b": 1}


def test_top_words():
    text = "the cat and the dog and the cat saw a bird"
    assert top_words(text, 2) == ["cat", "bird"]


def test_sentences():
    assert sentences("Hi. How are you?! Fine") == ["Hi", "How are you", "Fine"]


def test_average_sentence_length():
    assert average_sentence_length("One two. Three four five six.") == 3.0


def test_syllables():
    assert count_syllables("cake") == 1
    assert count_syllables("table") == 2
    assert count_syllables("banana") == 3


def test_longest_word():
    assert longest_word("a bb cc ddd ee") == "ddd"
