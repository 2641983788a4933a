"""A binary min-heap with an optional key function, and helpers built on it."""


class MinHeap:
    def __init__(self, items=(), key=None):
        self.key = key or (lambda x: x)
        self.data = []
        for item in items:
            self.push(item)

    def __len__(self):
        return len(self.data)

    def _less(self, i, j):
        return self.key(self.data[i]) < self.key(self.data[j])

    def _swap(self, i, j):
        self.data[i], self.data[j] = self.data[j], self.data[i]

    def _sift_up(self, i):
        while i > 0:
            parent = (i - 1) // 2
            if self._less(i, parent):
                self._swap(i, parent)
                i = parent
            else:
                break

    def _sift_down(self, i):
        n = len(self.data)
        while True:
            left = 2 * i + 1
            right = left + 1
            smallest = i
            if left < n and self._less(left, smallest):
                smallest = left
            if right < n and self._less(right, smallest):
                smallest = right
            if smallest == i:
                return
            self._swap(i, smallest)
            i = smallest

    def push(self, item):
        self.data.append(item)
        self._sift_up(len(self.data) - 1)

    def peek(self):
        if not self.data:
            raise IndexError("peek from empty heap")
        return self.data[0]

    def pop(self):
        if not self.data:
            raise IndexError("pop from empty heap")
        top = self.data[0]
        last = self.data.pop()
        if self.data:
            self.data[0] = last
            self._sift_down(0)
        return top


def heap_sort(items, key=None):
    heap = MinHeap(items, key=key)
    return [heap.pop() for _ in range(len(heap))]


def n_smallest(items, n):
    """The n smallest items in ascending order."""
    if n <= 0:
        return []
    heap = MinHeap(items)
    return [heap.pop() for _ in range(min(n, len(heap)))]


def merge_sorted(lists):
    """Merge already-sorted lists into one sorted list."""
    heap = MinHeap(key=lambda t: (t[0], t[1]))
    for idx, lst in enumerate(lists):
        if lst:
            heap.push((lst[0], idx, 0))
    out = []
    while len(heap):
        value, idx, pos = heap.pop()
        out.append(value)
        if pos + 1 < len(lists[idx]):
            heap.push((lists[idx][pos + 1], idx, pos + 1))
    return out
