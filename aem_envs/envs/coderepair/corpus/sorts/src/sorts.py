"""Classic comparison sorts, each returning a new list and accepting a key function."""


def _key(key):
    return key if key is not None else (lambda x: x)


def insertion_sort(items, key=None):
    k = _key(key)
    out = list(items)
    for i in range(1, len(out)):
        current = out[i]
        j = i - 1
        while j >= 0 and k(out[j]) > k(current):
            out[j + 1] = out[j]
            j -= 1
        out[j + 1] = current
    return out


def merge(left, right, key=None):
    """Merge two sorted lists stably."""
    k = _key(key)
    out = []
    i = j = 0
    while i < len(left) and j < len(right):
        if k(right[j]) < k(left[i]):
            out.append(right[j])
            j += 1
        else:
            out.append(left[i])
            i += 1
    out.extend(left[i:])
    out.extend(right[j:])
    return out


def merge_sort(items, key=None):
    items = list(items)
    if len(items) <= 1:
        return items
    mid = len(items) // 2
    return merge(merge_sort(items[:mid], key), merge_sort(items[mid:], key), key)


def quick_sort(items, key=None):
    k = _key(key)
    items = list(items)
    if len(items) <= 1:
        return items
    pivot = k(items[len(items) // 2])
    less = [x for x in items if k(x) < pivot]
    equal = [x for x in items if k(x) == pivot]
    greater = [x for x in items if k(x) > pivot]
    return quick_sort(less, key) + equal + quick_sort(greater, key)


def selection_sort(items):
    out = list(items)
    n = len(out)
    for i in range(n - 1):
        smallest = i
        for j in range(i + 1, n):
            if out[j] < out[smallest]:
                smallest = j
        out[i], out[smallest] = out[smallest], out[i]
    return out


def is_sorted(items, key=None):
    k = _key(key)
    return all(k(items[i]) <= k(items[i + 1]) for i in range(len(items) - 1))


def counting_sort(items, max_value):
    """Sort non-negative integers no larger than max_value."""
    counts = [0] * (max_value + 1)
    for x in items:
        if x < 0 or x > max_value:
            raise ValueError(f"{x} outside [0, {max_value}]")
        counts[x] += 1
    out = []
    for value, c in enumerate(counts):
        out.extend([value] * c)
    return out
