"""The image registry: content hashing and build planning (no daemon), and the built base
image itself (docker)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aem_envs import images
from aem_envs.images import (
    BASE_IMAGE,
    HASH_LABEL,
    IMAGES,
    DockerUnavailable,
    ImageError,
    ImageSpec,
    build_order,
    content_hash,
    plan_builds,
    read_packages,
)

REPO = Path(__file__).resolve().parents[1]


# --- pure logic --------------------------------------------------------------------------------
def _ctx(root: Path, name: str, files: dict[str, str]) -> Path:
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text(text)
    return d


@pytest.fixture()
def specs(tmp_path: Path) -> dict[str, ImageSpec]:
    base = _ctx(tmp_path, "base", {"Dockerfile": "FROM debian:bookworm-slim\n", "packages.txt": "bash\n"})
    child = _ctx(tmp_path, "child", {"Dockerfile": "ARG BASE_IMAGE=aem/base:0\nFROM ${BASE_IMAGE}\n"})
    leaf = _ctx(tmp_path, "leaf", {"Dockerfile": "FROM aem/child:0\n"})
    return {
        "base": ImageSpec("base", "aem/base:0", base, external_base="debian:bookworm-slim"),
        "child": ImageSpec("child", "aem/child:0", child, depends_on=("base",)),
        "leaf": ImageSpec("leaf", "aem/leaf:0", leaf, depends_on=("child",)),
    }


def test_base_image_name_constants():
    assert BASE_IMAGE == "aem/base:0"
    assert IMAGES["base"].tag == BASE_IMAGE
    assert IMAGES["base"].context == REPO / "envs_docker" / "base"
    assert IMAGES["base"].depends_on == ()


def test_content_hash_is_stable_and_tracks_every_input(specs, tmp_path):
    h0 = content_hash("base", specs)
    assert re.fullmatch(r"[0-9a-f]{64}", h0)
    assert content_hash("base", specs) == h0

    df = specs["base"].context / "Dockerfile"
    df.write_text("FROM debian:bookworm-slim\nRUN true\n")
    h1 = content_hash("base", specs)
    assert h1 != h0

    (specs["base"].context / "extra.sh").write_text("echo hi\n")
    h2 = content_hash("base", specs)
    assert h2 != h1

    os.chmod(specs["base"].context / "extra.sh", 0o755)  # the exec bit is part of the image
    h3 = content_hash("base", specs)
    assert h3 != h2

    cache = specs["base"].context / "__pycache__"
    cache.mkdir()
    (cache / "x.cpython-311.pyc").write_bytes(b"\0junk")
    assert content_hash("base", specs) == h3  # byte-code caches do not rebuild images


def test_a_change_in_a_dependency_changes_every_image_above_it(specs):
    before = {n: content_hash(n, specs) for n in specs}
    (specs["base"].context / "packages.txt").write_text("bash\ngit\n")
    after = {n: content_hash(n, specs) for n in specs}
    assert all(before[n] != after[n] for n in specs)

    (specs["leaf"].context / "Dockerfile").write_text("FROM aem/child:0\nRUN true\n")
    again = {n: content_hash(n, specs) for n in specs}
    assert again["base"] == after["base"] and again["child"] == after["child"]
    assert again["leaf"] != after["leaf"]


def test_build_order_puts_dependencies_first_and_rejects_cycles_and_unknown_names(specs, tmp_path):
    assert build_order(["leaf"], specs) == ["base", "child", "leaf"]
    assert build_order(None, specs) == ["base", "child", "leaf"]
    assert build_order(["child", "base"], specs) == ["base", "child"]
    with pytest.raises(ImageError, match="unknown image 'nope'"):
        build_order(["nope"], specs)
    loop = dict(specs)
    loop["base"] = ImageSpec("base", "aem/base:0", specs["base"].context, depends_on=("leaf",))
    with pytest.raises(ImageError, match="cycle"):
        build_order(["leaf"], loop)


def test_plan_builds_skips_current_images_and_forces_only_named_ones(specs):
    hashes = {n: content_hash(n, specs) for n in specs}
    tags = {n: specs[n].tag for n in specs}

    # nothing present: everything is built, dependencies first
    plan = plan_builds(["leaf"], {}, specs=specs)
    assert [(n, b) for n, _, b in plan] == [("base", True), ("child", True), ("leaf", True)]
    assert [h for _, h, _ in plan] == [hashes["base"], hashes["child"], hashes["leaf"]]

    # all current: nothing is built
    current = {tags[n]: hashes[n] for n in specs}
    assert [b for _, _, b in plan_builds(["leaf"], current, specs=specs)] == [False, False, False]

    # a stale or unlabelled child is rebuilt, its current base is not
    stale = dict(current, **{tags["child"]: "0" * 64})
    assert [(n, b) for n, _, b in plan_builds(["child"], stale, specs=specs)] == [("base", False), ("child", True)]
    unlabelled = dict(current, **{tags["child"]: None})
    assert plan_builds(["child"], unlabelled, specs=specs)[1][2] is True

    # force rebuilds what was named, not the dependencies it pulled in
    forced = plan_builds(["child"], current, force=True, specs=specs)
    assert [(n, b) for n, _, b in forced] == [("base", False), ("child", True)]
    assert all(b for _, _, b in plan_builds(None, current, force=True, specs=specs))


def test_base_context_is_consistent_between_the_registry_and_offline_paths():
    spec = IMAGES["base"]
    pkgs = read_packages(spec.context)
    for needed in ("python3", "python3-pytest", "git", "coreutils", "procps", "passwd", "bash"):
        assert needed in pkgs
    assert len(pkgs) == len(set(pkgs))
    text = spec.dockerfile.read_text()
    # the registry build starts from the spec's external base by default
    assert re.search(r"^ARG BASE_IMAGE=(\S+)$", text, re.M).group(1) == spec.external_base
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M)
    assert "packages.txt" in text  # both paths install the same package list


def test_read_packages_ignores_comments_and_blank_lines(tmp_path):
    (tmp_path / "packages.txt").write_text("# header\nbash\n\n git  # the vcs\npython3 jq\n")
    assert read_packages(tmp_path) == ["bash", "git", "python3", "jq"]
    with pytest.raises(ImageError, match="packages.txt is missing"):
        read_packages(tmp_path / "nowhere")


def test_apt_sources_file_honours_the_override(tmp_path, monkeypatch):
    f = tmp_path / "my.sources"
    f.write_text("Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm\nComponents: main\n")
    monkeypatch.setenv("AEM_APT_SOURCES", str(f))
    assert images.apt_sources_file() == f


def test_an_unreachable_engine_gives_one_line_naming_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    with pytest.raises(DockerUnavailable) as e:
        images.docker_client(timeout=5)
    msg = str(e.value)
    assert "\n" not in msg and msg.endswith("start it with: bash scripts/engine.sh")

    env = dict(os.environ, DOCKER_HOST=f"unix://{tmp_path}/no-such.sock")
    p = subprocess.run([sys.executable, "-m", "aem_envs.cli", "images", "list"], capture_output=True,
                       text=True, env=env, timeout=60)
    assert p.returncode == 1
    assert p.stderr.strip().startswith("error: Docker engine not reachable")
    assert "bash scripts/engine.sh" in p.stderr


def test_cli_parses_the_images_commands():
    from aem_envs.cli import build_parser

    a = build_parser().parse_args(["images", "build", "base", "--mode", "offline", "--force", "--json"])
    assert (a.names, a.mode, a.force, a.json) == (["base"], "offline", True, True)
    a = build_parser().parse_args(["images", "list", "--json"])
    assert a.json and a.names == []
    with pytest.raises(SystemExit):
        build_parser().parse_args(["images", "build", "--mode", "cloud"])


# --- the built images ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client():
    try:
        c = images.docker_client()
    except DockerUnavailable as e:
        if os.environ.get("CI"):
            pytest.fail(str(e))
        pytest.skip(str(e))
    if not images.image_exists(BASE_IMAGE, c):
        pytest.fail(f"{BASE_IMAGE} is missing; build it with: aem-envs images build")
    return c


def _run(client, cmd: str, **kw) -> str:
    out = client.containers.run(BASE_IMAGE, ["bash", "-c", cmd], network_disabled=True, remove=True,
                                labels={"org.aem.test": "test_images"}, **kw)
    return out.decode()


@pytest.mark.docker
def test_base_image_is_built_and_current(client):
    info = client.api.inspect_image(BASE_IMAGE)
    labels = info["Config"]["Labels"]
    assert labels[HASH_LABEL] == content_hash("base")
    assert labels[images.MODE_LABEL] in ("registry", "offline")
    assert info["Config"]["WorkingDir"] == "/workspace"
    assert any(e.startswith("LANG=C.UTF-8") for e in info["Config"]["Env"])
    assert images.image_exists("base", client) and images.image_exists(BASE_IMAGE, client)
    assert not images.image_exists("aem/no-such-image:0", client)


@pytest.mark.docker
def test_base_image_has_the_tools_and_the_agent_user(client):
    out = _run(client, "python3 -c 'import sys; print(sys.version_info[:2])'; python3 -m pytest --version;"
                       " git --version; id -u agent; getent passwd agent; stat -c '%U %a' /workspace;"
                       " for t in ls cat sed grep gawk find tar gzip file bc diff patch ps timeout tini jq;"
                       " do command -v $t >/dev/null || echo MISSING $t; done")
    lines = out.splitlines()
    assert re.match(r"\(3, (1[1-9])\)", lines[0])
    assert lines[1].startswith("pytest ")
    assert lines[2].startswith("git version 2.")
    assert lines[3] == "1000"
    assert lines[4].split(":")[5:] == ["/home/agent", "/bin/bash"]
    assert lines[5] == "agent 755"
    assert "MISSING" not in out


@pytest.mark.docker
def test_sandbox_shell_is_an_execute_only_bash(client):
    # Execute-only makes the kernel mark the shell non-dumpable (see the Dockerfile).
    out = _run(client, "stat -c '%U %a' /usr/libexec/aem/bash; cmp /bin/bash /usr/libexec/aem/bash && echo same;"
                       " su agent -s /bin/sh -c 'cat /usr/libexec/aem/bash >/dev/null 2>&1 || echo unreadable;"
                       " /usr/libexec/aem/bash -c \"echo runs\"'")
    assert out.split("\n") == ["root 711", "same", "unreadable", "runs", ""], out


@pytest.mark.docker
def test_a_stale_aem_image_is_refused_with_the_rebuild_command(client, monkeypatch):
    from aem_envs.sandbox import ImageMissing, lifecycle

    monkeypatch.setattr(lifecycle, "_known_images", set())
    lifecycle.ensure_image(BASE_IMAGE)  # current: accepted
    monkeypatch.setattr(lifecycle, "_known_images", set())
    monkeypatch.setattr(images, "content_hash", lambda name, specs=None: "0" * 64)  # files changed since
    with pytest.raises(ImageMissing, match=r"built from older files than .*envs_docker/base; rebuild it with: aem-envs images build"):
        lifecycle.ensure_image(BASE_IMAGE)
    monkeypatch.setattr(images, "content_hash", lambda name, specs=None: (_ for _ in ()).throw(images.ImageError("no context")))
    lifecycle.ensure_image(BASE_IMAGE)  # not a source checkout: cannot tell, so accepted


@pytest.mark.docker
def test_agent_can_work_in_workspace_and_run_pytest_offline(client):
    script = (
        "set -e; cd /workspace; git init -q repo; cd repo;"
        " printf 'def add(a, b):\\n    return a + b\\n' > calc.py;"
        " printf 'from calc import add\\ndef test_add():\\n    assert add(2, 3) == 5\\n' > test_calc.py;"
        " git add -A; git -c user.email=a@b -c user.name=a commit -qm init;"
        " python3 -m pytest -q -p no:cacheprovider 2>&1 | tail -1; whoami; echo $HOME"
    )
    out = _run(client, script, user="agent").splitlines()
    assert re.match(r"1 passed", out[-3]), out
    assert out[-2:] == ["agent", "/home/agent"]


@pytest.mark.docker
def test_images_list_json_reports_the_base_present_and_current(client):
    p = subprocess.run([sys.executable, "-m", "aem_envs.cli", "images", "list", "--json"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    rows = {r["name"]: r for r in json.loads(p.stdout.strip().splitlines()[-1])["images"]}
    base = rows["base"]
    assert base["tag"] == BASE_IMAGE and base["present"] and base["up_to_date"]
    assert base["image_hash"] == base["content_hash"] == content_hash("base")
    assert 50 < base["size_mb"] < 1000


@pytest.mark.docker
def test_a_derived_image_builds_offline_from_the_base_and_is_skipped_when_current(client, tmp_path):
    ctx = _ctx(tmp_path, "derived", {
        "Dockerfile": "ARG BASE_IMAGE=aem/base:0\nFROM ${BASE_IMAGE}\nCOPY hello.txt /opt/hello.txt\n"
                      "RUN python3 -c \"print(open('/opt/hello.txt').read().upper())\" > /opt/HELLO\n",
        "hello.txt": "hello v1",
    })
    tag = "aem/test-derived:0"
    spec = images.register_image("test-derived", context=ctx, tag=tag)
    try:
        first = images.build(["test-derived"], mode="offline", client=client, log=lambda s: None)
        assert [(r.name, r.action) for r in first] == [("base", "skipped"), ("test-derived", "built")]
        assert first[1].mode == "offline"
        assert client.api.inspect_image(tag)["Config"]["Labels"][HASH_LABEL] == content_hash("test-derived")
        out = client.containers.run(tag, ["cat", "/opt/HELLO"], network_disabled=True, remove=True)
        assert out.decode().strip() == "HELLO V1"

        again = images.build(["test-derived"], client=client, log=lambda s: None)
        assert [r.action for r in again] == ["skipped", "skipped"]

        (ctx / "hello.txt").write_text("hello v2")
        third = images.build(["test-derived"], mode="offline", client=client, log=lambda s: None)
        assert [r.action for r in third] == ["skipped", "built"]
        out = client.containers.run(tag, ["cat", "/opt/HELLO"], network_disabled=True, remove=True)
        assert out.decode().strip() == "HELLO V2"
        status = {s.name: s for s in images.image_status(["test-derived"], client)}
        assert status["test-derived"].up_to_date and status["base"].up_to_date
    finally:
        images.IMAGES.pop(spec.name, None)
        try:
            client.images.remove(tag, force=True)
        except Exception:
            pass


@pytest.mark.docker
def test_a_failing_build_reports_the_failing_step(client, tmp_path):
    ctx = _ctx(tmp_path, "broken", {"Dockerfile": "ARG BASE_IMAGE=aem/base:0\nFROM ${BASE_IMAGE}\n"
                                                  "RUN echo about-to-fail && exit 3\n"})
    spec = images.register_image("test-broken", context=ctx, tag="aem/test-broken:0")
    try:
        with pytest.raises(ImageError, match=r"(?s)docker build of aem/test-broken:0 failed.*about-to-fail"):
            images.build(["test-broken"], mode="offline", client=client, log=lambda s: None)
        assert not images.image_exists("aem/test-broken:0", client)
    finally:
        images.IMAGES.pop(spec.name, None)


@pytest.mark.docker
def test_mode_resolution_prefers_a_reachable_registry_and_explains_an_unreachable_one(client):
    base = IMAGES["base"]
    assert images.resolve_mode(base, "offline", client) == "offline"
    derived = ImageSpec("d", "aem/d:0", base.context, depends_on=("base",))
    assert images.resolve_mode(derived, "auto", client) == "registry"  # FROM a local aem image
    assert images.resolve_mode(derived, "offline", client) == "offline"
    with pytest.raises(ImageError, match="unknown build mode"):
        images.resolve_mode(base, "cloud", client)  # type: ignore[arg-type]
    # an external base that no registry serves: auto falls back, registry says what to do
    nowhere = ImageSpec("x", "aem/x:0", base.context, external_base="aem-test/not-in-any-registry:0")
    assert images.resolve_mode(nowhere, "auto", client) == "offline"
    with pytest.raises(ImageError, match="--mode offline"):
        images.resolve_mode(nowhere, "registry", client)
    # a base present locally counts as available
    assert images.registry_available(BASE_IMAGE, client)
