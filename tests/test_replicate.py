"""bench/replicate.py: fresh identifiers per copy, references intact inside a copy."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import FIXTURES, REPO

_spec = importlib.util.spec_from_file_location("bench_replicate", REPO / "bench" / "replicate.py")
assert _spec and _spec.loader
replicate = importlib.util.module_from_spec(_spec)
sys.modules["bench_replicate"] = replicate
_spec.loader.exec_module(replicate)

pytestmark = pytest.mark.skipif(
    not FIXTURES.is_dir(), reason="shared Synthea fixtures not available"
)


def _references(node: Any) -> list[str]:
    """Every `reference` string in a parsed bundle (a walk, independent of the script)."""
    if isinstance(node, dict):
        out: list[str] = []
        for key, value in node.items():
            out += [value] if key == "reference" and isinstance(value, str) else _references(value)
        return out
    if isinstance(node, list):
        return [r for item in node for r in _references(item)]
    return []


def _ids(bundle: dict[str, Any]) -> set[str]:
    return {e["resource"]["id"] for e in bundle["entry"]}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three small shared bundles, one of them with a patient name in its file name."""
    files = sorted(FIXTURES.glob("*.json"), key=lambda p: p.stat().st_size)
    bare = [p for p in files if replicate.UUID_TEXT.match(p.name)]
    named = [p for p in files if not replicate.UUID_TEXT.match(p.name)]
    folder = tmp_path_factory.mktemp("source")
    for p in [*bare[:2], named[0]]:
        shutil.copyfile(p, folder / p.name)
    return folder


@pytest.fixture(scope="module")
def copies(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("copies")
    made = replicate.replicate(source, out, copies=3)
    assert made["files"] == 9
    return out


def _by_copy(source: Path, folder: Path) -> dict[int, list[Path]]:
    groups: dict[int, list[Path]] = {}
    for path, k in replicate.copy_of(source, [folder], 10).items():
        groups.setdefault(k, []).append(path)
    return groups


def test_ids_unique_across_copies_and_source(source: Path, copies: Path) -> None:
    groups = _by_copy(source, copies)
    assert sorted(groups) == [0, 1, 2]
    seen = {
        k: set().union(*(_ids(orjson.loads(p.read_bytes())) for p in ps))
        for k, ps in groups.items()
    }
    seen[-1] = set().union(*(_ids(orjson.loads(p.read_bytes())) for p in source.glob("*.json")))
    for a in seen:
        for b in seen:
            if a < b:
                assert not seen[a] & seen[b], f"copies {a} and {b} share resource ids"
    assert all(len(v) == len(seen[-1]) for v in seen.values())


def test_references_resolve_inside_each_copy(copies: Path) -> None:
    for path in copies.glob("*.json"):
        bundle = orjson.loads(path.read_bytes())
        full = {e["fullUrl"] for e in bundle["entry"]}
        refs = [r for r in _references(bundle) if r.startswith("urn:uuid:")]
        assert refs, "expected urn:uuid: references"
        assert all(r in full for r in refs)


def test_only_uuids_change_and_names_keep_their_prefix(source: Path, copies: Path) -> None:
    for path, k in replicate.copy_of(source, [copies], 10).items():
        original = next(
            p for p in source.glob("*.json") if replicate.Remapper(k).name(p.name) == path.name
        )
        assert path.name != original.name
        assert replicate.UUID_TEXT.sub("U", path.name) == replicate.UUID_TEXT.sub(
            "U", original.name
        )
        new, old = path.read_bytes(), original.read_bytes()
        assert replicate.UUID_BYTES.sub(b"U", new) == replicate.UUID_BYTES.sub(b"U", old)
        # a one-to-one mapping: as many distinct UUIDs as before
        assert len(set(replicate.UUID_BYTES.findall(new))) == len(
            set(replicate.UUID_BYTES.findall(old))
        )


def test_deterministic(source: Path, copies: Path, tmp_path: Path) -> None:
    replicate.replicate(source, tmp_path, copies=3)
    for path in copies.glob("*.json"):
        assert (tmp_path / path.name).read_bytes() == path.read_bytes()


def test_verify_passes_and_next_copies_stay_unique(
    source: Path, copies: Path, tmp_path: Path
) -> None:
    assert replicate.verify(source, [copies]) == []
    made = replicate.replicate(source, tmp_path, copies=2, start=3, bundles=4)
    assert (made["files"], made["first_copy"], made["last_copy"]) == (4, 3, 4)
    assert replicate.verify(source, [copies, tmp_path]) == []


def test_verify_catches_shared_ids_and_dangling_references(
    source: Path, copies: Path, tmp_path: Path
) -> None:
    original = sorted(source.glob("*.json"))[0]
    # a "replica" that kept the source's ids
    shutil.copyfile(original, tmp_path / replicate.Remapper(5).name(original.name))
    assert any("more than one copy" in p for p in replicate.verify(source, [copies, tmp_path]))
    # a replica whose references point nowhere
    bad = tmp_path / "bad"
    bad.mkdir()
    raw = replicate.Remapper(6).data(original.read_bytes())
    bundle = orjson.loads(raw)
    bundle["entry"][0]["fullUrl"] = "urn:uuid:00000000-0000-0000-0000-000000000000"
    (bad / replicate.Remapper(6).name(original.name)).write_bytes(orjson.dumps(bundle))
    assert any("without a matching fullUrl" in p for p in replicate.verify(source, [bad]))
