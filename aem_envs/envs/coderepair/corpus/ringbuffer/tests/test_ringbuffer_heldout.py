import pytest

from ringbuffer import MovingAverage, RingBuffer


def test_len_and_full():
    b = RingBuffer(2)
    assert len(b) == 0 and not b.is_full()
    b.push("a")
    b.push("b")
    assert len(b) == 2 and b.is_full()


def test_peek():
    b = RingBuffer(2)
    b.push(7)
    assert b.peek() == 7
    assert len(b) == 1
    with pytest.raises(IndexError):
        RingBuffer(2).peek()


def test_clear():
    b = RingBuffer(2)
    b.push(1)
    b.clear()
    assert b.to_list() == []
    b.push(2)
    assert b.pop() == 2


def test_overwrite_many():
    b = RingBuffer(3, overwrite=True)
    for x in range(10):
        b.push(x)
    assert b.to_list() == [7, 8, 9]
    assert b.pop() == 7


def test_moving_average_window_one():
    m = MovingAverage(1)
    assert [m.add(v) for v in (1, 5, 2)] == [1.0, 5.0, 2.0]
