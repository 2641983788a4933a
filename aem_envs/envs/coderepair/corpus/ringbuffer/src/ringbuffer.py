"""A fixed-capacity ring buffer (FIFO) with overwrite or reject policies, and a moving average."""


class RingBuffer:
    def __init__(self, capacity, overwrite=False):
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self.overwrite = overwrite
        self.data = [None] * capacity
        self.start = 0
        self.size = 0

    def __len__(self):
        return self.size

    def is_full(self):
        return self.size == self.capacity

    def push(self, item):
        """Append; when full either overwrite the oldest item or raise OverflowError."""
        if self.is_full():
            if not self.overwrite:
                raise OverflowError("buffer is full")
            self.data[self.start] = item
            self.start = (self.start + 1) % self.capacity
            return
        end = (self.start + self.size) % self.capacity
        self.data[end] = item
        self.size += 1

    def pop(self):
        """Remove and return the oldest item."""
        if self.size == 0:
            raise IndexError("pop from empty buffer")
        item = self.data[self.start]
        self.data[self.start] = None
        self.start = (self.start + 1) % self.capacity
        self.size -= 1
        return item

    def peek(self):
        if self.size == 0:
            raise IndexError("peek at empty buffer")
        return self.data[self.start]

    def to_list(self):
        """Items from oldest to newest."""
        return [self.data[(self.start + i) % self.capacity] for i in range(self.size)]

    def clear(self):
        self.data = [None] * self.capacity
        self.start = 0
        self.size = 0


class MovingAverage:
    """Average of the last ``window`` values."""

    def __init__(self, window):
        self.buffer = RingBuffer(window, overwrite=True)
        self.total = 0.0

    def add(self, value):
        if self.buffer.is_full():
            self.total -= self.buffer.peek()
        self.buffer.push(value)
        self.total += value
        return self.total / len(self.buffer)
