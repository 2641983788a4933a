"""Dense matrices as lists of rows."""


def shape(m):
    if not m or not m[0]:
        raise ValueError("empty matrix")
    width = len(m[0])
    if any(len(row) != width for row in m):
        raise ValueError("ragged matrix")
    return (len(m), width)


def zeros(rows, cols):
    return [[0] * cols for _ in range(rows)]


def identity(n):
    out = zeros(n, n)
    for i in range(n):
        out[i][i] = 1
    return out


def transpose(m):
    rows, cols = shape(m)
    return [[m[r][c] for r in range(rows)] for c in range(cols)]


def add(a, b):
    if shape(a) != shape(b):
        raise ValueError("shape mismatch")
    return [[x + y for x, y in zip(ra, rb)] for ra, rb in zip(a, b)]


def multiply(a, b):
    ar, ac = shape(a)
    br, bc = shape(b)
    if ac != br:
        raise ValueError(f"cannot multiply {ar}x{ac} by {br}x{bc}")
    out = zeros(ar, bc)
    for i in range(ar):
        for j in range(bc):
            total = 0
            for k in range(ac):
                total += a[i][k] * b[k][j]
            out[i][j] = total
    return out


def determinant(m):
    """Laplace expansion along the first row (fine for small matrices)."""
    n, cols = shape(m)
    if n != cols:
        raise ValueError("determinant needs a square matrix")
    if n == 1:
        return m[0][0]
    if n == 2:
        return m[0][0] * m[1][1] - m[0][1] * m[1][0]
    total = 0
    for c in range(n):
        minor = [row[:c] + row[c + 1:] for row in m[1:]]
        sign = -1 if c % 2 else 1
        total += sign * m[0][c] * determinant(minor)
    return total


def power(m, k):
    """m to a non-negative integer power by repeated squaring."""
    n, cols = shape(m)
    if n != cols or k < 0:
        raise ValueError("power needs a square matrix and k >= 0")
    result = identity(n)
    base = m
    while k > 0:
        if k % 2 == 1:
            result = multiply(result, base)
        base = multiply(base, base)
        k //= 2
    return result


def trace(m):
    n, cols = shape(m)
    return sum(m[i][i] for i in range(min(n, cols)))
