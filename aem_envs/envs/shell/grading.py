"""Comparing the agent's result with the gold command's result.

Answers are normalised per kind (see :mod:`aem_envs.envs.shell.tasks`). File trees are
compared through a *manifest*: ``{relative path: (type, permission bits, content digest)}``,
where a tar/tar.gz/tgz file's digest is that of its sorted file members (name without ``./``
and content) so two archives of the same files match whatever their timestamps or order.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import tarfile

Manifest = dict[str, tuple[str, int, str]]


def _norm_path(p: str) -> str:
    p = p.strip().strip("'\"`")
    while p.startswith("./"):
        p = p[2:]
    return p.rstrip("/")


def normalize_answer(text: str, kind: str | None) -> str | frozenset[str] | int | None:
    """Canonical form of an answer (None when it cannot be read as ``kind``)."""
    text = text.strip()
    if kind == "number":
        m = re.fullmatch(r"[-+]?\d+", text.strip("'\"` ."))
        return int(m.group(0)) if m else None
    if kind == "paths":
        parts = [_norm_path(p) for p in re.split(r"[\s,]+", text) if p.strip()]
        return frozenset(p for p in parts if p)
    if kind == "path":
        return _norm_path(text)
    return text.strip("'\"`")


def answer_similarity(agent: str, gold: str, kind: str | None) -> tuple[bool, float]:
    """(exact match, similarity in [0, 1]) of two answers."""
    a, g = normalize_answer(agent, kind), normalize_answer(gold, kind)
    if a is None or g is None:
        return False, 0.0
    if a == g:
        return True, 1.0
    if isinstance(a, frozenset) and isinstance(g, frozenset):
        union = a | g
        return False, (len(a & g) / len(union)) if union else 1.0
    return False, 0.0


def _archive_digest(data: bytes) -> str | None:
    try:
        raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
            items = []
            for m in tf.getmembers():
                if m.isfile():
                    f = tf.extractfile(m)
                    items.append((_norm_path(m.name), hashlib.sha256(f.read() if f else b"").hexdigest()))
        return "tar:" + hashlib.sha256(repr(sorted(items)).encode()).hexdigest()[:16]
    except (OSError, tarfile.TarError, EOFError):
        return None


def manifest(tar_bytes: bytes) -> Manifest:
    """The manifest of a tar from ``Sandbox.get_archive(dir)`` (the top directory dropped)."""
    out: Manifest = {}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tf:
        for m in tf.getmembers():
            parts = m.name.split("/", 1)
            if len(parts) < 2 or not parts[1]:
                continue  # the root directory itself
            rel = parts[1].rstrip("/")
            mode = m.mode & 0o7777
            if m.isdir():
                out[rel] = ("d", mode, "")
            elif m.issym():
                out[rel] = ("l", 0, m.linkname)
            elif m.isfile():
                f = tf.extractfile(m)
                data = f.read() if f else b""
                dig = None
                if rel.endswith((".tar", ".tar.gz", ".tgz")):
                    dig = _archive_digest(data)
                out[rel] = ("f", mode, dig or hashlib.sha256(data).hexdigest()[:16])
            else:
                out[rel] = ("o", mode, "")
    return out


def manifest_similarity(
    agent: Manifest, gold: Manifest, start: Manifest | None = None
) -> tuple[bool, float, list[str]]:
    """(equal, similarity in [0, 1], up to 5 differing paths).

    The similarity is the share of entries where the agent's tree matches the gold one, counted
    over the entries that the task or the agent changed from ``start`` (over every entry when
    ``start`` is None). Over every entry, the files a task leaves alone dominate: doing nothing
    scored 0.88 of full credit on the state tasks.
    """
    keys = set(agent) | set(gold)
    diff = sorted(k for k in keys if agent.get(k) != gold.get(k))
    if start is not None:  # with the entries both deleted, which neither tree lists
        keys = {k for k in keys | set(start) if gold.get(k) != start.get(k) or agent.get(k) != start.get(k)}
    same = [k for k in keys if agent.get(k) == gold.get(k)]
    return not diff, (len(same) / len(keys)) if keys else 1.0, diff[:5]
