"""Per-cohort Delta writes: exact slices, untouched neighbours, no-op reruns, concurrency."""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from fhirhouse.layout import check_cohort_label
from fhirhouse.silver.build import build_table
from fhirhouse.store.delta import (
    partition_rows,
    read_table,
    write_cohort_slice,
)

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def patients(cohort: str, rows: dict[str, str], ts: dt.datetime = NOW) -> pa.Table:
    recs = [{"patient_id": k, "gender": g, "source_file": f"{k}.json"} for k, g in rows.items()]
    return build_table("patient", recs, ingest_timestamp=ts, cohort=cohort)


def write(path: Path, cohort: str, rows: dict[str, str], ts: dt.datetime = NOW):
    return write_cohort_slice(path, patients(cohort, rows, ts), key="patient_id", cohort=cohort)


def state(path: Path) -> dict[str, tuple[str, str]]:
    t = read_table(path)
    return {
        r["patient_id"]: (r["gender"], r["cohort"])
        for r in t.select(["patient_id", "gender", "cohort"]).to_pylist()
    }


def test_slice_is_exact_and_neighbours_untouched(tmp_path):
    path = tmp_path / "patient"
    r = write(path, "A", {"a1": "f", "a2": "m"})
    assert (r.inserted, r.committed) == (2, True)
    write(path, "B", {"b1": "f"})
    files_b = {a for a in DeltaTable(str(path)).file_uris() if "cohort=B" in a}
    r = write(path, "A", {"a1": "other", "a3": "m"}, NOW + dt.timedelta(days=1))
    assert (r.inserted, r.updated, r.deleted) == (1, 1, 1)
    assert state(path) == {"a1": ("other", "A"), "a3": ("m", "A"), "b1": ("f", "B")}
    assert {a for a in DeltaTable(str(path)).file_uris() if "cohort=B" in a} == files_b


def test_unchanged_slice_commits_nothing_even_with_new_run_timestamp(tmp_path):
    path = tmp_path / "patient"
    v1 = write(path, "A", {"a1": "f"}).delta_version
    r = write(path, "A", {"a1": "f"}, NOW + dt.timedelta(hours=5))
    assert r.committed is False and r.delta_version == v1
    ts = read_table(path).column("ingest_timestamp").to_pylist()
    assert ts == [NOW]  # the row keeps the run that last changed it


def test_cdf_on_and_change_types(tmp_path):
    path = tmp_path / "patient"
    write(path, "A", {"a1": "f", "a2": "m"})
    write(path, "A", {"a1": "x"})
    dt_ = DeltaTable(str(path))
    assert dt_.metadata().configuration["delta.enableChangeDataFeed"] == "true"
    assert dt_.metadata().partition_columns == ["cohort"]
    cdf = pa.table(dt_.load_cdf(starting_version=2).read_all())
    changes = sorted(
        zip(cdf["patient_id"].to_pylist(), cdf["_change_type"].to_pylist(), strict=True)
    )
    assert changes == [
        ("a1", "update_postimage"),
        ("a1", "update_preimage"),
        ("a2", "delete"),
    ]


def test_empty_slice_creates_the_table_and_empties_partition(tmp_path):
    path = tmp_path / "patient"
    r = write(path, "A", {})
    assert DeltaTable.is_deltatable(str(path)) and r.rows == 0 and not r.committed
    write(path, "A", {"a1": "f"})
    assert write(path, "A", {}).deleted == 1 and state(path) == {}


def test_a_first_write_appends_and_later_writes_merge_only_their_scope(tmp_path):
    path = tmp_path / "patient"
    write(path, "A", {"a1": "f", "a2": "m"})
    write(path, "B", {"b1": "f"})
    ops = [h["operation"] for h in DeltaTable(str(path)).history()]
    assert ops == ["WRITE", "WRITE", "CREATE TABLE"]  # appends, newest first: no MERGE
    assert partition_rows(DeltaTable(str(path))) == {"A": 2, "B": 1}
    new = patients("A", {"a1": "x", "a2": "m", "a3": "f"})
    r = write_cohort_slice(path, new, key="patient_id", cohort="A", scope={"a1"}, expected_rows=2)
    assert (r.inserted, r.updated, r.deleted) == (0, 1, 0)  # a3 is out of scope: not read
    r = write_cohort_slice(path, new, key="patient_id", cohort="A", scope=set(), expected_rows=2)
    assert not r.committed  # nothing in scope: nothing read, nothing written


def test_a_partition_that_does_not_hold_what_was_written_is_compared_whole(tmp_path):
    path = tmp_path / "patient"
    write(path, "A", {"a1": "f", "a2": "m"})
    new = patients("A", {"a1": "f", "a2": "m", "a3": "f"})
    # the caller believes the partition holds 3 rows and only a3 is unchanged: not so
    r = write_cohort_slice(path, new, key="patient_id", cohort="A", scope=set(), expected_rows=3)
    assert (r.inserted, r.updated, r.deleted) == (1, 0, 0)
    assert set(state(path)) == {"a1", "a2", "a3"}


@pytest.mark.parametrize("label", ["../x", "a/b", "A'; DROP", "", ".hidden", "A B", "x" * 65])
def test_bad_cohort_labels_are_refused(label):
    with pytest.raises(ValueError, match="invalid cohort label"):
        check_cohort_label(label)


def _writer(path: str, cohort: str, n: int) -> None:
    rows = {f"{cohort}-{i}": "f" for i in range(n)}
    for rnd in range(3):
        write(Path(path), cohort, rows, NOW + dt.timedelta(seconds=rnd))
        rows = {k: ("m" if rnd % 2 == 0 else "f") for k in rows}


def test_concurrent_writers_of_different_cohorts_lose_nothing(tmp_path):
    path = tmp_path / "patient"
    ctx = mp.get_context("spawn")  # delta-rs must not be forked after its runtime started
    procs = [ctx.Process(target=_writer, args=(str(path), c, 50)) for c in "ABCD"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    s = state(path)
    assert len(s) == 200
    assert {v[1] for v in s.values()} == set("ABCD")
