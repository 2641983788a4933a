"""Docker images of the aem environments: one registry of image specs and one build command.

Every image lives in ``envs_docker/<name>/`` (a ``Dockerfile`` and its build context) and is
tagged ``aem/<name>:<IMAGE_VERSION>``. The base image, :data:`BASE_IMAGE`, is Debian bookworm
with the tools shell and code-repair tasks use and a non-root user ``agent`` (uid 1000).

Two ways to build, same image names either way:

* **registry** — the plain ``docker build``; ``FROM debian:bookworm-slim`` is pulled.
* **offline** — no registry reachable: ``mmdebstrap`` makes a Debian rootfs from the
  machine's own apt sources and ``envs_docker/base/packages.txt``, ``docker import`` turns
  it into an image, and the same Dockerfile runs on top of it with no network.

``mode="auto"`` uses the registry when the external base can be had (present locally, or the
registry answers within a few seconds) and falls back to offline otherwise.

Each built image carries a label with a hash of its build context (and of its dependencies'
hashes), so a build is skipped while nothing it is made from changed.

Adding an image is one line in :data:`IMAGES` below (or a call to :func:`register_image` from
other code) plus its ``envs_docker/<name>/Dockerfile``, written as::

    ARG BASE_IMAGE=aem/base:0
    FROM ${BASE_IMAGE}
    ...

A derived image's build steps must not need the network, because the offline path builds it
with none; Debian packages it needs belong in ``envs_docker/base/packages.txt``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # the docker SDK is imported lazily so `aem-envs list` never needs it
    import docker

#: Version of every aem image tag. Bump it when images change incompatibly.
IMAGE_VERSION = "0"
#: Repository prefix of every aem image.
IMAGE_REPO = "aem"
#: The base image every environment image builds on.
BASE_IMAGE = f"{IMAGE_REPO}/base:{IMAGE_VERSION}"
#: Where the imported mmdebstrap rootfs is tagged in the offline build.
BASE_ROOTFS_IMAGE = f"{IMAGE_REPO}/base-rootfs:{IMAGE_VERSION}"
#: Image label holding the content hash an image was built from.
HASH_LABEL = "org.aem.content-hash"
#: Image label holding how the image was built ("registry" or "offline").
MODE_LABEL = "org.aem.build-mode"
#: Part of every hash; bump to force every image to rebuild after a change of build logic.
_HASH_SCHEME = "aem-images-1"

Mode = Literal["auto", "registry", "offline"]
ENGINE_HINT = "start it with: bash scripts/engine.sh"

# Directory with one build context per image. The package is installed editable from the
# repository, so it sits beside the package; AEM_DOCKER_DIR points elsewhere if needed.
DOCKER_DIR = Path(os.environ.get("AEM_DOCKER_DIR", Path(__file__).resolve().parent.parent / "envs_docker"))


class ImageError(RuntimeError):
    """An image could not be built or inspected; the message names the fix."""


class DockerUnavailable(ImageError):
    """The Docker engine cannot be reached."""


@dataclass(frozen=True)
class ImageSpec:
    """How to build one image.

    ``external_base`` is the registry image the Dockerfile starts from (None when it starts
    from another aem image); only such an image has an offline rootfs path.
    ``depends_on`` names aem images that must exist first; the first one is passed to the
    Dockerfile as the ``BASE_IMAGE`` build argument.
    """

    name: str
    tag: str
    context: Path
    depends_on: tuple[str, ...] = ()
    external_base: str | None = None
    description: str = ""

    @property
    def dockerfile(self) -> Path:
        return self.context / "Dockerfile"


IMAGES: dict[str, ImageSpec] = {}


def register_image(
    name: str,
    *,
    depends_on: Sequence[str] = ("base",),
    description: str = "",
    tag: str | None = None,
    context: Path | str | None = None,
    external_base: str | None = None,
) -> ImageSpec:
    """Add an image to :data:`IMAGES`; defaults: ``aem/<name>:<IMAGE_VERSION>`` from
    ``envs_docker/<name>/``, built FROM the base image."""
    spec = ImageSpec(
        name=name,
        tag=tag or f"{IMAGE_REPO}/{name}:{IMAGE_VERSION}",
        context=Path(context) if context is not None else DOCKER_DIR / name,
        depends_on=tuple(depends_on),
        external_base=external_base,
        description=description,
    )
    IMAGES[name] = spec
    return spec


# --- the image registry: one line per image -------------------------------------------------
register_image("base", depends_on=(), tag=BASE_IMAGE, external_base="debian:bookworm-slim",
               description="Debian bookworm, python3 + pytest + git + shell tools, user agent (uid 1000)")


# --- content hashing (pure; no daemon needed) ------------------------------------------------
_IGNORED_PARTS = {"__pycache__", ".pytest_cache", ".git"}


def context_files(context: Path) -> list[Path]:
    """Files of a build context that affect the image, in a stable order."""
    if not context.is_dir():
        raise ImageError(f"build context {context} does not exist")
    files = [
        p for p in context.rglob("*")
        if p.is_file() and not _IGNORED_PARTS.intersection(p.relative_to(context).parts)
        and p.suffix != ".pyc"
    ]
    return sorted(files, key=lambda p: p.relative_to(context).as_posix())


def content_hash(name: str, specs: dict[str, ImageSpec] | None = None) -> str:
    """SHA-256 over an image's tag, context files (path, exec bit, bytes) and the hashes of
    the images it depends on, so a change anywhere below an image rebuilds it."""
    specs = IMAGES if specs is None else specs
    spec = _spec(name, specs)
    h = hashlib.sha256()
    h.update(f"{_HASH_SCHEME}\0{spec.tag}\0{spec.external_base}\0".encode())
    for dep in spec.depends_on:
        h.update(f"dep:{dep}={content_hash(dep, specs)}\0".encode())
    for f in context_files(spec.context):
        rel = f.relative_to(spec.context).as_posix()
        exe = os.access(f, os.X_OK)
        h.update(f"file:{rel}:{int(exe)}:{f.stat().st_size}\0".encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def build_order(names: Iterable[str] | None, specs: dict[str, ImageSpec] | None = None) -> list[str]:
    """The named images (all when None) and everything they depend on, dependencies first."""
    specs = IMAGES if specs is None else specs
    wanted = list(specs) if names is None else list(names)
    order: list[str] = []
    visiting: set[str] = set()

    def visit(n: str) -> None:
        if n in order:
            return
        if n in visiting:
            raise ImageError(f"image dependency cycle through {n!r}")
        visiting.add(n)
        for d in _spec(n, specs).depends_on:
            visit(d)
        visiting.discard(n)
        order.append(n)

    for n in wanted:
        visit(n)
    return order


def plan_builds(
    names: Iterable[str] | None,
    present_hashes: dict[str, str | None],
    *,
    force: bool = False,
    specs: dict[str, ImageSpec] | None = None,
) -> list[tuple[str, str, bool]]:
    """Decide what to build: ``(name, expected_hash, build?)`` in build order.

    ``present_hashes`` maps a tag to the hash label of the image under that tag (None: absent
    or unlabelled). An image is built when absent, when its hash differs, or when ``force``
    is set and it was named explicitly; dependencies pulled in implicitly are not forced.
    """
    specs = IMAGES if specs is None else specs
    named = set(specs) if names is None else set(names)
    out = []
    for n in build_order(names, specs):
        want = content_hash(n, specs)
        have = present_hashes.get(specs[n].tag)
        out.append((n, want, have != want or (force and n in named)))
    return out


def _spec(name: str, specs: dict[str, ImageSpec]) -> ImageSpec:
    try:
        return specs[name]
    except KeyError:
        raise ImageError(f"unknown image {name!r}; known images: {', '.join(specs) or 'none'}") from None


# --- talking to the engine -------------------------------------------------------------------
def docker_client(timeout: int = 120) -> docker.DockerClient:
    """A client of the local engine, or :class:`DockerUnavailable` naming how to start one."""
    try:
        import docker
    except ImportError as e:  # pragma: no cover - docker is a declared dependency
        raise DockerUnavailable("the docker Python package is missing; install it with: pip install docker") from e
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as e:
        reason = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise DockerUnavailable(f"Docker engine not reachable ({reason}); {ENGINE_HINT}") from None
    return client


def _label_hash(client: docker.DockerClient, tag: str) -> str | None:
    info = _inspect(client, tag)
    if info is None:
        return None
    return ((info.get("Config") or {}).get("Labels") or {}).get(HASH_LABEL) or None


def _inspect(client: docker.DockerClient, tag: str) -> dict[str, Any] | None:
    import docker.errors

    try:
        return client.api.inspect_image(tag)
    except docker.errors.ImageNotFound:
        return None


def image_exists(name_or_tag: str, client: docker.DockerClient | None = None) -> bool:
    """Whether an image is present locally; takes a spec name ("base") or a tag."""
    tag = IMAGES[name_or_tag].tag if name_or_tag in IMAGES else name_or_tag
    return _inspect(client or docker_client(), tag) is not None


@dataclass
class ImageStatus:
    name: str
    tag: str
    present: bool
    up_to_date: bool
    content_hash: str
    image_hash: str | None
    build_mode: str | None
    size_mb: float | None
    depends_on: list[str] = field(default_factory=list)


def image_status(names: Iterable[str] | None = None, client: docker.DockerClient | None = None) -> list[ImageStatus]:
    """Presence and freshness of each image (all registered ones when ``names`` is None)."""
    client = client or docker_client()
    out = []
    for n in build_order(names) if names is not None else list(IMAGES):
        spec = IMAGES[n]
        info = _inspect(client, spec.tag)
        labels = ((info or {}).get("Config") or {}).get("Labels") or {}
        want = content_hash(n)
        out.append(ImageStatus(
            name=n, tag=spec.tag, present=info is not None, up_to_date=labels.get(HASH_LABEL) == want,
            content_hash=want, image_hash=labels.get(HASH_LABEL), build_mode=labels.get(MODE_LABEL),
            size_mb=round(info["Size"] / 2**20, 1) if info else None, depends_on=list(spec.depends_on),
        ))
    return out


# --- choosing between registry and offline ---------------------------------------------------
def registry_available(ref: str, client: docker.DockerClient | None = None, timeout_s: int = 20) -> bool:
    """Whether ``ref`` can be used as a FROM image: present locally, or the registry serves
    its manifest within ``timeout_s`` (a name lookup that fails answers in well under 1 s)."""
    import docker.errors

    client = client or docker_client()
    if _inspect(client, ref) is not None:
        return True
    quick = docker_client(timeout=timeout_s)
    try:
        quick.api.inspect_distribution(ref)
        return True
    except (docker.errors.APIError, docker.errors.DockerException, OSError):
        return False
    except Exception:  # a read timeout surfaces as a requests exception
        return False
    finally:
        quick.close()


def resolve_mode(spec: ImageSpec, mode: Mode, client: docker.DockerClient) -> Literal["registry", "offline"]:
    if mode not in ("auto", "registry", "offline"):
        raise ImageError(f"unknown build mode {mode!r}; use auto, registry or offline")
    if spec.external_base is None:  # built FROM aem images: no registry involved either way
        return "offline" if mode == "offline" else "registry"
    if mode == "offline":
        return mode
    if registry_available(spec.external_base, client):
        return "registry"
    if mode == "registry":
        raise ImageError(f"{spec.external_base} is neither present nor pullable from a registry; "
                         f"build with: aem-envs images build {spec.name} --mode offline")
    return "offline"


# --- the offline rootfs ----------------------------------------------------------------------
def apt_sources_file() -> Path:
    """The machine's own apt sources file, given to mmdebstrap as its mirror argument so
    the rootfs comes from the same mirror the host uses (no host is named in our code)."""
    override = os.environ.get("AEM_APT_SOURCES")
    candidates = [Path(override)] if override else []
    candidates += [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]
    d = Path("/etc/apt/sources.list.d")
    if d.is_dir():
        candidates += sorted(d.glob("*.sources")) + sorted(d.glob("*.list"))
    for c in candidates:
        try:
            text = c.read_text()
        except OSError:
            continue
        lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        if any(ln.startswith(("deb ", "URIs:")) for ln in lines) and "debian" in text:
            return c
    raise ImageError("no Debian apt sources file found (looked in /etc/apt/sources.list.d/debian.sources "
                     "and /etc/apt/sources.list); set AEM_APT_SOURCES=<file> or build with --mode registry")


def read_packages(context: Path) -> list[str]:
    """Package names of ``packages.txt`` in a build context ('#' comments, blank lines ignored)."""
    path = context / "packages.txt"
    if not path.is_file():
        raise ImageError(f"{path} is missing; the offline build installs the packages it lists")
    pkgs = []
    for line in path.read_text().splitlines():
        pkgs.extend(line.split("#", 1)[0].split())
    return pkgs


def build_rootfs(spec: ImageSpec, out_tar: Path, log: Callable[[str], None], suite: str = "bookworm") -> None:
    """``mmdebstrap`` a minimal Debian with the spec's packages into ``out_tar``."""
    exe = shutil.which("mmdebstrap")
    if exe is None:
        raise ImageError("mmdebstrap not found, needed for the offline build; install it with: bash scripts/engine.sh")
    cmd = [
        exe, "--variant=minbase", "--include=" + ",".join(read_packages(spec.context)),
        # what debian:bookworm-slim leaves out too: docs, man pages, translations
        "--dpkgopt=path-exclude=/usr/share/man/*", "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-include=/usr/share/doc/*/copyright", "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--dpkgopt=path-exclude=/usr/share/info/*",
        suite, str(out_tar), str(apt_sources_file()),
    ]
    log(f"  mmdebstrap {suite} with {len(read_packages(spec.context))} packages -> {out_tar.name}")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    except subprocess.TimeoutExpired:
        raise ImageError("mmdebstrap took over 20 minutes; is the Debian mirror reachable?") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise ImageError(f"mmdebstrap failed (exit {proc.returncode}):\n{tail}")
    log(f"  rootfs: {out_tar.stat().st_size / 2**20:.0f} MiB in {time.perf_counter() - t0:.1f} s")


# --- building --------------------------------------------------------------------------------
@dataclass
class BuildResult:
    name: str
    tag: str
    action: Literal["built", "skipped"]
    mode: str | None
    seconds: float
    content_hash: str


def _docker_build(client: docker.DockerClient, spec: ImageSpec, *, buildargs: dict[str, str],
                  labels: dict[str, str], network: str | None, log: Callable[[str], None],
                  verbose: bool) -> None:
    tail: list[str] = []
    stream = client.api.build(
        path=str(spec.context), tag=spec.tag, buildargs=buildargs, labels=labels,
        network_mode=network, rm=True, forcerm=True, pull=False, decode=True,
    )
    for chunk in stream:
        if "error" in chunk:
            text = "\n".join(tail[-15:] + [str(chunk["error"]).strip()])
            raise ImageError(f"docker build of {spec.tag} failed:\n{text}")
        line = str(chunk.get("stream", "")).rstrip()
        if line:
            tail = (tail + [line])[-30:]
            if verbose:
                log("    " + line)


def build_one(spec: ImageSpec, want_hash: str, mode: Literal["registry", "offline"], client: docker.DockerClient,
              *, log: Callable[[str], None] = print, verbose: bool = False) -> None:
    """Build one image in the given mode and label it with ``want_hash``."""
    if not spec.dockerfile.is_file():
        raise ImageError(f"{spec.dockerfile} is missing")
    labels = {HASH_LABEL: want_hash, MODE_LABEL: mode}
    buildargs: dict[str, str] = {}
    if spec.depends_on:
        buildargs["BASE_IMAGE"] = IMAGES[spec.depends_on[0]].tag
    network: str | None = None
    old_rootfs: dict[str, Any] | None = None
    if mode == "offline":
        network = "none"  # proves the offline path needs no network
        if spec.external_base is not None:
            with tempfile.TemporaryDirectory(prefix=f"aem-{spec.name}-rootfs-") as tmp:
                tar = Path(tmp) / "rootfs.tar"
                build_rootfs(spec, tar, log)
                repo, tag = f"{IMAGE_REPO}/{spec.name}-rootfs", IMAGE_VERSION  # base: BASE_ROOTFS_IMAGE
                old_rootfs = _inspect(client, f"{repo}:{tag}")
                t0 = time.perf_counter()
                client.api.import_image_from_file(
                    str(tar), repository=repo, tag=tag,
                    changes=['CMD ["/bin/bash"]', "ENV LANG=C.UTF-8"],
                )
                log(f"  docker import -> {repo}:{tag} in {time.perf_counter() - t0:.1f} s")
            buildargs["BASE_IMAGE"] = f"{repo}:{tag}"
    old = _inspect(client, spec.tag)
    _docker_build(client, spec, buildargs=buildargs, labels=labels, network=network, log=log, verbose=verbose)
    new = _inspect(client, spec.tag)
    if old is not None and new is not None and old["Id"] != new["Id"]:
        _remove_quietly(client, old["Id"])
    if old_rootfs is not None and old_rootfs["Id"] != (_inspect(client, buildargs["BASE_IMAGE"]) or {}).get("Id"):
        # after the old image, which it was the parent of
        _remove_quietly(client, old_rootfs["Id"])


def _remove_quietly(client: docker.DockerClient, image_id: str) -> None:
    """Drop the image a rebuild replaced, so rebuilds leave no dangling images; one still
    used by a container or by a child image stays (the engine refuses, which is fine)."""
    import docker.errors

    try:
        client.api.remove_image(image_id)
    except docker.errors.APIError:
        pass


def build(
    names: Iterable[str] | None = None,
    mode: Mode = "auto",
    force: bool = False,
    *,
    client: docker.DockerClient | None = None,
    log: Callable[[str], None] = print,
    verbose: bool = False,
) -> list[BuildResult]:
    """Build the named images (all when None) and their dependencies, skipping those whose
    content hash label is current unless ``force``. Raises :class:`ImageError` on failure."""
    client = client or docker_client(timeout=1800)
    names = None if names is None else list(names)
    order = build_order(names)
    present = {IMAGES[n].tag: _label_hash(client, IMAGES[n].tag) for n in order}
    results = []
    for n, want, needed in plan_builds(names, present, force=force):
        spec = IMAGES[n]
        if not needed:
            results.append(BuildResult(n, spec.tag, "skipped", None, 0.0, want))
            log(f"{spec.tag}: up to date")
            continue
        m = resolve_mode(spec, mode, client)
        log(f"{spec.tag}: building ({m})")
        t0 = time.perf_counter()
        build_one(spec, want, m, client, log=log, verbose=verbose)
        dt = time.perf_counter() - t0
        log(f"{spec.tag}: built in {dt:.1f} s")
        results.append(BuildResult(n, spec.tag, "built", m, round(dt, 2), want))
    return results


def ensure_images(names: Iterable[str] | None = ("base",), mode: Mode = "auto",
                  log: Callable[[str], None] = lambda s: None) -> list[str]:
    """Make sure the images exist and are current, building only what is missing or stale;
    returns their tags. The call other code makes before it starts containers."""
    results = build(names, mode=mode, log=log)
    return [r.tag for r in results]


# --- `aem-envs images ...` -------------------------------------------------------------------
def _cmd_build(args: argparse.Namespace) -> int:
    log: Callable[[str], None] = (lambda s: print(s, file=sys.stderr)) if args.json else print
    t0 = time.perf_counter()
    try:
        results = build(args.names or None, mode=args.mode, force=args.force, log=log, verbose=args.verbose)
    except ImageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"images": [asdict(r) for r in results], "seconds": round(time.perf_counter() - t0, 2)}))
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    try:
        rows = image_status(args.names or None)
    except ImageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for r in rows:
        state = ("up to date" if r.up_to_date else "stale") if r.present else "absent"
        size = f"{r.size_mb:.0f} MB" if r.size_mb is not None else "-"
        print(f"{r.tag:<24} {state:<11} {r.build_mode or '-':<9} {size:>7}  {IMAGES[r.name].description}")
    if args.json:
        print(json.dumps({"images": [asdict(r) for r in rows]}))
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``aem-envs images build|list`` to the ``aem-envs`` command."""
    p = subparsers.add_parser("images", help="build and list the Docker images of the environments")
    sub = p.add_subparsers(dest="images_cmd", required=True)
    b = sub.add_parser("build", help="build images (skips those already current)")
    b.add_argument("names", nargs="*", help="images to build (default: all; `aem-envs images list` names them)")
    b.add_argument("--mode", choices=["auto", "registry", "offline"], default="auto",
                   help="registry: plain docker build; offline: mmdebstrap rootfs, no registry; "
                        "auto: registry if reachable, else offline")
    b.add_argument("--force", action="store_true", help="rebuild the named images even when current")
    b.add_argument("--verbose", "-v", action="store_true", help="show docker build output")
    b.add_argument("--json", action="store_true", help="print one JSON object of results last")
    b.set_defaults(fn=_cmd_build)
    ls = sub.add_parser("list", help="show each image: present/absent, up to date or stale")
    ls.add_argument("names", nargs="*", help="images to show (default: all)")
    ls.add_argument("--json", action="store_true", help="print one JSON object last")
    ls.set_defaults(fn=_cmd_list)
