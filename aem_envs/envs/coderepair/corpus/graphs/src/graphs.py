"""Small graph algorithms on adjacency dicts {node: [neighbours]}."""

from collections import deque


def add_edge(graph, a, b, directed=False):
    graph.setdefault(a, []).append(b)
    graph.setdefault(b, [])
    if not directed:
        graph[b].append(a)
    return graph


def bfs_order(graph, start):
    seen = {start}
    order = []
    queue = deque([start])
    while queue:
        node = queue.popleft()
        order.append(node)
        for nxt in graph.get(node, []):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return order


def shortest_path(graph, start, goal):
    """Fewest-edges path as a list of nodes, or None."""
    parents = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            path = []
            while node is not None:
                path.append(node)
                node = parents[node]
            return path[::-1]
        for nxt in graph.get(node, []):
            if nxt not in parents:
                parents[nxt] = node
                queue.append(nxt)
    return None


def topological_sort(graph):
    """Kahn's algorithm; ties broken by node order. Raises ValueError on a cycle."""
    indegree = {n: 0 for n in graph}
    for n in graph:
        for m in graph[n]:
            indegree[m] = indegree.get(m, 0) + 1
    ready = sorted(n for n, d in indegree.items() if d == 0)
    order = []
    while ready:
        n = ready.pop(0)
        order.append(n)
        for m in graph.get(n, []):
            indegree[m] -= 1
            if indegree[m] == 0:
                ready.append(m)
                ready.sort()
    if len(order) != len(indegree):
        raise ValueError("graph has a cycle")
    return order


def components(graph):
    """Connected components (undirected graph), each sorted, ordered by smallest node."""
    seen = set()
    out = []
    for node in sorted(graph):
        if node in seen:
            continue
        comp = bfs_order(graph, node)
        seen.update(comp)
        out.append(sorted(comp))
    return out


def has_cycle(graph):
    try:
        topological_sort(graph)
    except ValueError:
        return True
    return False


def degree(graph, node):
    return len(graph.get(node, []))
