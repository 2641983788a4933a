import pytest

from primes import divisors, factorize, gcd, is_prime, lcm, next_prime, sieve, totient


def test_is_prime():
    assert [n for n in range(20) if is_prime(n)] == [2, 3, 5, 7, 11, 13, 17, 19]


def test_sieve():
    assert sieve(30) == [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]


def test_factorize():
    assert factorize(360) == [2, 2, 2, 3, 3, 5]
    assert factorize(97) == [97]


def test_gcd_lcm():
    assert gcd(48, 18) == 6
    assert lcm(4, 6) == 12


def test_next_prime():
    assert next_prime(13) == 17


def test_divisors():
    assert divisors(36) == [1, 2, 3, 4, 6, 9, 12, 18, 36]


def test_factorize_invalid():
    with pytest.raises(ValueError):
        factorize(0)
