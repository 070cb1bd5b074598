"""``fhirhouse``: run the pipeline without Snakemake, with the same job functions.

fhirhouse run [--root DIR] [--source DIR] [--only X ...] [--cohorts N] [--land-into D]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fhirhouse import __version__, jobs, logs, summary
from fhirhouse import status as status_mod
from fhirhouse.bronze.landing import cohort_inputs, list_cohorts, restored_note, sync_state_file
from fhirhouse.config import ConfigError, load_config, schema_default
from fhirhouse.layout import Layout, check_cohort_label
from fhirhouse.preflight import landing_labels, source_problem
from fhirhouse.synth import SYNTH_FIELDS
from fhirhouse.words import plural

log = logging.getLogger("fhirhouse.cli")


def _root_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="config file (default: config/config.yaml)")
    parser.add_argument(
        "--root", help="storage root, a folder or s3://bucket/prefix (config `root`, default: data)"
    )
    parser.add_argument(
        "--state-dir",
        help="local folder for markers, logs and run history of an s3:// root (config "
        "`state_dir`, default: .fhirhouse-state/<bucket>/<prefix>)",
    )


def _layout(args: argparse.Namespace) -> Layout:
    """The command's storage root, resolved once (``--root``/``--state-dir`` over config)."""
    cfg = load_config(args.config, {"root": args.root, "state_dir": args.state_dir})
    return Layout.of(cfg["root"], cfg.get("state_dir"))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fhirhouse",
        description="Local-first lakehouse for Synthea FHIR R4 bundles (Bronze -> Silver -> Gold).",
    )
    p.add_argument("--version", action="version", version=f"fhirhouse {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run",
        help="land bundles and build Silver and Gold, cohort by cohort",
        description=(
            "Land new or changed bundles from --source into Bronze, then parse each cohort "
            "once, write its slice of the ten Silver Delta tables and recompute its Gold rows; "
            "finally write the corpus manifest. Defaults come from config/config.yaml when it "
            "exists (the same file Snakemake reads)."
        ),
    )
    _root_args(run)
    run.add_argument(
        "--source",
        help="folder of bundle *.json files to land (config `source`); omitted and with "
        "`source: null`: a generated corpus (config `synth`) on a fresh root, the existing "
        "Bronze tree on a root that has one",
    )
    run.add_argument(
        "--no-source",
        action="store_true",
        help="land nothing: build the existing Bronze tree as it is",
    )
    run.add_argument(
        "--cohorts",
        type=int,
        help="number of round-robin cohorts for new files (config `cohorts`, default 3)",
    )
    run.add_argument(
        "--land-into",
        metavar="LABEL",
        help="land every new file into this cohort (a new drop; config `land_into`)",
    )
    run.add_argument(
        "--only",
        action="append",
        metavar="COHORT",
        help="build only this cohort (repeatable; default: every cohort in Bronze)",
    )
    # the former name of --only, kept working (it warns): `cohort` also named the landing one
    run.add_argument("--cohort", action="append", dest="only_deprecated", help=argparse.SUPPRESS)
    run.add_argument("--no-gold", action="store_true", help="build Bronze and Silver only")
    run.add_argument(
        "--cores",
        type=int,
        metavar="N",
        help="processes that parse bundles (default: every core)",
    )
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    gold = sub.add_parser(
        "gold",
        help="rebuild Gold and the corpus manifest from the current Silver tables",
        description="Recompute gold.encounter_summary for every cohort in Silver, then write "
        "<root>/gold/_metadata/corpus_manifest.json.",
    )
    _root_args(gold)
    gold.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    contract = sub.add_parser(
        "contract",
        help="write the generated contract files (JSON Schema, data dictionary, contract)",
        description="Write schemas/gold_encounter_summary.json, docs/DATA_DICTIONARY.md and "
        "docs/CORPUS_CONTRACT.md from the code; with --check, write nothing and exit 1 when a "
        "committed file is stale.",
    )
    contract.add_argument("--check", action="store_true", help="fail if a file is stale")
    synth = sub.add_parser(
        "synth",
        help="generate deterministic Synthea-Coherent-like FHIR bundles",
        description="Write N patient bundles (FHIR R4 transaction Bundles, ~3.4 MiB each by "
        "default) to --out, plus header-only DICOM files in --out/dicom/. Patient i depends "
        "only on (seed, i). Proportions default to Synthea Coherent's; change them with "
        "--set NAME=VALUE (names: " + ", ".join(SYNTH_FIELDS) + ").",
    )
    synth.add_argument("--patients", type=int, required=True, help="number of patients")
    seed = schema_default("synth", "seed")
    synth.add_argument("--seed", type=int, default=seed, help=f"random seed (default {seed})")
    synth.add_argument("--out", type=Path, required=True, help="output folder")
    synth.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="a profile setting"
    )
    synth.add_argument("--quiet", action="store_true", help="no progress bar")
    status = sub.add_parser(
        "status",
        help="show each cohort's Bronze, Silver, checks and Gold state",
        description="For each cohort: whether each layer is built, stale (inputs changed "
        "since) or failed (its last job failed), the check results, rows and the last run.",
    )
    _root_args(status)
    hist = sub.add_parser(
        "history",
        help="list recent runs from <root>/_ops/run_history",
        description="One line per invocation, newest first: start, outcome, jobs, failed "
        "jobs, rows written, wall time, cohorts. The table is Delta: query it with polars "
        "(pl.read_delta) or duckdb for more.",
    )
    _root_args(hist)
    hist.add_argument(
        "--last",
        type=int,
        default=10,
        metavar="N",
        help="runs (with --table: versions) to show (10)",
    )
    hist.add_argument("--jobs", action="store_true", help="list each run's jobs too")
    hist.add_argument(
        "--table",
        choices=jobs.table_names(),
        help="list this table's Delta versions instead, each with the run, rule and cohort "
        "that wrote it",
    )
    maint = sub.add_parser(
        "maintain",
        help="compact, checkpoint and vacuum the Delta tables",
        description="For each table: compact small files (delta-rs optimize), write a "
        "checkpoint, then vacuum files no version within the retention needs. Rows and markers "
        "do not change, so later builds stay incremental. Versions older than the retention "
        "can no longer be read or rolled back to. Do not run it while a build writes the same "
        "root (the Snakemake target `snakemake maintain` takes the writer limits itself).",
    )
    _root_args(maint)
    maint.add_argument(
        "--table", action="append", choices=jobs.table_names(), help="only this table (repeatable)"
    )
    retention = schema_default("maintenance", "retention_hours")
    maint.add_argument(
        "--retention-hours",
        type=float,
        help="keep files that versions of the last H hours need (config "
        f"`maintenance.retention_hours`, default {retention})",
    )
    watch = sub.add_parser(
        "watch",
        help="poll for new or changed bundles and build the cohorts they touch",
        description="Off unless started. Every --interval seconds, compare the Bronze cohort "
        "folders (or, with --source, a landing folder) with what the last build saw; on a "
        "change, run Snakemake once (through its API, with the workflow profile's writer "
        "limits) for exactly the affected cohorts: Bronze and Silver, plus Gold with "
        "--with-gold. Cohorts already built are not rebuilt. Ctrl-C stops it.",
    )
    _root_args(watch)
    watch.add_argument(
        "--source", help="watch this landing folder of *.json bundles (default: Bronze)"
    )
    watch.add_argument(
        "--land-into",
        metavar="LABEL",
        help="with --source: land every new file into this cohort (config `land_into`)",
    )
    watch.add_argument(
        "--interval", type=float, default=30.0, help="seconds between polls (default 30)"
    )
    watch.add_argument("--with-gold", action="store_true", help="rebuild Gold and the manifest")
    watch.add_argument("--cores", type=int, default=2, help="Snakemake cores (default 2)")
    watch.add_argument("--max-polls", type=int, metavar="N", help="stop after N polls")
    roll = sub.add_parser(
        "rollback",
        help="restore a table to an earlier Delta version",
        description="Restore TABLE to VERSION (as a new version), then drop the markers the "
        "restore made untrue, so the next build redoes exactly those jobs from Bronze. For "
        "gold the corpus manifest is rewritten at once. See `fhirhouse history --table`.",
    )
    _root_args(roll)
    roll.add_argument("--table", required=True, choices=jobs.table_names())
    roll.add_argument("--to-version", type=int, required=True, metavar="VERSION")
    contract.add_argument(
        "--dir", type=Path, default=Path("."), help="repository root (default: .)"
    )
    return p


def _job(layout: Layout, rule: str, label: str | None, fn: Any, /, *a: Any, **kw: Any) -> Any:
    """Run one job function with its run-history row (rule, cohort ``label``), as the rule
    scripts do; returns what the function returns."""
    with jobs.recorded(layout, rule, label) as record:
        result = fn(*a, **kw)
        record.marker = getattr(result, "marker", result)
    return result


def cmd_watch(args: argparse.Namespace, layout: Layout) -> int:
    from fhirhouse.watch import Watcher

    source = Path(args.source).resolve() if args.source else None
    if source is not None and not source.is_dir():
        raise FileNotFoundError(f"--source is not a folder: {source}")
    if args.land_into is not None:
        check_cohort_label(args.land_into)
    if args.interval <= 0:
        raise ValueError("--interval must be more than 0 seconds")
    logging.getLogger("fhirhouse.watch").setLevel(logging.INFO)
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.INFO)
    watcher = Watcher(
        layout=layout,
        source=source,
        land_into=args.land_into,
        with_gold=args.with_gold,
        cores=args.cores,
        workdir=Path.cwd(),
        configfiles=[Path(args.config).resolve()] if args.config else [],
    )
    return watcher.watch(args.interval, args.max_polls)


def cmd_maintain(args: argparse.Namespace, layout: Layout) -> int:
    cfg = load_config(args.config, {"root": args.root})
    hours = args.retention_hours
    if hours is None:
        hours = cfg["maintenance"]["retention_hours"]
    if hours < 0:
        raise ValueError("--retention-hours must be 0 or more")
    done = _job(
        layout, "maintain", None, jobs.maintain_job, layout, args.table,
        retention_hours=hours,
    )  # fmt: skip
    for t in done["tables"]:
        print(
            f"{t['table']}: {t['files_before']:,} -> {t['files_after']:,} files "
            f"({t['files_compacted']:,} compacted, {t['files_vacuumed']:,} vacuumed), "
            f"{plural(t['rows'], 'row')}, version {t['version_before']} -> {t['version_after']}, "
            f"{t['seconds']:.1f} s"
        )
    if not done["tables"]:
        print("no tables to maintain yet")
    return 0


def cmd_rollback(args: argparse.Namespace, layout: Layout) -> int:
    out = _job(layout, f"rollback_{args.table}", None, jobs.rollback_job, layout, args.table,
               args.to_version)  # fmt: skip
    cohorts = ", ".join(f"cohort {c}" for c in out["changed_cohorts"]) or "none"
    print(
        f"{args.table}: restored version {out['restored_version']} as version "
        f"{out['delta_version']}; partitions changed: {cohorts}"
    )
    for m in out["markers_dropped"]:
        print(f"  marker dropped: {m}")
    if out["markers_dropped"]:
        print("the next `snakemake` run rebuilds these from the current Bronze")
    return 0


def cmd_run(args: argparse.Namespace, layout: Layout) -> int:
    overrides = {
        "root": args.root,
        "source": args.source,
        "cohorts": args.cohorts,
        "land_into": args.land_into,
    }
    cfg = load_config(args.config, overrides)
    if args.only_deprecated:
        print("warning: `fhirhouse run --cohort` is deprecated; use --only", file=sys.stderr)
        args.only = (args.only or []) + args.only_deprecated
    if cfg["source"] and not args.no_source:
        name = "--source" if args.source else "config source"
        problem = source_problem(Path(cfg["source"]), name)
        if problem:
            raise FileNotFoundError(problem)  # before anything is written
    if args.no_source and not list_cohorts(layout):
        raise FileNotFoundError(
            f"no source folder given and no Bronze cohorts under {layout.bronze_fhir}"
            "; set `source` (config or --source) to a folder of bundle *.json files"
        )
    if args.only:
        # a cohort that neither exists nor can be landed now: refused before anything is written
        possible = set(list_cohorts(layout))
        if not args.no_source:
            possible |= set(landing_labels(cfg["cohorts"], cfg["land_into"]))
        unknown = sorted(set(args.only) - possible)
        if unknown:
            raise FileNotFoundError(f"no such cohort in Bronze: {', '.join(unknown)}")
    started = time.monotonic()
    from fhirhouse.jobs.parse import ParsePool

    # parse workers start now and import while the source is landed
    with ParsePool(args.cores or os.cpu_count() or 1) as pool:
        return _run(args, layout, cfg, pool, started)


def _run(
    args: argparse.Namespace, layout: Layout, cfg: dict[str, Any], pool: Any, started: float
) -> int:
    """`fhirhouse run` after its configuration is read, with a pool of parse workers."""
    checks = cfg["checks"]
    policy, silver_rules, max_age = (
        checks["on_failure"],
        checks["silver"],
        checks["gold"]["max_age"],
    )
    source = jobs.resolve_source(layout, cfg["source"]) if not args.no_source else None
    if source == layout.synth_dir:
        synth = cfg["synth"]
        print(f"generating {synth['patients']} synthetic patients (seed {synth['seed']})")
        _job(
            layout, "synth", None, jobs.synth_job, source, synth["patients"], synth["seed"],
            marker=layout.synth_marker, progress=True,
        )  # fmt: skip
    landed = _job(
        layout, "land", None, jobs.land_job, layout, source,
        cohorts=cfg["cohorts"], cohort=cfg["land_into"],
    )  # fmt: skip
    print(
        f"bronze: {plural(landed['file_count'], 'file')} in "
        f"{plural(len(landed['cohorts']), 'cohort')} ({sum(landed['new_files'].values()):,} new, "
        f"{sum(landed['replaced_files'].values()):,} changed"
        f"{restored_note(landed.get('restored_files') or {})})"
    )
    available = list_cohorts(layout)
    wanted = [check_cohort_label(c) for c in args.only] if args.only else available
    missing = sorted(set(wanted) - set(available))
    if missing:
        print(f"error: no such cohort in Bronze: {', '.join(missing)}", file=sys.stderr)
        return 2
    results: dict[str, dict[str, dict]] = {}
    for n, cohort in enumerate(wanted, 1):
        t0 = time.monotonic()
        # the fingerprint the Snakefile keeps too, so `status` compares against this build
        sync_state_file(layout.bronze_state(cohort), cohort_inputs(layout, cohort))
        _job(layout, "bronze", cohort, jobs.bronze_cohort_job, layout, cohort)
        silver = _job(
            layout, "silver", cohort, jobs.silver_job, layout, cohort,
            pool=pool, policy=policy, overrides=silver_rules,
        )  # fmt: skip
        results[cohort] = silver.marker["tables"]
        g = None
        if not args.no_gold:
            g = _job(
                layout, "gold", cohort, jobs.gold_job, layout, cohort,
                policy=policy, max_age=max_age, slices=silver.slices,
            )  # fmt: skip
        line = f"[{n}/{len(wanted)}] {summary.cohort_line(cohort, silver.marker, g)}"
        del silver
        _release_memory()  # a cohort's rows are done with: hand their memory back
        print(f"{line} in {time.monotonic() - t0:.1f} s")
    print()
    print(summary.rows_table(layout, results))
    _job(
        layout, "check_tables", None, jobs.check_tables_job, layout,
        overrides=silver_rules, policy=policy,
    )  # fmt: skip
    failing = summary.table_checks(layout)
    if failing:
        print("\n" + "\n".join(failing))
    if not args.no_gold:
        _write_manifest(layout)
    print(f"\ndone in {time.monotonic() - started:.1f} s; data under {summary.where(layout)}/")
    return 0


def _release_memory() -> None:
    """Return freed memory to the system, so one process building many cohorts stays at the
    size one cohort needs (Arrow's allocator keeps freed blocks otherwise)."""
    import gc

    import pyarrow as pa

    gc.collect()
    pa.default_memory_pool().release_unused()


def _write_manifest(layout: Layout) -> None:
    manifest = _job(layout, "gold_manifest", None, jobs.gold_manifest_job, layout)
    print(summary.manifest_line(layout, manifest))


def _build_gold(layout: Layout, cohorts: Sequence[str], policy: str, max_age: int) -> None:
    for cohort in cohorts:
        m = _job(
            layout, "gold", cohort, jobs.gold_job, layout, cohort, policy=policy, max_age=max_age
        )
        print(
            f"gold cohort {cohort}: {plural(m['rows'], 'row')} "
            f"(+{m['inserted']:,} ~{m['updated']:,} -{m['deleted']:,}) in {m['seconds']:.2f} s; "
            f"checks {'passed' if m['checks_passed'] else 'FAILED'}"
        )
    _write_manifest(layout)


def _recorded_invocation(args: argparse.Namespace, layout: Layout, command: Any) -> int:
    """Run a building command and add its invocation row to the run history."""
    try:
        code = command(args, layout)
    except ConfigError:  # refused before anything ran: nothing to record
        raise
    except KeyboardInterrupt:
        _record_end(layout, "interrupted")
        raise
    except BaseException:
        _record_end(layout, "failed")
        raise
    if code == 0:
        _record_end(layout, "success")
    return code


def _record_end(layout: Layout, outcome: str) -> None:
    if layout.state.exists():
        jobs.record_invocation(layout, outcome)


def cmd_gold(args: argparse.Namespace, layout: Layout) -> int:
    checks = load_config(args.config, {"root": args.root})["checks"]
    cohorts = jobs.silver_cohorts(layout)
    if not cohorts:
        print(
            f"error: no Silver tables under {layout.root}; run `fhirhouse run` first",
            file=sys.stderr,
        )
        return 2
    started = time.monotonic()
    _build_gold(layout, cohorts, checks["on_failure"], checks["gold"]["max_age"])
    print(f"done in {time.monotonic() - started:.1f} s")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    import dataclasses

    from fhirhouse.synth import SynthProfile, write_corpus

    if args.patients < 1:
        print("error: --patients must be at least 1", file=sys.stderr)
        return 2
    fields = {f.name: f.type for f in dataclasses.fields(SynthProfile)}
    settings: dict[str, Any] = {}
    for item in args.set:
        name, _, value = item.partition("=")
        if name not in fields or not value:
            print(f"error: --set {item!r}: use NAME=VALUE with NAME in {', '.join(fields)}",
                  file=sys.stderr)  # fmt: skip
            return 2
        try:
            settings[name] = int(value) if fields[name] in (int, "int") else float(value)
        except ValueError:
            print(f"error: --set {item!r}: {value!r} is not a number", file=sys.stderr)
            return 2
    done = write_corpus(
        args.out, args.patients, args.seed, SynthProfile(**settings), progress=not args.quiet
    )
    print(
        f"wrote {plural(done['patients'], 'bundle')} ({done['bundle_bytes'] / 2**20:,.1f} MiB) "
        f"and {plural(done['dicom_files'], 'DICOM file')} to {args.out} in "
        f"{done['seconds']:.1f} s"
    )
    return 0


def cmd_contract(args: argparse.Namespace) -> int:
    from fhirhouse.gold import contract

    if args.check:
        stale = contract.stale(args.dir)
        for path in stale:
            print(f"stale: {path} (regenerate with `fhirhouse contract`)", file=sys.stderr)
        if not stale:
            print("contract files are up to date")
        return 1 if stale else 0
    for path in contract.write_all(args.dir):
        print(f"wrote {path}")
    return 0


class _NotTheJobFailure(logging.Filter):
    """The CLI prints a failed job's reason as its one ``error:`` line: the job's own
    "job ... failed" log record would say it twice."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "fhirhouse.jobs.runlog" and record.levelno >= logging.ERROR)


def _require_root(layout: Layout) -> None:
    """Refuse a root that does not exist (a typo must not look like an empty lake), before
    anything is written."""
    if not layout.state.is_dir():
        where = layout.root if layout.on_store else Path(layout.root).resolve()
        extra = f" (its state folder {layout.state} does not exist)" if layout.on_store else ""
        raise FileNotFoundError(
            f"no lakehouse at {where}{extra}; check --root (or config `root`), or build one "
            "with `snakemake` or `fhirhouse run`"
        )


def console() -> int:
    """The ``fhirhouse`` command: :func:`main`, in a process that then exits without the
    interpreter's last full garbage collection (0.1-0.3 s); objects are still freed."""
    import atexit
    import gc

    atexit.register(gc.freeze)
    return main()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    verbose = getattr(args, "verbose", False)
    logs.configure(
        level="DEBUG" if verbose else "INFO", console_level="DEBUG" if verbose else "WARNING"
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_NotTheJobFailure())
    try:
        if args.command == "contract":
            return cmd_contract(args)
        if args.command == "synth":
            return cmd_synth(args)
        layout = _layout(args)
        if args.command in ("run", "gold"):
            command = cmd_run if args.command == "run" else cmd_gold
            return _recorded_invocation(args, layout, command)
        if args.command in ("status", "history", "rollback", "maintain"):
            _require_root(layout)
        if args.command == "status":
            print(status_mod.render_status(layout))
            return 0
        if args.command == "history":
            if args.table:
                print(status_mod.render_table_history(layout, args.table, args.last))
            else:
                print(status_mod.render_history(layout, args.last, args.jobs))
            return 0
        if args.command == "watch":
            return cmd_watch(args, layout)
        if args.command == "maintain":
            return _recorded_invocation(args, layout, cmd_maintain)
        if args.command == "rollback":
            return _recorded_invocation(args, layout, cmd_rollback)
    except jobs.StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except jobs.CheckFailed as exc:
        print(f"error: {exc} (checks.on_failure is 'fail')", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted (Ctrl-C); run the same command again to finish", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(console())
