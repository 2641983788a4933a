from lrucache import LRUCache


def test_hit_rate_empty():
    assert LRUCache(3).hit_rate() == 0.0


def test_capacity_one():
    c = LRUCache(1)
    c.put("x", 1)
    assert c.put("y", 2) == "x"
    assert c.keys() == ["y"]


def test_put_new_returns_none():
    c = LRUCache(2)
    assert c.put("a", 1) is None


def test_update_refreshes_recency():
    c = LRUCache(2)
    c.put("a", 1)
    c.put("b", 2)
    c.put("a", 3)
    assert c.put("c", 4) == "b"


def test_counts():
    c = LRUCache(2)
    c.get("a")
    c.put("a", 1)
    c.get("a")
    c.get("a")
    assert (c.hits, c.misses) == (2, 1)
