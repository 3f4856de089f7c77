"""The weights file: one TOML file naming the local copy of every model and benchmark file a real run uses.

Compute nodes are usually offline, so weights are downloaded once on a login node and every command
(annotate, precompute, train, sample, evaluation, tune, the sweep) reads their paths from this file,
given as `--weights FILE` or the environment variable MIRO_WEIGHTS:

    [t5]
    path = "/weights/flan-t5-xl"          # a save_pretrained folder
    [vae]
    path = "/weights/sdxl-vae"
    sha256 = "..."                        # optional: checked by `python -m miro weights check`
    [scorers.hpsv2]                       # keyword options of the scorer's factory
    checkpoint = "/weights/HPS_v2.1_compressed.pt"
    model_name = "ViT-H-14"
    [scorers.pickscore]
    model_dir = "/weights/PickScore_v1"
    processor_dir = "/weights/CLIP-ViT-H-14"
    [geneval]                             # detector, class_names, metadata, colors (+ colors_model, thresholds)
    detector = "/weights/mask2former"
    [benchmarks]
    parti = "/data/PartiPrompts.tsv"
    fid_reference = "/data/coco-val-images"
    validation = "/data/validation.tsv"    # prompts held out from every test set, for tuning

Nothing here downloads: a missing path is one line naming the key, the path and the command that fetches
it on a machine with internet. `check` reads each entry's config (never its weights) and returns every
problem at once, so one run of `python -m miro weights check FILE` lists all that needs fixing.
"""
from __future__ import annotations

import inspect
import json
import os
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from miro.errors import MiroError, did_you_mean

ENV = "MIRO_WEIGHTS"
FILE_NAME = "weights.toml"  # what `weights tiny` and `weights fetch` write in their folder
# key -> how a person gets it on a machine with internet (the scorers' own sources are asked directly)
FETCH = {
    "t5": "huggingface-cli download google/flan-t5-xl --local-dir DIR",
    "vae": "huggingface-cli download stabilityai/sdxl-vae --local-dir DIR",
    "geneval.detector": "python -c \"from transformers import Mask2FormerForUniversalSegmentation as M; "
                        "M.from_pretrained('facebook/mask2former-swin-small-coco-instance').save_pretrained('DIR')\"",
    "geneval.metadata": "wget https://raw.githubusercontent.com/djghosh13/geneval/main/prompts/evaluation_metadata.jsonl",
    "geneval.class_names": "wget https://raw.githubusercontent.com/djghosh13/geneval/main/prompts/object_names.txt",
    "geneval.colors": "huggingface-cli download timm/vit_large_patch14_clip_224.openai open_clip_model.safetensors --local-dir DIR",
    "benchmarks.parti": "wget https://raw.githubusercontent.com/google-research/parti/main/PartiPrompts.tsv",
    "benchmarks.fid_reference": "copy a folder of reference images (e.g. COCO val2014) to PATH",
    "benchmarks.validation": "write PATH: prompts held out from GenEval and PartiPrompts (PartiPrompts .tsv or GenEval .jsonl format)",
}
PATH_KEYS = {"t5": ("path",), "vae": ("path",), "geneval": ("detector", "metadata", "class_names", "colors"),
             "benchmarks": ("parti", "fid_reference", "validation")}
GENEVAL_OPTIONS = ("colors_model", "threshold", "counting_threshold", "max_objects", "max_overlap")
SECTIONS = ("t5", "vae", "scorers", "geneval", "benchmarks")


@dataclass(frozen=True)
class Entry:
    """One local file or folder: its key (e.g. "vae", "geneval.detector", "scorers.pickscore.model_dir"),
    its path, and the sha256 it must have ("" skips the check)."""

    key: str
    path: str
    sha256: str = ""

    def fetch_hint(self) -> str:
        return fetch_hint(self.key)

    def require(self) -> Path:
        """The path, or a one-line MiroError naming the key, the path and how to fetch it."""
        path = Path(self.path).expanduser()
        if not path.exists():
            raise MiroError(f"weights file key {self.key}: {path} does not exist; on a machine with internet run: {self.fetch_hint()}")
        return path


@dataclass(frozen=True)
class ScorerEntry:
    """The factory options of one scorer; path-valued options are also `Entry`s (checked, hashed)."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    files: tuple[Entry, ...] = ()


@dataclass(frozen=True)
class WeightsFile:
    """A parsed weights file ("" source and no entries when none is given)."""

    source: str = ""
    entries: Mapping[str, Entry] = field(default_factory=dict)
    scorers: Mapping[str, ScorerEntry] = field(default_factory=dict)
    geneval: Mapping[str, Any] = field(default_factory=dict)  # colors_model and thresholds

    def path(self, key: str) -> str:
        """The checked local path of `key` ("" when the file does not name it)."""
        entry = self.entries.get(key)
        return str(entry.require()) if entry else ""

    def config_overrides(self, base: Any, overrides: list[str] | tuple[str, ...]) -> list[str]:
        """`section.key=path` overrides that fill a run's T5 and VAE paths the config leaves unset
        (""); a path given with --set wins."""
        given = dict(item.split("=", 1) for item in overrides if "=" in item)
        encoder = given.get("text.encoder", base.text.encoder)
        space = given.get("latents.space", base.latents.space)
        filled = []
        for key, entry, wanted, current in (("text.path", "t5", encoder == "t5", base.text.path),
                                            ("latents.vae_path", "vae", space == "vae", base.latents.vae_path)):
            if wanted and key not in given and not current and entry in self.entries:
                filled.append(f"{key}={self.path(entry)}")
        return filled

    def relocate(self, config: Any) -> Any:
        """A checkpoint's run config with its T5 / VAE folders taken from this file when the recorded ones do
        not exist here (a run trained on another cluster); the network's weights never change."""
        from dataclasses import replace

        if config.text.encoder == "t5" and not Path(config.text.path).exists() and "t5" in self.entries:
            config = replace(config, text=replace(config.text, path=self.path("t5")))
        if config.latents.space == "vae" and not Path(config.latents.vae_path).exists() and "vae" in self.entries:
            config = replace(config, latents=replace(config.latents, vae_path=self.path("vae")))
        return config

    def scorer_options(self, name: str) -> dict[str, Any]:
        """Factory options of one scorer ({} when the file does not name it); its paths are checked."""
        entry = self.scorers.get(name)
        if entry is None:
            return {}
        for file in entry.files:
            file.require()
        return dict(entry.options)


def fetch_hint(key: str) -> str:
    if key in FETCH:
        return FETCH[key]
    parts = key.split(".")
    if parts[0] == "scorers" and len(parts) == 3:
        from miro.rewards.registry import source_of

        source = source_of(parts[1], parts[2])
        if source is not None:
            return source.how_to_get()
    return f"download the file for {key} and set its path in the weights file"


def scorer_parameters(name: str) -> dict[str, inspect.Parameter]:
    """The keyword options of a registered scorer's factory."""
    from miro.rewards.registry import factory_of

    return dict(inspect.signature(factory_of(name)).parameters)


def scorer_option_problem(name: str, options: Mapping[str, Any]) -> str:
    """"" when every option is a keyword of the scorer's factory, else the first unknown one named with the fix."""
    parameters = scorer_parameters(name)
    unknown = next((key for key in options if key not in parameters), None)
    if unknown is None:
        return ""
    return f'scorer {name} has no option "{unknown}"{did_you_mean(unknown, parameters)}; allowed: {", ".join(parameters)}'


def _is_path_option(parameter: inspect.Parameter) -> bool:
    return "Path" in str(parameter.annotation)


def _entry(key: str, value: Any, sha256: Any) -> Entry:
    if not isinstance(value, str) or not value:
        raise MiroError(f"weights file key {key} = {value!r} must be a path string")
    if sha256 and not isinstance(sha256, str):
        raise MiroError(f"weights file key {key}.sha256 must be a hex string")
    return Entry(key, value, sha256 or "")


def parse(data: Mapping[str, Any], source: str = "") -> WeightsFile:
    """Build a WeightsFile from parsed TOML; unknown sections and keys are refused with a "did you mean"."""
    entries: dict[str, Entry] = {}
    scorers: dict[str, ScorerEntry] = {}
    geneval: dict[str, Any] = {}
    for section, table in data.items():
        if section not in SECTIONS:
            raise MiroError(f'{source}: unknown section [{section}]{did_you_mean(section, SECTIONS)}; allowed: {", ".join(SECTIONS)}')
        if not isinstance(table, Mapping):
            raise MiroError(f"{source}: [{section}] must be a table")
        if section == "scorers":
            for name, options in table.items():
                scorers[name] = _scorer_entry(name, options, source)
            continue
        allowed = PATH_KEYS[section] + (GENEVAL_OPTIONS if section == "geneval" else ()) + ("sha256",)
        if PATH_KEYS[section] == ("path",) and "path" not in table:
            raise MiroError(f'{source}: [{section}] names no path; add path = "/weights/..." (or delete the table)')
        hashes = table.get("sha256", {})
        for key, value in table.items():
            if key not in allowed:
                raise MiroError(f'{source}: unknown key {section}.{key}{did_you_mean(key, allowed)}; allowed: {", ".join(allowed)}')
            if key == "sha256":
                continue
            if key in GENEVAL_OPTIONS:
                geneval[key] = value
                continue
            name = section if key == "path" else f"{section}.{key}"
            digest = hashes if isinstance(hashes, str) and key == "path" else (hashes.get(key, "") if isinstance(hashes, Mapping) else "")
            entries[name] = _entry(name, value, digest)
    return WeightsFile(source, entries, scorers, geneval)


def _scorer_entry(name: str, options: Any, source: str) -> ScorerEntry:
    if not isinstance(options, Mapping):
        raise MiroError(f"{source}: [scorers.{name}] must be a table of the scorer's options")
    options = dict(options)
    hashes = options.pop("sha256", {})
    try:
        parameters = scorer_parameters(name)
    except MiroError as err:
        raise MiroError(f"{source}: [scorers.{name}]: {err}") from None
    files = tuple(_entry(f"scorers.{name}.{key}", value, hashes.get(key, "") if isinstance(hashes, Mapping) else "")
                  for key, value in options.items() if key in parameters and _is_path_option(parameters[key]))
    return ScorerEntry(name, options, files)


def read(path: str | os.PathLike) -> WeightsFile:
    """Parse one weights file (a one-line error for a missing or malformed file)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise MiroError(f"weights file {path} is a folder; pass the TOML file that names the weights (see python -m miro weights --help)")
    if not path.is_file():
        raise MiroError(f"weights file {path} does not exist; pass --weights FILE (a TOML file, see python -m miro weights --help)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise MiroError(f"weights file {path} is not valid TOML ({err}); fix the line it names") from None
    except UnicodeDecodeError:
        raise MiroError(f"weights file {path} is not text (it is not UTF-8); pass the TOML file that names the weights, "
                        "not a weights file itself") from None
    return parse(data, str(path))


def load(path: str | os.PathLike | None = None) -> WeightsFile:
    """The weights file given, else the one in MIRO_WEIGHTS, else an empty one (nothing is named)."""
    chosen = path or os.environ.get(ENV, "")
    return read(chosen) if chosen else WeightsFile()


def merge_scorer_options(weights: WeightsFile, given: Mapping[str, Mapping[str, Any]],
                         only: Collection[str] | None = None) -> dict[str, dict[str, Any]]:
    """The weights file's scorer options (of the scorers in `only`, when given: a file may name more scorers than a
    command uses) with the command line's (`given`) on top."""
    merged = {name: weights.scorer_options(name) for name in weights.scorers if only is None or name in only}
    for name, options in given.items():
        merged.setdefault(name, {}).update(options)
    return merged


def parse_scorer_option(items: list[str] | tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """NAME.KEY=VALUE strings (values parsed as JSON, else taken as text) -> {name: {key: value}}."""
    options: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        name, dot, option = key.partition(".")
        if not (sep and dot and option and name):
            raise MiroError(f'--scorer-option "{item}" is not NAME.KEY=VALUE (e.g. pickscore.model_dir=/weights/PickScore_v1)')
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        options.setdefault(name, {})[option] = value
    return options


# ---- check: every problem at once ---------------------------------------------------------------------

def _sha256(path: Path) -> str:
    from miro.rewards.real.weights import sha256_file, sha256_folder

    return sha256_folder(path) if path.is_dir() else sha256_file(path)


FOLDER_KEYS = ("t5", "vae", "geneval.detector", "benchmarks.fid_reference")  # and every scorer option named *_dir
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")
TOKENIZER_FILES = ("tokenizer.json", "spiece.model")  # FLAN-T5's fast or sentencepiece tokenizer


def expects_folder(key: str) -> bool:
    return key in FOLDER_KEYS or key.endswith("_dir")


def _weights_problem(path: Path) -> str:
    """Whether one weights file opens in its format (its header only, never the tensors); "" when it does."""
    import zipfile

    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                handle.keys()
        except Exception as err:  # the library raises several types for a bad header
            return f"{path.name} is not a safetensors file ({str(err).splitlines()[0] if str(err) else type(err).__name__})"
        return ""
    with path.open("rb") as handle:
        head = handle.read(2)
    if not zipfile.is_zipfile(path) and head[:1] != b"\x80":  # torch.save writes a zip (or, before torch 1.6, a pickle)
        return f"{path.name} is neither a torch.save zip nor a pickle"
    return ""


def _folder_problem(entry: Entry, path: Path) -> str:
    files = [p for p in path.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)]
    weights = [p for p in files if p.suffix in WEIGHT_SUFFIXES]
    if entry.key in ("t5", "vae", "geneval.detector") or entry.key.endswith(".model_dir"):
        if not weights:
            return f"holds no weights file ({', '.join(WEIGHT_SUFFIXES)})"
        if entry.key == "t5" and not any((path / name).is_file() for name in TOKENIZER_FILES):
            return f"holds no tokenizer ({' or '.join(TOKENIZER_FILES)}); save the tokenizer beside the model"
    if entry.key == "benchmarks.fid_reference" and not any(p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp") for p in files):
        return "holds no image (.png, .jpg, .jpeg, .webp)"
    return next((problem for p in weights if (problem := _weights_problem(p))), "")


def _check_config(entry: Entry, path: Path) -> str:
    """Read the entry's config, text and weights headers (never its tensors); "" when fine, else the problem."""
    if path.is_dir() != expects_folder(entry.key):
        return (f"is a folder, but {entry.key} names a file" if path.is_dir() else
                f"is a file, but {entry.key} names a folder (a save_pretrained folder or a folder of files)")
    try:
        if entry.key == "t5":
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(str(path))
            if config.model_type != "t5":
                return f'model_type is "{config.model_type}", expected "t5"'
        elif entry.key == "vae":
            from diffusers import AutoencoderKL

            AutoencoderKL.load_config(str(path))
        elif entry.key == "geneval.detector":
            from transformers import AutoConfig

            AutoConfig.from_pretrained(str(path))
        elif entry.key == "geneval.metadata":
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    json.loads(line)
        elif entry.key == "benchmarks.parti":
            header = path.read_text(encoding="utf-8").splitlines()[0].split("\t")
            if header[:2] != ["Prompt", "Category"]:
                return f"header {header} is not PartiPrompts' (Prompt, Category, Challenge, Note)"
        elif path.suffix in (".json", ".jsonl", ".tsv", ".txt"):
            text = path.read_text(encoding="utf-8")
            if path.suffix == ".json":
                json.loads(text)
        elif path.is_dir() and (path / "config.json").is_file():
            json.loads((path / "config.json").read_text(encoding="utf-8"))
    except Exception as err:  # any reader failure is a problem of this entry, listed with the others
        return f"cannot read its config ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
    return _folder_problem(entry, path) if path.is_dir() else (_weights_problem(path) if path.suffix in WEIGHT_SUFFIXES else "")


def _unnamed_files(scorer: ScorerEntry) -> list[str]:
    """The file options a scorer cannot load without (it has a published source to fetch them from) that its table
    leaves out."""
    from miro.rewards.registry import source_of

    given = {entry.key.rsplit(".", 1)[1] for entry in scorer.files}
    return [f"[scorers.{scorer.name}] names no {key}; add {key} = PATH (get it with: {source_of(scorer.name, key).how_to_get()})"
            for key, parameter in scorer_parameters(scorer.name).items()
            if _is_path_option(parameter) and key not in given and source_of(scorer.name, key) is not None]


def check(path: str | os.PathLike) -> list[str]:
    """Every problem of a weights file: missing paths, wrong sha256, unreadable configs, unknown options."""
    try:
        weights = read(path)
    except MiroError as err:
        return [str(err)]
    problems = []
    files = list(weights.entries.values()) + [f for s in weights.scorers.values() for f in s.files]
    for entry in files:
        try:
            resolved = entry.require()
        except MiroError as err:
            problems.append(str(err))
            continue
        if entry.sha256 and _sha256(resolved) != entry.sha256.lower():
            problems.append(f"weights file key {entry.key}: {resolved} has sha256 {_sha256(resolved)}, not {entry.sha256}; fetch it again ({entry.fetch_hint()}) or fix the pin")
        if problem := _check_config(entry, resolved):
            problems.append(f"weights file key {entry.key}: {resolved}: {problem}")
    for scorer in weights.scorers.values():
        problems += [f"weights file {problem}" for problem in _unnamed_files(scorer)]
        parameters = scorer_parameters(scorer.name)
        for key in scorer.options:
            if key not in parameters:
                problems.append(f'weights file [scorers.{scorer.name}]: unknown option "{key}"{did_you_mean(key, parameters)}; allowed: {", ".join(parameters)}')
    return problems


# ---- write: what `weights tiny` and `weights fetch` produce ---------------------------------------------

def render(tables: Mapping[str, Mapping[str, Any]], header: str = "", notes: Mapping[str, str] | None = None) -> str:
    """A weights file's text: `tables` maps a section ("t5", "scorers.hpsv2", "geneval") to its keys; `notes` maps
    "section.key" to a comment written after the value. Values are strings (paths) or numbers."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for section, table in tables.items():
        lines += ["", f"[{section}]"]
        for key, value in table.items():
            text = json.dumps(str(value) if isinstance(value, os.PathLike) else value)  # JSON strings and numbers are TOML
            note = (notes or {}).get(f"{section}.{key}")
            lines.append(f"{key} = {text}" + (f"  # {note}" if note else ""))
    text = "\n".join(lines).lstrip("\n") + "\n"
    parse(tomllib.loads(text), "the weights file being written")  # refuse to write what `read` would refuse
    return text
