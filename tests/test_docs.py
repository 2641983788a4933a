"""The first-contact docs stay true: README.md, examples/, the presets' comments and the CLIs.

Each test reads the claim from the doc itself (a snippet, a path, a config key, a command, a
figure) and checks it against the code, so a renamed option, a moved file or a changed env
fails here instead of in a reader's terminal. Everything runs in-process or in short
subprocesses; no Docker, no model training (about 15 s on 2 cores).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import aem_envs
from aem_envs import cli as envs_cli
from aem_train import cli as train_cli
from aem_train import config as train_config

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PRESETS = sorted((ROOT / "aem_train" / "presets").glob("*.yaml"))
CUSTOM_ENV = ROOT / "examples" / "custom_env.py"
SECTIONS = ("model", "env", "rollout", "algo", "ppo", "train")


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def _commands(block: str, prog: str) -> list[list[str]]:
    """``prog`` command lines of a bash block as argv lists (comments dropped, $VARS of the
    block substituted)."""
    variables = dict(re.findall(r'^(\w+)="([^"]*)"', block, flags=re.M))
    out = []
    for line in block.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line.startswith(prog + " "):
            continue
        for name, value in variables.items():
            line = line.replace(f"${name}", value)
        out.append(shlex.split(line)[1:])
    return out


def _doc_texts() -> dict[str, str]:
    """Every first-contact text that names commands, paths or config keys."""
    texts = {"README.md": README, "examples/custom_env.py": CUSTOM_ENV.read_text()}
    for p in [*PRESETS, ROOT / "examples" / "household_cpu.yaml"]:
        texts[str(p.relative_to(ROOT))] = p.read_text()
    return texts


# ------------------------------------------------------------------------------ snippets
def test_readme_python_snippets_run():
    blocks = _blocks(README, "python")
    assert blocks, "README.md lost its Python example"
    for code in blocks:
        ns: dict = {}
        exec(compile(code, "README.md", "exec"), ns)  # noqa: S102 - the README's own example
        for obj in ns.values():  # envs and vector envs the snippet made
            if isinstance(obj, (aem_envs.TextEnv, aem_envs.TextVecEnv)):
                obj.close()


def test_readme_first_screen_is_what_it_is_then_two_commands_then_the_tour():
    head, _, _ = README.partition("## A short tour")
    assert head, "README.md has no '## A short tour' section"
    first_bash = _blocks(head, "bash")
    assert len(first_bash) == 1
    lines = [ln.split("#", 1)[0].strip() for ln in first_bash[0].splitlines() if ln.strip()]
    assert lines == ["bash scripts/quick.sh", "bash scripts/test.sh"]
    for script in ("scripts/quick.sh", "scripts/test.sh"):
        assert (ROOT / script).is_file()
    # The report path the README promises is where quick.sh writes it.
    assert 'OUT="runs/bench/quick"' in (ROOT / "scripts" / "quick.sh").read_text()
    assert "runs/bench/quick/report.md" in head


# ------------------------------------------------------------------------------ paths
_PATH_RE = re.compile(r"(?<![\w/.-])((?:aem_envs|aem_train|examples|scripts|benchmarks|docs|tests|envs_docker)/[\w./*-]*\w\*?)")


@pytest.mark.parametrize("name", list(_doc_texts()))
def test_named_paths_exist(name):
    missing = [p for p in sorted(set(_PATH_RE.findall(_doc_texts()[name]))) if not list(ROOT.glob(p))]
    assert not missing, f"{name} names paths that do not exist: {missing}"


def test_readme_tour_table_files_exist():
    """Tour rows name a path and then bare file names of the same folder (`vector.py`)."""
    rows = README.split("## A short tour", 1)[1].split("Add your own environment", 1)[0]
    checked = 0
    for row in re.findall(r"^\|[^|]*\| (`[^|]*`) \|", rows, flags=re.M):
        names = re.findall(r"`([^`]+)`", row)
        folder = Path(names[0]).parent
        for n in names:
            path = ROOT / (n if "/" in n else folder / n)
            assert list(path.parent.glob(path.name)), f"README tour names {n} ({path.relative_to(ROOT)} missing)"
            checked += 1
    assert checked >= 15


def test_readme_benchmark_table_lists_every_benchmark_script():
    scripts = {f"benchmarks/{p.name}" for p in (ROOT / "benchmarks").glob("*.py")}
    listed = set(re.findall(r"^\| `(benchmarks/\w+\.py)` \|", README, flags=re.M))
    assert listed == scripts


# ------------------------------------------------------------------------------ config keys
_KEY_RE = re.compile(rf"(?:(?<=common\.)|(?<![\w.]))({'|'.join(SECTIONS)})\.([a-z_]+)\b(?!\()(?:=([^\s`\"']+))?")


@pytest.mark.parametrize("name", list(_doc_texts()))
def test_named_config_keys_exist_and_take_the_values_shown(name):
    defaults = train_config.Config()
    seen = 0
    for section, key, value in _KEY_RE.findall(_doc_texts()[name]):
        if key in ("py", "yaml", "json", "jsonl", "md"):  # a file name (rollout.py), not a key
            continue
        seen += 1
        assert hasattr(getattr(defaults, section), key), f"{name}: config key {section}.{key} does not exist"
        if value and value[0] not in "{$" and value.upper() != value:  # a literal value, not DIR/MODEL
            for v in value.split("|"):  # train.preflight=auto|always|never
                train_config.load(None, [f"{section}.{key}={v}"])  # raises ConfigError if refused
    if name == "README.md":
        assert seen >= 10


def test_readme_aem_paragraph_names_real_algo_keys_with_their_defaults():
    para = README.split("## AEM in one paragraph", 1)[1].split("\n## ", 1)[0]
    options = re.search(r"ablations\s*\((.*?)all `algo\.\*` config keys", para, flags=re.S)
    assert options
    names = re.findall(r"`(\w+)`", options.group(1))
    assert {"scope", "direction", "shuffle", "mean_over", "alpha_min", "alpha_max", "renormalize"} <= set(names)
    algo = train_config.Config().algo
    for n in names:
        assert hasattr(algo, n), f"README names algo.{n}, which does not exist"
    assert f"`range_guard` ({algo.range_guard})" in para


# ------------------------------------------------------------------------------ commands
@pytest.mark.parametrize("prog,parser", [("aem-train", train_cli.build_parser), ("aem-envs", envs_cli.build_parser)])
def test_documented_commands_parse_and_their_configs_load(prog, parser):
    texts = [*_blocks(README, "bash"), CUSTOM_ENV.read_text(), (ROOT / "examples" / "household_cpu.yaml").read_text()]
    argvs = [argv for t in texts for argv in _commands(t.replace("#   aem-", "aem-"), prog)]
    assert argvs, f"no {prog} command found in the docs"
    p = parser()
    for argv in argvs:
        for choice in ("quick", "standard", "paper"):  # --preset quick|standard|paper
            args = p.parse_args([a.replace("quick|standard|paper", choice) for a in argv])
        if prog == "aem-train" and args.cmd == "train":
            path = args.config and ROOT / args.config
            if path is None or path.exists():  # my.yaml is the reader's own file
                train_config.load(path, list(args.overrides))


def test_readme_aem_envs_command_list_matches_the_cli():
    line = re.search(r"^`aem-envs (list \|.*?)`", README, flags=re.M | re.S).group(1)
    named = {part.split()[0] for part in line.replace("\n", " ").split(" | ")}
    sub = next(a for a in envs_cli.build_parser()._actions if a.dest == "cmd")
    assert named == set(sub.choices)


def test_custom_env_is_checked_by_module_colon_id_from_a_users_directory(tmp_path):
    shutil.copy(CUSTOM_ENV, tmp_path / "my_envs.py")
    for env_id in ("my_envs:aem/GuessNumber-v0", f"{tmp_path / 'my_envs.py'}:aem/GuessNumber-v0"):
        out = subprocess.run([sys.executable, "-m", "aem_envs.cli", "check", env_id],
                             cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "PASS" in out.stdout
    lines = CUSTOM_ENV.read_text().count("\n")
    claim = int(re.search(r"in ~(\d+) lines", README).group(1))
    assert abs(lines - claim) <= 15, f"README says ~{claim} lines, examples/custom_env.py has {lines}"


# ------------------------------------------------------------------------------ figures
def test_environment_table_figures():
    from aem_envs.envs.household import TASK_TYPES
    from aem_envs.envs.shell import tasks as shell_tasks
    from aem_envs.envs.webshop.shop import DEFAULT_PRODUCTS

    row = {m.group(1): m.group(0) for m in re.finditer(r"^\| `(aem/[\w-]+)` \|.*$", README, flags=re.M)}
    # the built-in envs (other tests register their own test envs in the same process)
    builtin = {i for i in aem_envs.registration.registered_ids()
               if str(aem_envs.registration.spec(i).entry_point).startswith("aem_envs.envs.")}
    assert set(row) == builtin
    assert f"{DEFAULT_PRODUCTS:,}-product catalog" in row["aem/WebShop-v0"]
    assert f"{len(shell_tasks.FAMILIES)} families" in row["aem/Shell-v0"]
    assert f"{len(TASK_TYPES)} task types" in row["aem/Household-v0"]
    cr = aem_envs.make("aem/CodeRepair-v0")  # no container until reset
    try:
        n_train, n_test = len(cr.task_ids("train")), len(cr.task_ids("test"))
    finally:
        cr.close()
    assert f"{n_train + n_test:,} validated" in row["aem/CodeRepair-v0"]
    assert f"({n_test} test)" in row["aem/CodeRepair-v0"]
    projects = [p for p in (ROOT / "aem_envs/envs/coderepair/corpus").iterdir() if p.is_dir() and not p.name.startswith("_")]
    assert f"{len(projects)} small Python projects" in row["aem/CodeRepair-v0"]


@pytest.mark.parametrize("env_id", ["aem/Household-v0", "aem/WebShop-v0"])
def test_environment_table_oracle_and_random_rates(env_id):
    """The table's oracle column (100% on N test tasks) and random column, re-measured with the
    commands that produce them (aem-envs oracle; benchmarks/env_step.py's random policy)."""
    row = re.search(rf"^\| `{re.escape(env_id)}` \|.*$", README, flags=re.M).group(0)
    cells = [c.strip() for c in row.strip("|").split("|")]
    n = int(re.fullmatch(r"100% \((\d+) test\)", cells[3]).group(1))
    assert envs_cli.run_oracle(env_id, n, "test", 0)["success_rate"] == 1.0
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import env_step
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    rate = env_step.success_rate(env_step.EnvBench(env_id), 200) * 100
    bounds = [float(x) for x in cells[4].rstrip("%").split("–")]  # "2.5%" or "0.5–1.5%"
    lo, hi = bounds[0], bounds[-1]
    assert lo - 1e-9 <= rate <= hi + 1e-9, f"{env_id}: random success {rate:.1f}% on 200 test tasks, README says {cells[4]}"


def test_tiny_model_sizes_quoted_in_the_docs():
    from aem_train.tiny import PRESETS as MODEL_PRESETS, build_model

    def size(name: str) -> float:
        p = MODEL_PRESETS[name]  # a trained tokenizer fills the preset's whole vocabulary
        tokenizer = type("Tok", (), {"__len__": lambda self: p.vocab_size, "eos_token_id": 1, "pad_token_id": 0})()
        return round(build_model(p, tokenizer).num_parameters() / 1e6, 1)

    tiny, small = size("tiny"), size("small")
    quoted = set(re.findall(r"(\d\.\d) M-parameter", README + (ROOT / "aem_train/presets/quick.yaml").read_text()))
    assert quoted == {f"{tiny}"}, f"docs quote {quoted} M parameters; the tiny preset has {tiny} M"
    standard = (ROOT / "aem_train/presets/standard.yaml").read_text()
    assert f"~{tiny} M-parameter" in standard and f"small ({small} M)" in standard
