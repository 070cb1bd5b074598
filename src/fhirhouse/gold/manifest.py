"""The corpus manifest (spec section 6.5), plus a per-cohort breakdown. Pure."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import polars as pl
import pyarrow as pa

from fhirhouse import SILVER_TABLES
from fhirhouse.gold.encounter_summary import CONTRACT_VERSION

MANIFEST_VERSION = "1"
GOLD_TABLE = "gold.encounter_summary"
PLATFORM = "fhirhouse_local"


def corpus_stats(gold: pa.Table | pl.DataFrame) -> dict[str, Any]:
    """Coverage figures of a set of Gold rows; all 0 / 0.0 when there are none."""
    df = gold if isinstance(gold, pl.DataFrame) else pl.from_arrow(gold)
    n = df.height
    if n == 0:
        return {
            "encounters": 0,
            "distinct_patients": 0,
            "with_soap_note": 0,
            "with_ecg": 0,
            "with_imaging": 0,
            "with_genomics": 0,
            "with_vitals": 0,
            "with_labs": 0,
            "avg_conditions_per_encounter": 0.0,
            "avg_medications_per_encounter": 0.0,
        }
    row = df.select(
        pl.col("patient_id").n_unique().alias("distinct_patients"),
        pl.col("soap_note_text").is_not_null().sum().alias("with_soap_note"),
        pl.col("has_ecg").sum().alias("with_ecg"),
        pl.col("imaging").struct.field("has_imaging").sum().alias("with_imaging"),
        pl.col("has_genomics").sum().alias("with_genomics"),
        pl.col("recent_vitals").struct.field("heart_rate").is_not_null().sum().alias("with_vitals"),
        (pl.col("recent_labs").list.len() > 0).sum().alias("with_labs"),
        pl.col("active_conditions").list.len().mean().alias("avg_c"),
        pl.col("active_medications").list.len().mean().alias("avg_m"),
    ).row(0, named=True)
    return {
        "encounters": n,
        "distinct_patients": int(row["distinct_patients"]),
        "with_soap_note": int(row["with_soap_note"]),
        "with_ecg": int(row["with_ecg"]),
        "with_imaging": int(row["with_imaging"]),
        "with_genomics": int(row["with_genomics"]),
        "with_vitals": int(row["with_vitals"]),
        "with_labs": int(row["with_labs"]),
        "avg_conditions_per_encounter": round(float(row["avg_c"]), 3),
        "avg_medications_per_encounter": round(float(row["avg_m"]), 3),
    }


def build_corpus_manifest(
    gold: pa.Table,
    silver_counts: Mapping[str, int],
    created_ts: dt.datetime,
    silver_versions: Mapping[str, int | None] | None = None,
    *,
    platform_name: str = PLATFORM,
    gold_version: int | None = None,
    encounter_cohorts: pa.Table | None = None,
) -> dict[str, Any]:
    """The manifest downstream teams pin to.

    ``encounter_cohorts`` (columns ``encounter_id``, ``cohort``) adds a per-cohort breakdown.
    """
    versions = silver_versions or {}
    manifest: dict[str, Any] = {
        "manifest_version": MANIFEST_VERSION,
        "contract_version": CONTRACT_VERSION,
        "gold_table": GOLD_TABLE,
        "created_timestamp": created_ts.isoformat(),
        "platform": platform_name,
        "row_count": gold.num_rows,
        "corpus_stats": corpus_stats(gold),
        "silver_sources": [
            {
                "table": f"silver.{t}",
                "row_count": int(silver_counts.get(t, 0)),
                "delta_version": versions.get(t),
            }
            for t in SILVER_TABLES
        ],
        "gold_delta_version": gold_version,
    }
    if encounter_cohorts is not None:
        df = pl.from_arrow(gold).join(
            pl.from_arrow(encounter_cohorts.select(["encounter_id", "cohort"])).unique(
                "encounter_id", keep="first"
            ),
            on="encounter_id",
            how="left",
        )
        manifest["cohorts"] = {
            str(label): {"row_count": part.height, "corpus_stats": corpus_stats(part)}
            for (label,), part in sorted(
                df.partition_by("cohort", as_dict=True).items(), key=lambda kv: str(kv[0])
            )
        }
    return manifest
