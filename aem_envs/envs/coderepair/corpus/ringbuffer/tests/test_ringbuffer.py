import pytest

from ringbuffer import MovingAverage, RingBuffer


def test_fifo():
    b = RingBuffer(3)
    for x in (1, 2, 3):
        b.push(x)
    assert b.pop() == 1
    assert b.to_list() == [2, 3]


def test_full_rejects():
    b = RingBuffer(2)
    b.push(1)
    b.push(2)
    with pytest.raises(OverflowError):
        b.push(3)


def test_overwrite_oldest():
    b = RingBuffer(2, overwrite=True)
    for x in (1, 2, 3):
        b.push(x)
    assert b.to_list() == [2, 3]


def test_wraparound():
    b = RingBuffer(3)
    for x in (1, 2, 3):
        b.push(x)
    b.pop()
    b.pop()
    b.push(4)
    b.push(5)
    assert b.to_list() == [3, 4, 5]


def test_empty_errors():
    with pytest.raises(IndexError):
        RingBuffer(1).pop()
    with pytest.raises(ValueError):
        RingBuffer(0)


def test_moving_average():
    m = MovingAverage(3)
    assert [m.add(v) for v in (3, 6, 9, 12)] == [3.0, 4.5, 6.0, 9.0]
