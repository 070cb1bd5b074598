"""Every command the README and the docs pages show works exactly as written.

The commands are the code spans in the "Command" column of a page's tables and the lines of
its ```bash blocks. They run in page order on a copy of the repository without `data/`, the
way a reader runs them after cloning: from the copy's root, with the virtual environment's
`bin/` first on PATH (as `source .venv/bin/activate` does). The copy's `.venv` is a link to
the running virtual environment, so `make run` finds it installed.

Commands that change the check settings run after the others (see ``RUN_LAST``). The only
changes to a command are the placeholders in ``PLACEHOLDERS`` (a folder of bundles,
scratch folders under /tmp), which point into this test's temporary folder. A command the
test cannot run here matches one entry of ``EXCLUDED``, which says why; an entry that matches
no command fails the test, so the list cannot go stale.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import BIN, REPO, SAMPLE

pytestmark = pytest.mark.workflow

# The pages whose commands run, in this order: README.md first, so `make run` builds data/.
PAGES = [
    "README.md",
    "docs/operations.md",
    "config/README.md",
    "docs/reliability.md",
    "docs/scaling.md",
    "docs/performance.md",
    "docs/how-it-works.md",
    "docs/development.md",
]
# Generated pages (`fhirhouse contract`, bench/speed.py): they show no commands to run.
GENERATED = {"docs/BENCHMARKS.md", "docs/CORPUS_CONTRACT.md", "docs/DATA_DICTIONARY.md"}
# Pages whose commands a test of their own runs as written.
OWN_TESTS = {
    "docs/monitor.md": "tests/test_monitor.py: `make monitor`, then a build with the profile",
    "docs/querying.md": "tests/test_querying.py runs its code blocks",
}

# Placeholder -> folder in the test's temporary directory (filled in by the fixture).
PLACEHOLDERS = ("/path/to/bundles", "/tmp/lake", "/tmp/corpus", "/drops")

S3 = "needs an S3 store and credentials; tests/test_s3.py runs these commands on moto"
EXCLUDED: dict[str, str] = {
    r"^make test$": "the command that runs this test",
    r"s3://|^export AWS_": S3,
    r"\[slurm\]": "installs the SLURM executor plugin from the package index",
    r"profiles/slurm|sbatch": "needs a SLURM scheduler",
    r"^\.venv/bin/python bench/": "a benchmark: minutes to hours (F33 is ../shared/fixtures)",
}

# `fhirhouse watch` runs until Ctrl-C: it must start, poll, and stop cleanly on SIGINT.
LONG_RUNNING = re.compile(r"^fhirhouse watch\b")


def _cells(row: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", row.strip().strip("|"))]


def page_commands(text: str) -> list[str]:
    """The commands of one Markdown page, in order."""
    out: list[str] = []
    fence: str | None = None
    header: list[str] | None = None
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("```"):
            fence = (s[3:].strip() or "text") if fence is None else None
            header = None
            continue
        if fence is not None:
            if fence == "bash" and s and not s.startswith("#"):
                out.append(re.sub(r"\s+#\s.*$", "", s))
            continue
        if not s.startswith("|"):
            header = None
            continue
        cells = _cells(s)
        if header is None:
            header = cells
        elif "Command" in header and not set(s) <= set("|-: "):
            cell = cells[header.index("Command")]
            out += [c.replace("\\|", "|") for c in re.findall(r"`([^`]+)`", cell)]
    return out


def documented_commands() -> list[tuple[str, str]]:
    """(page, command) for every command of every page, first occurrence only."""
    seen: set[str] = set()
    out = []
    for page in PAGES:
        for cmd in page_commands((REPO / page).read_text()):
            if cmd not in seen:
                seen.add(cmd)
                out.append((page, cmd))
    return out


def exclusion(cmd: str) -> str | None:
    return next((why for pat, why in EXCLUDED.items() if re.search(pat, cmd)), None)


# Commands that change the check settings run last: a check setting is a parameter of every
# cohort's Silver job, so each change rebuilds them, and so would the next default command.
RUN_LAST = re.compile(r"checks=|reference-checks")
_RUN = [(p, c) for p, c in documented_commands() if exclusion(c) is None]
COMMANDS = [x for x in _RUN if not RUN_LAST.search(x[1])] + [
    x for x in _RUN if RUN_LAST.search(x[1])
]


def test_every_page_with_commands_is_covered():
    pages = {str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md")}
    pages |= {"README.md", "config/README.md"}
    with_commands = {
        p for p in pages - GENERATED - set(OWN_TESTS) if page_commands((REPO / p).read_text())
    }
    assert with_commands <= set(PAGES), sorted(with_commands - set(PAGES))


def test_exclusions_are_few_and_all_in_use():
    commands = [c for _, c in documented_commands()]
    for pattern in EXCLUDED:
        assert any(re.search(pattern, c) for c in commands), f"unused exclusion {pattern}"
    assert len(commands) - len(COMMANDS) <= 15
    # the README's own commands all run, but the one that runs this test
    readme = page_commands((REPO / "README.md").read_text())
    assert [c for c in readme if exclusion(c)] == ["make test"]


def test_extraction_reads_tables_and_bash_blocks():
    text = (
        "| What | Command |\n|---|---|\n"
        "| graph | `snakemake --dag \\| dot -Tsvg > dag.svg`, `fhirhouse status` |\n\n"
        "| Key | Default |\n|---|---|\n| `root` | `data` |\n\n"
        "```bash\nmake run     # builds\n# a comment\n\nfhirhouse history --last 5\n```\n"
        "```\n$ fhirhouse status\n```\n"
    )
    assert page_commands(text) == [
        "snakemake --dag | dot -Tsvg > dag.svg",
        "fhirhouse status",
        "make run",
        "fhirhouse history --last 5",
    ]


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A copy of the repository as a fresh clone has it, plus the placeholders' folders."""
    base = tmp_path_factory.mktemp("readme")
    repo = base / "fhirhouse"
    skip = {".git", ".venv", "data", ".snakemake", ".pytest_cache", ".ruff_cache",
            ".hypothesis", "__pycache__", ".fhirhouse-state"}  # fmt: skip
    shutil.copytree(
        REPO,
        repo,
        ignore=lambda _d, names: [
            n for n in names if n in skip or n.endswith((".egg-info", ".svg")) or n == "report.html"
        ],
    )
    venv = BIN.parent
    (repo / ".venv").symlink_to(venv, target_is_directory=True)
    installed = venv / ".installed"
    if installed.exists():  # make must not reinstall into the linked environment
        stamp = installed.stat().st_mtime - 60
        os.utime(repo / "pyproject.toml", (stamp, stamp))
    bundles = base / "bundles"
    shutil.copytree(SAMPLE, bundles)
    (base / "drops").mkdir()
    return {
        "repo": repo,
        "/path/to/bundles": bundles,
        "/tmp/lake": base / "lake",
        "/tmp/corpus": base / "corpus",
        "/drops": base / "drops",
    }


def substitute(cmd: str, clone: dict[str, Path]) -> str:
    for placeholder in PLACEHOLDERS:
        cmd = re.sub(re.escape(placeholder) + r"(?=$|[\s/-])", str(clone[placeholder]), cmd)
    return cmd


def _env() -> dict[str, str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env["VIRTUAL_ENV"] = str(BIN.parent)
    for var in ("FHIRHOUSE_RUN_ID", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
        env.pop(var, None)
    return env


def status(repo: Path) -> str:
    return subprocess.run(
        [str(BIN / "fhirhouse"), "status"], cwd=repo, env=_env(), capture_output=True,
        text=True, check=True,
    ).stdout  # fmt: skip


def every_check_passed(repo: Path, output: str) -> None:
    """The default build ends green: every check result passed, none reported failing."""
    results = sorted((repo / "data" / "_checks").rglob("*.json"))
    assert len(results) >= 10
    failed = [str(p.relative_to(repo)) for p in results if not json.loads(p.read_text())["passed"]]
    assert failed == []
    assert "check failed" not in output
    assert "failing" not in status(repo)


def cohort_b_gold_built(repo: Path, output: str) -> None:
    """The backfill brings cohort B's Gold up to date in the same invocation."""
    head, _, *lines = status(repo).splitlines()
    row = next(line for line in lines if line.split()[:1] == ["B"])
    gold = row[head.index("gold") : head.index("last run")].strip()
    assert gold.startswith("built ("), row


def every_table_maintained(repo: Path, output: str) -> None:
    """`snakemake maintain` runs one job per table (tests/test_operations.py, marked slow,
    checks the rows and markers too)."""
    from fhirhouse import SILVER_TABLES
    from fhirhouse.layout import OPS_TABLES

    for table in [*SILVER_TABLES, "gold", *OPS_TABLES]:
        assert f"rule maintain_{table}:" in output, table


AFTER: dict[str, Callable[[Path, str], None]] = {
    r"^make run$": every_check_passed,
    r"cohort=B\.json --forcerun silver$": cohort_b_gold_built,
    r"^snakemake maintain$": every_table_maintained,
}


def run_long_running(cmd: str, repo: Path, log: Path) -> None:
    """Start ``cmd``, wait for its first poll, and stop it with SIGINT (Ctrl-C)."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["bash", "-c", f"exec {cmd}"], cwd=repo, env=_env(), stdout=out, stderr=out,
            text=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while "watching" not in log.read_text() and proc.poll() is None:
            assert time.monotonic() < deadline, f"{cmd!r} did not start: {log.read_text()}"
            time.sleep(0.2)
        time.sleep(2)  # the first poll
        assert proc.poll() is None, f"{cmd!r} stopped: {log.read_text()[-3000:]}"
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert proc.returncode in (0, 130), text[-3000:]
    assert "Traceback" not in text, text[-3000:]


@pytest.mark.parametrize(("page", "cmd"), COMMANDS, ids=[f"{p}: {c}" for p, c in COMMANDS])
def test_documented_command_runs(page: str, cmd: str, clone: dict[str, Path]) -> None:
    repo = clone["repo"]
    if "| dot " in cmd and shutil.which("dot") is None:
        pytest.skip("Graphviz 'dot' not found (apt-get install graphviz)")
    line = substitute(cmd, clone)
    if LONG_RUNNING.search(line):
        run_long_running(line, repo, repo.parent / "watch.log")
        return
    proc = subprocess.run(
        ["bash", "-c", line], cwd=repo, env=_env(), capture_output=True, text=True, timeout=900
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{page}: {cmd!r} failed ({proc.returncode}):\n{output[-4000:]}"
    assert "Traceback" not in output, output[-4000:]
    for pattern, check in AFTER.items():
        if re.search(pattern, cmd):
            check(repo, output)
