import pytest

from lrucache import LRUCache


def test_capacity_validation():
    with pytest.raises(ValueError):
        LRUCache(0)


def test_get_put():
    c = LRUCache(2)
    c.put("a", 1)
    assert c.get("a") == 1
    assert c.get("b", 7) == 7


def test_eviction_order():
    c = LRUCache(2)
    c.put("a", 1)
    c.put("b", 2)
    c.get("a")
    assert c.put("c", 3) == "b"
    assert "b" not in c and "a" in c


def test_update_does_not_grow():
    c = LRUCache(2)
    c.put("a", 1)
    c.put("a", 5)
    assert len(c) == 1
    assert c.get("a") == 5


def test_keys_recency():
    c = LRUCache(3)
    for k in "abc":
        c.put(k, k)
    c.get("a")
    assert c.keys() == ["a", "c", "b"]


def test_hit_rate():
    c = LRUCache(1)
    c.put(1, 1)
    c.get(1)
    c.get(2)
    assert c.hit_rate() == 0.5
