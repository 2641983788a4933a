"""Container lifecycle: the docker client, labels, cleanup on exit, the reaper, start limits.

Leaked containers are the most reported failure of agent sandboxes. Three independent layers
stop them here: (1) every sandbox is closed by ``atexit`` and on SIGTERM/SIGHUP; (2) each
container's main process is ``sleep TTL``, so an orphan exits by itself; (3) :func:`reap`
(also run once when a process creates its first sandbox, and as ``aem-envs reap``) removes
labelled containers whose owner process is gone or whose TTL has passed.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aem_envs.sandbox.errors import DaemonDown, DockerMissing

LABEL = "aem.sandbox"
L_RUN, L_PID, L_START, L_HOST = "aem.owner.run", "aem.owner.pid", "aem.owner.start", "aem.owner.host"
L_CREATED, L_EXPIRES, L_IMAGE = "aem.created", "aem.expires", "aem.image"

#: One id per Python process run (labels say which run owns a container).
RUN_ID = uuid.uuid4().hex[:12]
_client = None
_client_lock = threading.Lock()
_swap_supported: bool | None = None
_live: "weakref.WeakSet[Any]" = weakref.WeakSet()
_live_lock = threading.Lock()
_atexit_installed = False
_signals_installed = False
_reaped_once = False
_shutting_down = False
# Threads inside a container create/start (see creating()): the signal handler waits for them.
_creating: dict[int, int] = {}
_creating_cv = threading.Condition()
#: Bounds concurrent container creation (a burst of starts overloads the daemon).
START_SEMAPHORE = threading.BoundedSemaphore(int(os.environ.get("AEM_SANDBOX_MAX_STARTS", "4")))


def _proc_start(pid: int) -> str:
    """Start time of ``pid`` in clock ticks since boot ('' if unknown); guards against pid reuse."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def owner_labels(ttl: float, image: str) -> dict[str, str]:
    now = time.time()
    return {
        LABEL: "1",
        L_RUN: RUN_ID,
        L_PID: str(os.getpid()),
        L_START: _proc_start(os.getpid()),
        L_HOST: socket.gethostname(),
        L_CREATED: f"{now:.0f}",
        L_EXPIRES: f"{now + ttl:.0f}",
        L_IMAGE: image,
    }


def get_client():
    """The shared docker client; raises :class:`DockerMissing` / :class:`DaemonDown`."""
    global _client
    if _client is not None:
        return _client
    with _client_lock:
        if _client is not None:
            return _client
        try:
            import docker
        except ImportError:
            raise DockerMissing("the 'docker' Python package is missing; run: pip install 'docker>=7'") from None
        try:
            client = docker.from_env(timeout=120, max_pool_size=64)
            client.ping()
        except Exception as e:  # DockerException wraps socket errors, missing socket, ...
            msg = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
            if "No such file" in msg or "FileNotFoundError" in msg:
                raise DaemonDown(
                    f"no Docker daemon socket ({msg}); install and start the engine: bash scripts/engine.sh (or: dockerd &)"
                ) from None
            raise DaemonDown(f"the Docker daemon does not answer ({msg}); start it: bash scripts/engine.sh (or: dockerd &)") from None
        _client = client
        return client


_known_images: set[str] = set()


def ensure_image(image: str) -> None:
    """Raise :class:`ImageMissing` unless ``image`` is present locally and, for an aem image,
    built from the current ``envs_docker/`` files (cached once found).

    A stale aem image would run today's sandbox code on yesterday's image (for example
    without the execute-only shell :data:`~aem_envs.sandbox.docker_sandbox.SHELL_CMD` names).
    """
    if image in _known_images:
        return
    import docker

    from aem_envs.sandbox.errors import ImageMissing

    try:
        info = get_client().api.inspect_image(image)
    except docker.errors.ImageNotFound:
        raise ImageMissing(f"Docker image {image!r} is not built; build it with: aem-envs images build") from None
    except docker.errors.APIError as e:
        raise ImageMissing(f"Docker image {image!r} cannot be inspected ({str(e)[:120]}); rebuild it with: aem-envs images build") from None
    except Exception as e:
        raise daemon_down_error(e) from None
    from aem_envs import images

    spec = next((sp for sp in images.IMAGES.values() if sp.tag == image), None)
    built_from = ((info.get("Config") or {}).get("Labels") or {}).get(images.HASH_LABEL)
    if spec is not None and built_from:
        try:
            current = images.content_hash(spec.name)
        except images.ImageError:
            current = built_from  # no build context here (not a source checkout): cannot tell
        if built_from != current:
            raise ImageMissing(
                f"Docker image {image!r} was built from older files than {spec.context}; "
                "rebuild it with: aem-envs images build"
            )
    _known_images.add(image)


def swap_supported() -> bool:
    """Whether the engine can limit swap (cgroup v1 without swap accounting cannot)."""
    global _swap_supported
    if _swap_supported is None:
        try:
            _swap_supported = bool(get_client().info().get("SwapLimit", False))
        except Exception:
            _swap_supported = False
    return _swap_supported


def install_hooks() -> None:
    """Close every live sandbox at exit and on SIGTERM/SIGHUP (idempotent).

    Signal handlers can only be installed from the main thread, and the first sandbox of a
    process is often started by a pool's filler thread or a vector env's worker: so the
    constructors of pools and Docker envs (which run on the caller's thread) call this too,
    and the signal part is retried until a main-thread call succeeds.
    """
    global _atexit_installed, _signals_installed
    with _live_lock:
        if not _atexit_installed:
            _atexit_installed = True
            atexit.register(_at_exit)
        if _signals_installed or threading.current_thread() is not threading.main_thread():
            return
        _signals_installed = True
    for sig in (signal.SIGTERM, signal.SIGHUP):
        _chain_signal(sig)


def register_live(sb: Any) -> None:
    """Track a sandbox so exit handlers can close it; install the handlers once."""
    with _live_lock:
        _live.add(sb)
    install_hooks()


def unregister_live(sb: Any) -> None:
    with _live_lock:
        _live.discard(sb)


def shutting_down() -> bool:
    """True once the interpreter is exiting (no new containers may be created)."""
    return _shutting_down


def _at_exit() -> None:
    global _shutting_down
    _shutting_down = True
    close_all()


def daemon_down_error(e: BaseException) -> DaemonDown:
    msg = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
    return DaemonDown(f"the Docker daemon does not answer ({msg}); start it: bash scripts/engine.sh (or: dockerd &)")


@contextmanager
def creating() -> Iterator[None]:
    """Marks the current thread as creating a container until the block ends.

    On SIGTERM the handler waits (bounded) for other threads' creations to finish: a container
    the daemon is still making when the process dies has no owner left to remove it (a pool's
    filler thread made one that outlived the process in CI). A creation that ends after the
    handler set ``shutting_down()`` removes its own container.
    """
    me = threading.get_ident()
    with _creating_cv:
        _creating[me] = _creating.get(me, 0) + 1
    try:
        yield
    finally:
        with _creating_cv:
            _creating[me] -= 1
            if not _creating[me]:
                del _creating[me]
            _creating_cv.notify_all()


def _wait_for_other_creations(timeout: float) -> None:
    me = threading.get_ident()
    with _creating_cv:
        _creating_cv.wait_for(lambda: not (set(_creating) - {me}), timeout=timeout)


def close_all() -> int:
    """Close every live sandbox of this process; returns how many were closed."""
    with _live_lock:
        live = list(_live)
    n = 0
    for sb in live:
        try:
            sb.close()
            n += 1
        except Exception:
            pass
    return n


def _chain_signal(sig: signal.Signals) -> None:
    prev = signal.getsignal(sig)

    def handler(signum, frame):
        global _shutting_down
        _shutting_down = True
        interrupted = bool(_creating.get(threading.get_ident()))  # this very thread was mid-create
        _wait_for_other_creations(timeout=30.0)  # they see shutting_down and remove their own
        close_all()
        if interrupted:
            _sweep_unowned(SWEEP_SECONDS)
        if callable(prev):
            prev(signum, frame)
        elif prev == signal.SIG_IGN:
            return
        else:  # default action: die by the same signal, as the caller expects
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    try:
        signal.signal(sig, handler)
    except (ValueError, OSError):  # not the main thread / unsupported platform
        pass


#: How long a SIGTERM that interrupted its own thread's container creation keeps sweeping.
SWEEP_SECONDS = 3.0


def _sweep_unowned(seconds: float) -> None:
    """Remove this run's containers for ``seconds`` (every live sandbox is already closed).

    The signal interrupted this thread between the daemon's create and the sandbox's
    registration, so nothing knows that container's id; it carries this run's label, and the
    daemon may still be finishing it (create + start take ~140 ms, longer under load), hence
    the repeated sweep. One created after the sweep stops is left to its TTL and the reaper.
    """
    deadline = time.monotonic() + seconds
    try:
        client = get_client()
        while True:
            for c in client.containers.list(all=True, filters={"label": f"{L_RUN}={RUN_ID}"}, ignore_removed=True):
                try:
                    c.remove(force=True, v=True)
                except Exception:
                    pass  # already going
            if time.monotonic() >= deadline:
                return
            time.sleep(0.25)
    except Exception:
        pass  # the daemon is gone too: the TTL and the reaper are the fallback


def _owner_alive(labels: dict[str, str]) -> bool:
    if labels.get(L_HOST) != socket.gethostname():
        return True  # another machine's container: only its TTL can tell
    try:
        pid = int(labels.get(L_PID, "0"))
    except ValueError:
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    start = labels.get(L_START, "")
    return not start or _proc_start(pid) == start


def reap(force: bool = False, client: Any = None) -> list[dict[str, str]]:
    """Remove labelled containers whose owner is dead, whose TTL has passed or that stopped.

    ``force=True`` removes every labelled container, live owners included. Returns one dict
    per removed container (id, reason, owner pid).
    """
    client = client or get_client()
    removed: list[dict[str, str]] = []
    now = time.time()
    for c in labelled_containers(client):
        labels = c.labels or {}
        try:
            expires = float(labels.get(L_EXPIRES, "0"))
        except ValueError:
            expires = 0.0
        if force:
            reason = "forced"
        elif labels.get(L_RUN) == RUN_ID and labels.get(L_PID) == str(os.getpid()):
            if c.status in ("running", "created"):
                continue  # ours and alive
            reason = "stopped"
        elif not _owner_alive(labels):
            reason = "owner dead"
        elif expires and expires < now:
            reason = "expired"
        elif c.status not in ("running", "created", "restarting"):
            reason = "stopped"
        else:
            continue
        try:
            c.remove(force=True, v=True)
        except Exception as e:  # already gone (a concurrent reaper) is fine
            if "No such container" not in str(e) and "is already in progress" not in str(e):
                raise
        removed.append({"id": c.id[:12], "reason": reason, "owner_pid": labels.get(L_PID, "?")})
    return removed


def reap_once_per_process() -> None:
    """Run :func:`reap` the first time this process creates a sandbox."""
    global _reaped_once
    if _reaped_once:
        return
    _reaped_once = True
    try:
        reap()
    except Exception:
        pass  # reaping is hygiene; a failure here must not block the run


def labelled_containers(client: Any = None) -> list[Any]:
    """All labelled containers (any owner, any state).

    ``ignore_removed``: the SDK lists ids, then inspects each; a container removed in between
    (another process's reaper or pool, a TTL expiry) must not fail the whole listing.
    """
    client = client or get_client()
    return client.containers.list(all=True, filters={"label": LABEL}, ignore_removed=True)
