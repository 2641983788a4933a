"""``SandboxPool``: warm containers so an episode rarely waits for ``docker run``.

Two kinds of idle sandboxes are kept per pool (one pool = one :class:`SandboxConfig`):

- **fresh**: started, shell ready, never used. Any task may take one. A background thread
  refills them up to ``high`` whenever fewer than ``low`` remain.
- **parked**: used by task ``K`` and released. Only task ``K`` may take it again; it is
  :meth:`~DockerSandbox.reset` first (work tree restored, processes killed, scratch wiped,
  new shell). A sandbox is never handed to a different task: that always takes a fresh one.

Sandboxes are retired (closed) after ``max_uses`` episodes or ``max_age`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque

from aem_envs.sandbox import lifecycle
from aem_envs.sandbox.config import SandboxConfig
from aem_envs.sandbox.docker_sandbox import DockerSandbox


class SandboxPool:
    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        low: int = 1,
        high: int = 2,
        max_parked: int = 4,
        max_uses: int = 100,
        max_age: float = 1800.0,
        prestart: bool = True,
    ):
        if not 0 <= low <= high:
            raise ValueError(f"need 0 <= low <= high, got low={low} high={high}")
        lifecycle.install_hooks()  # here, on the caller's thread: the filler thread cannot
        self.config = config or SandboxConfig()
        self.low, self.high = low, high
        self.max_parked, self.max_uses, self.max_age = max_parked, max_uses, max_age
        self._fresh: deque[DockerSandbox] = deque()
        self._parked: OrderedDict[int, tuple[str, DockerSandbox]] = OrderedDict()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self._creating = 0
        self._paused = False
        self.last_error: Exception | None = None
        self.stats = {"fresh_hits": 0, "parked_hits": 0, "cold_starts": 0, "retired": 0}
        self._filler = threading.Thread(target=self._fill_loop, name="aem-sandbox-pool", daemon=True)
        self._filler.start()
        if prestart:
            self._kick()

    # ------------------------------------------------------------------ public
    def acquire(self, task_key: str | None = None) -> DockerSandbox:
        """A sandbox for ``task_key``: a parked one of the same task (reset), else a fresh one."""
        sb = None
        with self._lock:
            if self._closed:
                raise RuntimeError("this SandboxPool is closed")
            self._paused = False
            if task_key is not None:
                for k, (key, cand) in list(self._parked.items()):
                    if key == task_key:
                        del self._parked[k]
                        sb = cand
                        break
        if sb is not None:
            try:
                sb.reset()
                self.stats["parked_hits"] += 1
                sb.task_key = task_key
                return sb
            except Exception:
                self._retire(sb)
                sb = None  # closed now: a fresh one (or a cold start) below, never this one
        with self._lock:
            while self._fresh:
                cand = self._fresh.popleft()
                if self._expired(cand):
                    self._retire_later(cand)
                    continue
                sb = cand
                break
            self._wake.notify()
        if sb is not None:
            self.stats["fresh_hits"] += 1
        else:
            self.stats["cold_starts"] += 1
            sb = DockerSandbox(self.config)
        sb.task_key = task_key
        sb.uses += 1
        return sb

    def release(self, sb: DockerSandbox, task_key: str | None = None) -> None:
        """Give ``sb`` back; it is parked for ``task_key`` (or its last task) or retired."""
        key = task_key if task_key is not None else sb.task_key
        if sb._closed or key is None or self._expired(sb):
            self._retire_later(sb)
            return
        evict = None
        with self._lock:
            if self._closed:
                evict = sb
            else:
                self._parked[id(sb)] = (key, sb)
                if len(self._parked) > self.max_parked:
                    _, (_, evict) = self._parked.popitem(last=False)
        if evict is not None:
            self._retire_later(evict)

    def discard(self, sb: DockerSandbox) -> None:
        """Close ``sb`` in the background (it must not serve another task)."""
        self._retire_later(sb)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            items = list(self._fresh) + [sb for _, sb in self._parked.values()]
            self._fresh.clear()
            self._parked.clear()
            self._wake.notify_all()
        for sb in items:
            sb.close()
        self._filler.join(timeout=30)

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def sizes(self) -> dict[str, int]:
        with self._lock:
            return {"fresh": len(self._fresh), "parked": len(self._parked), "creating": self._creating}

    def wait_warm(self, n: int | None = None, timeout: float = 60.0) -> bool:
        """Block until ``n`` (default ``high``) fresh sandboxes are ready."""
        n = self.high if n is None else n
        end = time.monotonic() + timeout
        self._kick()
        while time.monotonic() < end:
            with self._lock:
                if len(self._fresh) >= n:
                    return True
            time.sleep(0.02)
        return False

    # ------------------------------------------------------------------ internals
    def _expired(self, sb: DockerSandbox) -> bool:
        age = time.monotonic() - sb.created_at
        # also retire well before the container's own TTL ends it
        return sb.uses >= self.max_uses or age > self.max_age or sb.expires_in < 600

    def _retire(self, sb: DockerSandbox) -> None:
        self.stats["retired"] += 1
        sb.close()

    def _retire_later(self, sb: DockerSandbox) -> None:
        self.stats["retired"] += 1
        threading.Thread(target=sb.close, name="aem-sandbox-close", daemon=False).start()

    def _kick(self) -> None:
        with self._lock:
            self._wake.notify()

    def _fill_loop(self) -> None:
        while True:
            with self._lock:
                while not self._closed and len(self._fresh) + self._creating >= self.low:
                    self._wake.wait(timeout=1.0)
                if self._closed:
                    return
                self._creating = self.high - len(self._fresh)
                want = self._creating
            failed = False
            for _ in range(want):
                if self._closed or lifecycle.shutting_down():
                    break
                try:
                    sb = DockerSandbox(self.config)
                except Exception as e:
                    # Daemon down or image missing: acquire() reports it to the caller; the
                    # filler pauses until the next acquire instead of retrying in a loop.
                    self.last_error = e
                    failed = True
                    break
                with self._lock:
                    self._creating = max(self._creating - 1, 0)
                    if self._closed:
                        sb.close()
                        break
                    self._fresh.append(sb)
            with self._lock:
                self._creating = 0
                if failed and not self._closed:
                    self._paused = True
                    while self._paused and not self._closed:
                        self._wake.wait(timeout=5.0)


_POOLS: dict[SandboxConfig, SandboxPool] = {}
_POOLS_LOCK = threading.Lock()


def shared_pool(config: SandboxConfig, **kwargs) -> SandboxPool:
    """One process-wide pool per config (envs of the same image share warm containers)."""
    with _POOLS_LOCK:
        pool = _POOLS.get(config)
        if pool is None or pool._closed:
            pool = _POOLS[config] = SandboxPool(config, **kwargs)
        return pool


def close_shared_pools() -> None:
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for p in pools:
        p.close()
