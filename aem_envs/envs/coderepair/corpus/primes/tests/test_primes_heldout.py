from primes import divisors, factorize, gcd, is_prime, lcm, next_prime, sieve, totient


def test_sieve_matches_is_prime():
    assert sieve(200) == [n for n in range(201) if is_prime(n)]
    assert sieve(1) == []
    assert sieve(2) == [2]


def test_squares_of_primes():
    assert not is_prime(49)
    assert not is_prime(121)
    assert factorize(49) == [7, 7]


def test_gcd_negative_and_zero():
    assert gcd(-12, 8) == 4
    assert gcd(0, 5) == 5
    assert lcm(0, 3) == 0


def test_totient():
    assert [totient(n) for n in (1, 9, 10, 12, 13)] == [1, 6, 4, 4, 12]


def test_divisors_prime():
    assert divisors(13) == [1, 13]
    assert next_prime(1) == 2
