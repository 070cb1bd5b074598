"""The corpus manifest downstream teams pin to, with a per-cohort breakdown. Pure."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import polars as pl
import pyarrow as pa

from fhirhouse import PARTITION_COLUMN, SILVER_TABLES
from fhirhouse.gold.encounter_summary import CONTRACT_VERSION

MANIFEST_VERSION = "1"
GOLD_TABLE = "gold.encounter_summary"
PLATFORM = "fhirhouse_local"


def corpus_partials(gold: pa.Table | pl.DataFrame) -> dict[str, int]:
    """The sums behind :func:`corpus_stats` for a set of Gold rows. Partials of disjoint row
    sets (cohorts whose patients differ) add up (:func:`add_partials`), so the manifest can
    be written from per-cohort numbers without reading Gold."""
    df = gold if isinstance(gold, pl.DataFrame) else pl.from_arrow(gold)
    if df.height == 0:
        return dict.fromkeys(PARTIALS, 0)
    row = df.select(
        pl.len().alias("encounters"),
        pl.col("patient_id").n_unique().alias("distinct_patients"),
        pl.col("soap_note_text").is_not_null().sum().alias("with_soap_note"),
        pl.col("has_ecg").sum().alias("with_ecg"),
        pl.col("imaging").struct.field("has_imaging").sum().alias("with_imaging"),
        pl.col("has_genomics").sum().alias("with_genomics"),
        pl.col("recent_vitals").struct.field("heart_rate").is_not_null().sum().alias("with_vitals"),
        (pl.col("recent_labs").list.len() > 0).sum().alias("with_labs"),
        pl.col("active_conditions").list.len().sum().alias("conditions"),
        pl.col("active_conditions").list.len().count().alias("conditions_n"),
        pl.col("active_medications").list.len().sum().alias("medications"),
        pl.col("active_medications").list.len().count().alias("medications_n"),
    ).row(0, named=True)
    return {k: int(row[k] or 0) for k in PARTIALS}


PARTIALS = (
    "encounters",
    "distinct_patients",
    "with_soap_note",
    "with_ecg",
    "with_imaging",
    "with_genomics",
    "with_vitals",
    "with_labs",
    "conditions",
    "conditions_n",
    "medications",
    "medications_n",
)


def add_partials(*parts: Mapping[str, int], minus: Mapping[str, int] | None = None) -> dict:
    """The sum of ``parts``, less ``minus`` (rows that were replaced)."""
    return {
        k: sum(int(p.get(k, 0)) for p in parts) - int((minus or {}).get(k, 0)) for k in PARTIALS
    }


def stats_from_partials(p: Mapping[str, int]) -> dict[str, Any]:
    """``corpus_stats`` from :func:`corpus_partials`."""
    return {
        "encounters": p["encounters"],
        "distinct_patients": p["distinct_patients"],
        "with_soap_note": p["with_soap_note"],
        "with_ecg": p["with_ecg"],
        "with_imaging": p["with_imaging"],
        "with_genomics": p["with_genomics"],
        "with_vitals": p["with_vitals"],
        "with_labs": p["with_labs"],
        "avg_conditions_per_encounter": round(p["conditions"] / p["conditions_n"], 3)
        if p["conditions_n"]
        else 0.0,
        "avg_medications_per_encounter": round(p["medications"] / p["medications_n"], 3)
        if p["medications_n"]
        else 0.0,
    }


def corpus_stats(gold: pa.Table | pl.DataFrame) -> dict[str, Any]:
    """Coverage figures of a set of Gold rows; all 0 / 0.0 when there are none."""
    return stats_from_partials(corpus_partials(gold))


def build_corpus_manifest(
    gold: pa.Table | None,
    silver_counts: Mapping[str, int],
    created_ts: dt.datetime,
    silver_versions: Mapping[str, int | None] | None = None,
    *,
    platform_name: str = PLATFORM,
    gold_version: int | None = None,
    encounter_cohorts: pa.Table | None = None,
    cohort_partials: Mapping[str, Mapping[str, int]] | None = None,
) -> dict[str, Any]:
    """The manifest downstream teams pin to.

    From the Gold rows (``gold``; ``encounter_cohorts``, columns ``encounter_id`` and
    ``cohort``, adds a per-cohort breakdown), or from each cohort's :func:`corpus_partials`
    (``cohort_partials``; ``gold`` is then ``None``).
    """
    versions = silver_versions or {}
    if cohort_partials is not None:
        total = add_partials(*cohort_partials.values())
        row_count, stats = total["encounters"], stats_from_partials(total)
    else:
        assert gold is not None
        row_count, stats = gold.num_rows, corpus_stats(gold)
    manifest: dict[str, Any] = {
        "manifest_version": MANIFEST_VERSION,
        "contract_version": CONTRACT_VERSION,
        "gold_table": GOLD_TABLE,
        "created_timestamp": created_ts.isoformat(),
        "platform": platform_name,
        "row_count": row_count,
        "corpus_stats": stats,
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
    if cohort_partials is not None:
        manifest["cohorts"] = {
            str(label): {"row_count": p["encounters"], "corpus_stats": stats_from_partials(p)}
            for label, p in sorted(cohort_partials.items())
        }
    elif encounter_cohorts is not None and gold is not None:
        df = pl.from_arrow(gold).join(
            pl.from_arrow(encounter_cohorts.select(["encounter_id", PARTITION_COLUMN])).unique(
                "encounter_id", keep="first"
            ),
            on="encounter_id",
            how="left",
        )
        manifest["cohorts"] = {
            str(label): {"row_count": part.height, "corpus_stats": corpus_stats(part)}
            for (label,), part in sorted(
                df.partition_by(PARTITION_COLUMN, as_dict=True).items(), key=lambda kv: str(kv[0])
            )
        }
    return manifest
