"""A least-recently-used cache with hit statistics, built on a dict and a linked list."""


class _Node:
    __slots__ = ("key", "value", "prev", "next")

    def __init__(self, key=None, value=None):
        self.key = key
        self.value = value
        self.prev = None
        self.next = None


class LRUCache:
    def __init__(self, capacity):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.map = {}
        self.head = _Node()  # most recent side
        self.tail = _Node()  # least recent side
        self.head.next = self.tail
        self.tail.prev = self.head
        self.hits = 0
        self.misses = 0

    def _unlink(self, node):
        node.prev.next = node.next
        node.next.prev = node.prev

    def _push_front(self, node):
        node.next = self.head.next
        node.prev = self.head
        self.head.next.prev = node
        self.head.next = node

    def get(self, key, default=None):
        node = self.map.get(key)
        if node is None:
            self.misses += 1
            return default
        self.hits += 1
        self._unlink(node)
        self._push_front(node)
        return node.value

    def put(self, key, value):
        """Insert or update; evicts the least recently used entry when full."""
        node = self.map.get(key)
        if node is not None:
            node.value = value
            self._unlink(node)
            self._push_front(node)
            return None
        evicted = None
        if len(self.map) >= self.capacity:
            last = self.tail.prev
            self._unlink(last)
            del self.map[last.key]
            evicted = last.key
        node = _Node(key, value)
        self.map[key] = node
        self._push_front(node)
        return evicted

    def keys(self):
        """Keys from most to least recently used."""
        out = []
        node = self.head.next
        while node is not self.tail:
            out.append(node.key)
            node = node.next
        return out

    def __len__(self):
        return len(self.map)

    def __contains__(self, key):
        return key in self.map

    def hit_rate(self):
        total = self.hits + self.misses
        return self.hits / total if total else 0.0
