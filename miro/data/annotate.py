"""Score a dataset with reward models into a parquet file, resumably, shardably, without losing rows.

The output is one row per sample (wide):
    sample_id (int64), caption (str), and for every scorer <name>:
    <name> (float64 score, NaN unless ok), <name>__status ("ok" | "nan" | "failed" | "missing"),
    <name>__error (why it failed, "" otherwise)
and the parquet metadata key "miro.annotation" holds JSON {format, scorers: {name: info + fingerprint},
shard: [index, count] or null once shards are merged}.

Crash safety and resume. While running, finished (sample_id, scorer) rows go to numbered part files in
"<out>.parts/" after every batch and whenever the run stops (exception, Ctrl-C); each part is
written to a tmp file and renamed, so it is whole or absent, and every `COMPACT_EVERY` parts of a run are
joined into one, so their number stays small. At the end <out> and all parts are merged
into <out> (tmp + os.replace) and the parts removed. A hard kill loses at most the rows since the last
batch. Running the same command again reads <out> and its parts, skips the pairs already there (a
failed pair too, unless retry_failed) and scores only the rest. When rows for one pair meet (resume,
retry, merge), "ok" beats "nan" beats "failed", and otherwise the newest wins.

Sharding: webdataset tar i belongs to shard i % shard_count (a task streams its own tars, never indexing the
others); for folders and map-style datasets sample s belongs to shard s.sample_id % shard_count. One process
writes one file (give each SLURM array task its own file) and `merge_annotations` joins the shard files.
Images are decoded in DataLoader worker processes (miro.data.decode) while the scorers run in this one.

No sample is lost in silence: the summary line counts the samples without a usable score (unreadable, a
scorer error, NaN) and names the first few; past `max_failed` of the shard's samples the call fails once
the shard is written (its scores are kept), so a broken shard cannot slip into training.
Scores from different scorer fingerprints never meet in one file: resuming onto a file annotated with
another fingerprint for the same scorer is refused.
"""
from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm

from miro.data.decode import Decoded, task_batches
from miro.data.sources import Source, SourceItem, SourceProblem, as_source, task_items
from miro.errors import MiroError
from miro.files import atomic_path, remove_leftovers
from miro.rewards.base import Scorer, ScorerInfo
from miro.rewards.registry import load_scorer

FORMAT = "miro.annotation/1"
META_KEY = b"miro.annotation"
STATUS_RANK = {"ok": 0, "nan": 1, "failed": 2, "missing": 3}  # lower wins when rows for one pair meet
LONG_COLUMNS = ("sample_id", "caption", "scorer", "score", "status", "error")
_PART_COUNTER = count()
COMPACT_EVERY = 64  # parts of one run joined into one
SHOWN_FAILURES = 3  # samples named in the summary line


# ---- parquet plumbing shared with precompute.py ---------------------------------------------------------

def write_parquet_atomic(table: pa.Table, path: Path, meta_key: bytes, meta: Mapping[str, Any], row_group_size: int | None = None) -> None:
    """Write `table` with JSON metadata to a tmp file, then rename over `path` (readers see old or new)."""
    schema_meta = dict(table.schema.metadata or {})
    schema_meta[meta_key] = json.dumps(meta, sort_keys=True).encode()
    with atomic_path(path) as tmp:
        pq.write_table(table.replace_schema_metadata(schema_meta), tmp, row_group_size=row_group_size)


def read_meta(path: Path, meta_key: bytes) -> dict[str, Any]:
    """The JSON metadata a file was written with ({} when absent)."""
    raw = (pq.read_schema(path).metadata or {}).get(meta_key)
    return json.loads(raw) if raw else {}


class PartFiles:
    """Partial results beside an output file: <out>.parts/part-<pid>-<n>-<ns>.parquet, merged at the end."""

    def __init__(self, out: Path, meta_key: bytes):
        self.out, self.meta_key = out, meta_key
        self.dir = out.with_name(out.name + ".parts")

    def paths(self) -> list[Path]:
        """The finished output (if any) first, then the parts, oldest first."""
        parts = sorted(self.dir.glob("part-*.parquet"), key=lambda p: int(p.stem.rsplit("-", 1)[1])) if self.dir.is_dir() else []
        return ([self.out] if self.out.is_file() else []) + parts

    def write(self, table: pa.Table, meta: Mapping[str, Any]) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"part-{os.getpid()}-{next(_PART_COUNTER)}-{time.time_ns()}.parquet"
        write_parquet_atomic(table, path, self.meta_key, meta)
        return path

    def compact(self, written: Sequence[Path], meta: Mapping[str, Any]) -> Path:  # each row is rewritten once
        """Join parts of one run into one part (written before the parts it absorbs are deleted)."""
        joined = self.write(pa.concat_tables([pq.read_table(p) for p in written]), meta)
        for path in written:
            path.unlink()
        return joined

    def replace_all(self, table: pa.Table, meta: Mapping[str, Any]) -> None:
        """Write the merged output, then delete the parts it absorbed."""
        absorbed = [p for p in self.paths() if p != self.out]
        write_parquet_atomic(table, self.out, self.meta_key, meta)
        for path in absorbed:
            path.unlink()
        if self.dir.is_dir():
            remove_leftovers(self.dir)  # left by a run killed mid-write
            if not any(self.dir.iterdir()):
                self.dir.rmdir()


# ---- long <-> wide ---------------------------------------------------------------------------------------

def _wide_to_long(df: pd.DataFrame, scorers: Iterable[str]) -> pd.DataFrame:
    frames = [
        pd.DataFrame({"sample_id": df["sample_id"], "caption": df["caption"], "scorer": name, "score": df[name],
                      "status": df[f"{name}__status"], "error": df[f"{name}__error"]})
        for name in scorers
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(LONG_COLUMNS))


def _resolve(long: pd.DataFrame) -> pd.DataFrame:
    """One row per (sample_id, scorer): best status, then newest (rows are in write order)."""
    long = long[long["status"] != "missing"]
    long = long.assign(_rank=long["status"].map(STATUS_RANK), _order=np.arange(len(long)))
    long = long.sort_values(["sample_id", "scorer", "_rank", "_order"], ascending=[True, True, True, False])
    return long.drop_duplicates(["sample_id", "scorer"]).drop(columns=["_rank", "_order"])


def _long_to_wide(long: pd.DataFrame, scorers: Sequence[str]) -> pd.DataFrame:
    captions = long.drop_duplicates("sample_id", keep="last").set_index("sample_id")["caption"]
    wide = pd.DataFrame({"sample_id": np.sort(captions.index.to_numpy(dtype=np.int64))})
    wide["caption"] = captions.reindex(wide["sample_id"]).to_numpy()
    for name in scorers:
        rows = long[long["scorer"] == name].set_index("sample_id").reindex(wide["sample_id"])
        wide[name] = rows["score"].astype("float64").to_numpy()
        wide[f"{name}__status"] = rows["status"].fillna("missing").to_numpy()
        wide[f"{name}__error"] = rows["error"].fillna("").to_numpy()
    return wide


def _read_long(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    meta = read_meta(path, META_KEY)
    df = pq.read_table(path).to_pandas()
    if "scorer" in df.columns:  # a part file is already long
        return df, meta
    return _wide_to_long(df, meta.get("scorers", {})), meta


# ---- fingerprints and reading ----------------------------------------------------------------------------

def info_record(info: ScorerInfo) -> dict[str, Any]:
    return {"fingerprint": info.fingerprint(), "version": info.version, "higher_is_better": info.higher_is_better,
            "score_range": list(info.score_range), "details": dict(info.details)}


def _merge_scorer_meta(metas: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Union of the scorer records of several files; two fingerprints for one scorer are refused."""
    merged: dict[str, dict[str, Any]] = {}
    origin: dict[str, str] = {}
    for where, scorers in metas:
        for name, record in scorers.items():
            if name in merged and merged[name]["fingerprint"] != record["fingerprint"]:
                raise MiroError(
                    f'scorer "{name}" has fingerprint {record["fingerprint"]} in {where} but {merged[name]["fingerprint"]} in {origin[name]}; '
                    "scores of different model versions must not mix: write to a new file or delete the old annotation"
                )
            merged.setdefault(name, dict(record))
            origin.setdefault(name, where)
    return merged


def _read_all(paths: Sequence[Path]) -> tuple[pd.DataFrame, dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Resolved long rows, merged scorer records and each file's metadata."""
    frames, metas = [], []
    for path in paths:
        try:
            frame, meta = _read_long(path)
        except (OSError, pa.ArrowInvalid) as err:
            raise MiroError(f"annotation file {path} is unreadable ({err}); delete it and rerun to score its samples again") from None
        frames.append(frame)
        metas.append(meta)
    scorers = _merge_scorer_meta((str(p), m.get("scorers", {})) for p, m in zip(paths, metas))
    long = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(LONG_COLUMNS))
    return _resolve(long), scorers, metas


def read_annotation(path: str | os.PathLike, scorers: Sequence[str] | None = None) -> pd.DataFrame:
    """The wide table of an annotation (including parts of an unfinished run); scorer records in .attrs["scorers"].

    `scorers`: of a finished file, read only the values of these (sample_id, caption and every scorer's status are
    always read; a name the file does not hold is left to the caller to refuse). A finished file is read as it is
    stored (wide and resolved); only parts need the long form's resolution.
    """
    path = Path(path)
    paths = PartFiles(path, META_KEY).paths()
    if not paths:
        raise MiroError(f"annotation {path} does not exist; run annotate(...) to write it")
    if paths == [path] and scorers is not None:
        recorded = read_meta(path, META_KEY).get("scorers", {})
        columns = ["sample_id", "caption", *(n for n in scorers if n in recorded), *(f"{n}__status" for n in sorted(recorded))]
        try:
            wide = pq.read_table(path, columns=columns).to_pandas()
        except (OSError, pa.ArrowInvalid) as err:
            raise MiroError(f"annotation file {path} is unreadable ({err}); delete it and rerun to score its samples again") from None
        wide.attrs["scorers"] = recorded
        return wide
    long, records, _ = _read_all(paths)
    wide = _long_to_wide(long, sorted(records))
    wide.attrs["scorers"] = records
    return wide


def annotation_fingerprint(path: str | os.PathLike) -> str:
    """The identity of an annotation file's bytes (miro.content.file_identity: every byte up to 64 MiB, 16 spread
    blocks of a larger file, so every rank of a 12M-sample run reads 1 MiB, not the file): bins fitted on it are
    refitted when it changes."""
    from miro.content import file_identity

    if not Path(path).is_file():
        raise MiroError(f"annotation {path} does not exist (or is not assembled yet); run annotate for every shard, or annotate --merge")
    return file_identity(Path(path))[:16]


# ---- annotation ------------------------------------------------------------------------------------------

@dataclass
class AnnotationReport:
    """What one annotate() call did; `line()` is the one-line summary printed at the end."""

    path: Path
    samples: int = 0  # samples this call looked at (its shard, minus those already complete)
    skipped: int = 0  # samples of the shard already complete
    scored: int = 0  # new (sample, scorer) rows written
    failed: Counter = field(default_factory=Counter)  # scorer -> new failed rows
    nan: Counter = field(default_factory=Counter)  # scorer -> new NaN scores
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    total: int = 0  # samples the shard's file holds (all runs)
    unusable: dict[int, str] = field(default_factory=dict)  # the shard's samples without a usable score for every scorer, why

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        flags = ", ".join(f"{n}: {self.failed[n]} failed {self.nan[n]} NaN" for n in sorted(set(self.failed) | set(self.nan)))
        named = "; ".join(f"sample {sid}: {why}" for sid, why in list(self.unusable.items())[:SHOWN_FAILURES])
        return (f"annotated {self.samples} samples ({self.skipped} already done) -> {self.path} in {self.seconds:.1f} s "
                f"({self.samples_per_second:.0f} samples/s){'; ' + flags if flags else ''}; "
                f"{len(self.unusable)} of {self.total} samples without a usable score{': ' + named if named else ''}"
                f"{' ...' if len(self.unusable) > SHOWN_FAILURES else ''}"
                f"{'; source problems: ' + '; '.join(self.problems) if self.problems else ''}")


def _resolve_scorers(scorers: Sequence[str | Scorer] | str | Scorer) -> dict[str, Scorer]:
    if isinstance(scorers, (str, Scorer)):
        scorers = [scorers]
    resolved: dict[str, Scorer] = {}
    for entry in scorers:
        scorer = load_scorer(entry) if isinstance(entry, str) else entry
        if scorer.name in resolved:
            raise MiroError(f'scorer "{scorer.name}" is listed twice; list each scorer once')
        resolved[scorer.name] = scorer
    if not resolved:
        raise MiroError("no scorers given; pass at least one scorer name or Scorer")
    return resolved


def _row(item: SourceItem | Decoded, scorer: str, score: float, status: str, error: str) -> dict[str, Any]:
    return {"sample_id": item.sample_id, "caption": item.caption, "scorer": scorer, "score": score, "status": status, "error": error}


def _value_row(item: SourceItem | Decoded, scorer: str, value: float) -> dict[str, Any]:
    """An "ok" row for a finite score; a "nan" row (flagged, counted) for NaN or inf."""
    if np.isfinite(value):
        return _row(item, scorer, value, "ok", "")
    return _row(item, scorer, float("nan"), "nan", f"score is {value}")


def _run_scorer(scorer: Scorer, items: list[Decoded], images: list[torch.Tensor], prepared: dict[Any, Any]) -> list[dict[str, Any]]:
    """Score one same-shape group; if the batch raises, score items one by one to isolate the culprit.

    `prepared` holds this batch's model inputs by (preprocessing key, samples), so scorers that preprocess
    alike (CLIP scorers with one processor) resize and normalise each image once.
    """
    try:
        key = (scorer.preprocessing_key, tuple(it.sample_id for it in items))
        if not scorer.preprocessing_key or key not in prepared:
            prepared_batch = scorer.prepare(torch.stack(images))
            if scorer.preprocessing_key:
                prepared[key] = prepared_batch
        else:
            prepared_batch = prepared[key]
        scores = torch.as_tensor(scorer.score_prepared(prepared_batch, [it.caption for it in items])).detach().cpu()
        if scores.shape != (len(items),):
            raise MiroError(f"scorer returned shape {tuple(scores.shape)}, expected ({len(items)},)")
    except Exception as err:
        if len(items) == 1:
            return [_row(items[0], scorer.name, float("nan"), "failed", f"scorer error: {type(err).__name__}: {err}")]
        return [row for it, img in zip(items, images) for row in _run_scorer(scorer, [it], [img], {})]
    return [_value_row(it, scorer.name, value) for it, value in zip(items, scores.double().tolist())]


def _score_batch(items: list[Decoded], scorers: Mapping[str, Scorer], done: Mapping[str, set[int]]) -> list[dict[str, Any]]:
    """Rows for every missing (item, scorer) pair; each image is decoded once for every scorer, and an
    unreadable image fails its rows, never the batch."""
    rows, images = [], {}
    for it in items:
        if it.error:
            rows += [_row(it, name, float("nan"), "failed", it.error) for name in scorers if it.sample_id not in done[name]]
        else:
            images[it.sample_id] = it.pixels()
    prepared: dict[Any, Any] = {}
    for name, scorer in scorers.items():
        groups: dict[tuple[int, ...], list[Decoded]] = {}
        for it in items:
            if it.sample_id in images and it.sample_id not in done[name]:
                groups.setdefault(tuple(images[it.sample_id].shape), []).append(it)
        for group in groups.values():
            rows += _run_scorer(scorer, group, [images[it.sample_id] for it in group], prepared)
    return rows


def _check_shard(metas: Sequence[Mapping[str, Any]], shard: list[int], out: Path) -> None:
    for meta in metas:
        if meta.get("shard") not in (None, shard):
            raise MiroError(f"{out} was written as shard {meta['shard'][0]} of {meta['shard'][1]}, not {shard[0]} of {shard[1]}; use the same shard_index/shard_count or another output file")


def annotate(
    source: Any,
    scorers: Sequence[str | Scorer] | str | Scorer,
    out_path: str | os.PathLike,
    shard_index: int = 0,
    shard_count: int = 1,
    batch_size: int = 64,
    progress: bool = True,
    flush_every: int = 1,
    retry_failed: bool = False,
    max_failed: float = 0.01,
    workers: int | None = None,
) -> AnnotationReport:
    """Score the samples of one shard with every scorer into `out_path`, skipping pairs already there.

    `source`: a Source, an image folder, webdataset shards, or a map-style dataset (see sources.as_source).
    `scorers`: registry names or Scorer objects; their columns are named by `scorer.name`.
    `flush_every`: batches between part files (1: a hard kill loses at most the batch being scored).
    `max_failed`: the fraction of the shard's samples that may lack a usable score before the call fails.
    `workers`: decoder processes (None: one per core beside this one; none for an in-memory dataset).
    """
    if not 0 <= shard_index < shard_count:
        raise MiroError(f"shard_index = {shard_index} must lie in [0, shard_count = {shard_count})")
    if batch_size < 1 or flush_every < 1:
        raise MiroError(f"batch_size = {batch_size} and flush_every = {flush_every} must be >= 1")
    if not 0 <= max_failed <= 1:
        raise MiroError(f"max_failed = {max_failed} must lie in [0, 1] (a fraction of the shard's samples)")
    src: Source = as_source(source)
    scorer_map = _resolve_scorers(scorers)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    parts = PartFiles(out, META_KEY)
    shard = [shard_index, shard_count]
    current = {name: info_record(s.info) for name, s in scorer_map.items()}
    long, recorded, metas = _read_all(parts.paths())
    _check_shard(metas, shard, out)
    _merge_scorer_meta([(str(out), recorded), ("this run", current)])
    keep = long["status"].isin(["ok", "nan"] if retry_failed else ["ok", "nan", "failed"])
    done = {name: set(long.loc[keep & (long["scorer"] == name), "sample_id"].astype(int).tolist()) for name in scorer_map}
    complete = frozenset(set.intersection(*done.values()))  # every scorer done: skipped without decoding
    report = AnnotationReport(out, skipped=len(complete))
    meta = {"format": FORMAT, "scorers": current, "shard": shard}
    start, pending = time.perf_counter(), 0
    buffer: list[dict[str, Any]] = []
    written: list[Path] = []  # this run's parts since the last compaction
    bar = tqdm(unit="img", desc=f"annotate {out.name}", disable=not progress)
    try:
        for batch in task_batches(src, shard_index, shard_count, batch_size, skip=complete, workers=workers):
            report.problems += [b.message for b in batch if isinstance(b, SourceProblem)]
            items = [b for b in batch if isinstance(b, Decoded)]
            rows = _score_batch(items, scorer_map, done)
            buffer += rows
            report.samples += len(items)
            report.scored += len(rows)
            for row in rows:
                if row["status"] != "ok":
                    (report.failed if row["status"] == "failed" else report.nan)[row["scorer"]] += 1
            pending += 1
            bar.update(len(items))
            bar.set_postfix(failed=sum(report.failed.values()), nan=sum(report.nan.values()))
            if pending >= flush_every:
                written.append(parts.write(pa.Table.from_pylist(buffer), meta))
                buffer, pending = [], 0
                if len(written) >= COMPACT_EVERY:
                    parts.compact(written, meta)
                    written = []
    finally:
        bar.close()
        if buffer:  # whatever happened, keep every finished row
            parts.write(pa.Table.from_pylist(buffer), meta)
    if parts.paths() != [out]:  # something new to merge into the output
        long, scorers_all, _ = _read_all(parts.paths())
        table = pa.Table.from_pandas(_long_to_wide(long, sorted(scorers_all)), preserve_index=False)
        parts.replace_all(table, {"format": FORMAT, "scorers": scorers_all, "shard": shard})
    report.seconds = time.perf_counter() - start
    report.total, report.unusable = int(long["sample_id"].nunique()), _unusable(long)
    if progress:
        tqdm.write(report.line(), file=sys.stderr)  # stdout stays free for machine-readable output
    where = f"annotation shard {shard_index}/{shard_count} ({out})"
    if report.total == 0:
        raise MiroError(f"{where} found no samples{': ' + '; '.join(report.problems) if report.problems else ''}; "
                        "check the source and the shard count")
    if report.problems:  # a truncated tar hides the samples after the damage: none of them is counted above
        raise MiroError(f"{where}: {report.problems[0]}; the samples before the damage are scored and kept: replace or remove "
                        "the damaged shard and rerun")
    if len(report.unusable) > max_failed * report.total:
        first = "; ".join(f"sample {sid}: {why}" for sid, why in list(report.unusable.items())[:SHOWN_FAILURES])
        raise MiroError(f"{where}: {len(report.unusable)} of {report.total} samples ({len(report.unusable) / report.total:.1%}) "
                        f"have no usable score, more than the allowed {max_failed:.1%} (first: {first}); the scores are kept: "
                        "fix or remove those samples and rerun, or allow more with --max-failed")
    return report


def _unusable(long: pd.DataFrame) -> dict[int, str]:
    """Samples with a score that is not ok (failed or NaN) for some scorer, and the first reason, by sample id."""
    bad = long[long["status"] != "ok"].drop_duplicates("sample_id")
    return {int(sid): f"{scorer}: {error or status}" for sid, scorer, status, error
            in zip(bad["sample_id"], bad["scorer"], bad["status"], bad["error"])}


def merge_annotations(paths: Sequence[str | os.PathLike], out_path: str | os.PathLike) -> Path:
    """Join shard files (and any parts they left) into one file; fingerprints must agree."""
    files = [p for path in paths for p in PartFiles(Path(path), META_KEY).paths()]
    if not files:
        raise MiroError(f"none of the {len(paths)} annotation files exist; run annotate(...) for every shard first")
    long, scorers, _ = _read_all(files)
    out = Path(out_path)
    table = pa.Table.from_pandas(_long_to_wide(long, sorted(scorers)), preserve_index=False)
    write_parquet_atomic(table, out, META_KEY, {"format": FORMAT, "scorers": scorers, "shard": None})
    return out


def _json_row(item: SourceItem, key: str) -> dict[str, Any]:
    """The row of one JSON score: ok, nan (non-finite) or failed (unreadable sample, missing or not a number)."""
    if item.error:
        return _row(item, key, float("nan"), "failed", item.error)
    try:
        value = float(item.fields.get("json", {})[key])
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        return _row(item, key, float("nan"), "failed", f"no numeric {key!r} in the sample's JSON ({type(err).__name__})")
    return _value_row(item, key, value)


def import_scores(source: Any, keys: Sequence[str], out_path: str | os.PathLike) -> Path:
    """Turn reward scores stored in each sample's JSON (the paper's shards) into an annotation file.

    Each key becomes a scorer column with fingerprint ScorerInfo(key, "sample-json"); a sample without
    the key (or unreadable) is "failed", a non-finite value "nan".
    """
    items = [item for item in task_items(source, 0, 1) if isinstance(item, SourceItem)]  # streamed: no index of the tars
    rows = [_json_row(item, key) for item in items for key in keys]
    scorers = {key: info_record(ScorerInfo(key, "sample-json")) for key in keys}
    long = _resolve(pd.DataFrame(rows, columns=list(LONG_COLUMNS)))
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_parquet_atomic(pa.Table.from_pandas(_long_to_wide(long, sorted(keys)), preserve_index=False), out, META_KEY,
                         {"format": FORMAT, "scorers": scorers, "shard": None})
    return out


def summarize(path: str | os.PathLike) -> pd.DataFrame:
    """Per-reward statistics and correlations of the ok scores.

    Columns are two-level: summary["stats"] has count / mean / std / min / max / nan / failed per reward,
    summary["corr"] is the Pearson correlation matrix (pairwise over samples where both are ok).
    """
    wide = read_annotation(path)
    names = sorted(wide.attrs["scorers"])
    stats = pd.DataFrame({
        "count": [int((wide[f"{n}__status"] == "ok").sum()) for n in names],
        "mean": [wide[n].mean() for n in names],
        "std": [wide[n].std() for n in names],
        "min": [wide[n].min() for n in names],
        "max": [wide[n].max() for n in names],
        "nan": [int((wide[f"{n}__status"] == "nan").sum()) for n in names],
        "failed": [int((wide[f"{n}__status"] == "failed").sum()) for n in names],
    }, index=pd.Index(names, name="reward"))
    corr = wide[names].corr()
    return pd.concat({"stats": stats, "corr": corr}, axis=1)
