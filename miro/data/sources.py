"""Where images and captions come from: folders, webdataset shards, or any map-style dataset.

A source is read two ways. Annotation and precompute read one task's samples in order (`task_items`):
webdataset shards stream tar by tar (webdataset's own reader, no index), so a task of a 12M-sample dataset opens
only its own tars; folders and map-style datasets take the samples whose id falls in the task. The training set
reads by index (`len`, `sample_ids`, `item(index)`), which for tar shards indexes every member's offset on first
use: that path is for training on raw images (small data); at scale training reads precomputed features.

One sample is a group of files sharing a key, the layout img2dataset writes and the paper's preprocessing
uses, in a tar shard or unpacked in a folder:
    000000123.jpg (or .jpeg / .png / .webp)   the image
    000000123.txt                             the caption (UTF-8)
    000000123.json                            metadata, e.g. precomputed reward scores  -> fields["json"]
    000000123.<name>.npy                      precomputed arrays (latents, text embeddings) -> fields[<name>]
The key is split from the extensions at the first dot of the file name (webdataset's rule).
sample_id = int(file name of the key) when it is all digits (img2dataset keys), otherwise a stable 63-bit
hash of the key; two keys with one id are refused.

A sample that cannot be read (missing caption or image, corrupt JSON/npy/image, truncated tar member) is
returned as a failed item whose `error` says why; reading it never raises past the item. Problems that
hide whole samples (a truncated tar) are listed in `source.problems` (random access) or yielded as a
`SourceProblem` (task streams).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import braceexpand
import numpy as np
import torch
from PIL import Image
from torchvision.transforms import functional as TF
from webdataset.tariterators import base_plus_ext, tarfile_samples

from miro.errors import MiroError

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")


class ItemError(Exception):
    """A sample that cannot be read; the message is the reason recorded in annotations."""


@dataclass(frozen=True)
class SourceItem:
    """One sample. The image is decoded only when `image()` is called (annotation may not need it)."""

    sample_id: int
    caption: str
    loader: Callable[[], torch.Tensor] | None = None  # -> float (3, H, W) in [0, 1]
    fields: Mapping[str, Any] = field(default_factory=dict)
    error: str = ""
    encoded: Callable[[], bytes] | None = None  # the image file's bytes, where the item comes from a file

    def image(self) -> torch.Tensor:
        """Float (3, H, W) in [0, 1]; raises ItemError with the reason when the sample is unreadable."""
        if self.error or self.loader is None:
            raise ItemError(self.error or "no image")
        try:
            return self.loader()
        except ItemError:
            raise
        except Exception as err:  # any decoder failure is a property of the data, not a crash
            raise ItemError(f"unreadable image: {type(err).__name__}: {err}") from None


@dataclass(frozen=True)
class SourceProblem:
    """Something that hides whole samples from a task's stream (a truncated or unreadable tar)."""

    message: str


class Source(Protocol):
    """What the training set needs from a dataset: random access by index (see `task_items` for tasks)."""

    @property
    def sample_ids(self) -> Sequence[int]: ...

    @property
    def problems(self) -> list[str]: ...

    def __len__(self) -> int: ...

    def item(self, index: int) -> SourceItem: ...


def sample_id_for(key: str) -> int:
    """int(name) for digit names (img2dataset), else the first 63 bits of blake2b(key)."""
    name = key.rsplit("/", 1)[-1]
    if name.isdigit():
        return int(name)
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") >> 1


def decode_image(data: bytes) -> torch.Tensor:
    """Bytes of any PIL format -> float (3, H, W) in [0, 1]; grey and RGBA become RGB."""
    return unit_range(decode_pixels(data))


def decode_pixels(data: bytes, at_least: int | None = None) -> torch.Tensor:
    """Bytes of any PIL format -> uint8 (3, H, W) (a quarter of the float's bytes, for a decoder process to send on).

    `at_least`: the image will be fitted to this size afterwards, so a JPEG may be decoded at a reduced scale
    whose shorter side is still >= it (PIL's draft: the decoder skips the detail, 2-3x faster for photos).
    """
    with Image.open(io.BytesIO(data)) as img:
        if at_least and img.format == "JPEG":
            img.draft("RGB", (at_least, at_least))
        img.load()  # decode now so a truncated file fails here, not later
        rgb = img.convert("RGB")
    return TF.pil_to_tensor(rgb)


def unit_range(image: torch.Tensor) -> torch.Tensor:
    """uint8 (3, H, W) -> float in [0, 1]."""
    return image.float().div_(255)


def fit_to(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the shorter side to `size` (antialiased) and center-crop to (size, size)."""
    if image.shape[-2:] == (size, size):
        return image
    image = TF.resize(image, size, antialias=True)
    return TF.center_crop(image, [size, size])


def _is_field(ext: str) -> bool:
    """Members read eagerly with the item: caption, JSON and npy arrays (images wait for `image()`)."""
    return ext in ("txt", "json") or ext.endswith(".npy")


def _decode_member(ext: str, data: bytes) -> tuple[str, Any]:
    """(field name, value) of a caption, JSON or npy member."""
    if ext == "txt":
        return "caption", data.decode("utf-8").strip()
    if ext == "json":
        return "json", json.loads(data)
    return ext[: -len(".npy")], np.load(io.BytesIO(data), allow_pickle=False)


def _assemble(sample_id: int, key: str, members: Mapping[str, Callable[[], bytes]]) -> SourceItem:
    """Build an item from the member readers of one key, turning any failure into a failed item."""
    image_ext = next((e for e in IMAGE_EXTENSIONS if e in members), None)
    caption, fields = "", {}
    try:
        for ext, read in members.items():
            if _is_field(ext):
                name, value = _decode_member(ext, read())
                fields[name] = value
        caption = fields.pop("caption", None)
        if caption is None:
            raise ItemError(f"{key}: no caption (.txt)")
        if image_ext is None:
            raise ItemError(f"{key}: no image ({', '.join(IMAGE_EXTENSIONS)})")
    except Exception as err:
        reason = str(err) if isinstance(err, ItemError) else f"{key}: {type(err).__name__}: {err}"
        return SourceItem(sample_id, caption or "", fields=fields, error=reason)
    read_image = members[image_ext]
    return SourceItem(sample_id, caption, lambda: decode_image(read_image()), fields, encoded=read_image)


def _returns(data: bytes) -> Callable[[], bytes]:
    """A member reader for bytes already read (a streamed tar)."""
    return lambda: data


def _index_ids(keys: Sequence[str], where: str) -> list[int]:
    """Sample ids of the keys, refusing two keys that map to one id."""
    ids: list[int] = []
    seen: dict[int, str] = {}
    for key in keys:
        sid = sample_id_for(key)
        if sid in seen:
            raise MiroError(f'{where}: keys "{seen[sid]}" and "{key}" both give sample_id {sid}; rename one so every sample has its own id')
        seen[sid] = key
        ids.append(sid)
    return ids


class ImageFolderSource:
    """A folder tree of images with sidecar captions (<key>.txt), optional <key>.json and <key>.<name>.npy.

    Sidecar files were chosen over one captions.jsonl because they are what img2dataset's `files` output
    and an unpacked webdataset shard look like, so a folder and a shard read the same way.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if not self.root.is_dir():
            raise MiroError(f"image folder {self.root} does not exist; set the path to a folder of images with .txt captions")
        groups: dict[str, dict[str, Path]] = {}
        for path in sorted(p for p in self.root.rglob("*") if p.is_file()):
            key, ext = base_plus_ext(path.relative_to(self.root).as_posix())
            if key is not None:
                groups.setdefault(key, {})[ext.lower()] = path
        self._keys = [k for k, m in groups.items() if "txt" in m or any(e in m for e in IMAGE_EXTENSIONS)]
        if not self._keys:
            raise MiroError(f"image folder {self.root} holds no images or captions; expected <key>.jpg/.png with <key>.txt")
        self._groups = groups
        self.sample_ids = _index_ids(self._keys, str(self.root))
        self.problems: list[str] = []

    def __len__(self) -> int:
        return len(self._keys)

    def item(self, index: int) -> SourceItem:
        key = self._keys[index]
        members = {ext: path.read_bytes for ext, path in self._groups[key].items()}
        return _assemble(self.sample_ids[index], key, members)


@dataclass(frozen=True)
class _Member:
    shard: int
    offset: int
    size: int


def shard_paths(urls: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """A directory (all *.tar in it), one path, a brace pattern ("a-{000..009}.tar") or a list of those."""
    if isinstance(urls, (str, os.PathLike)):
        text = os.fspath(urls)
        if Path(text).is_dir():
            return sorted(Path(text).glob("*.tar"))
        return [Path(p) for p in braceexpand.braceexpand(text)]
    return [p for u in urls for p in shard_paths(u)]


class WebDatasetSource:
    """Uncompressed webdataset tar shards.

    A task streams its own tars (`stream`: webdataset's tar reader, nothing indexed). Random access (`item`,
    `sample_ids`) walks every tar's headers once, on first use (no data is read), then reads only an item's own
    members. A truncated shard keeps the members that are complete and notes the rest in `problems`.
    Compressed shards (.tar.gz) cannot be read at an offset and are refused.
    """

    def __init__(self, urls: str | os.PathLike | Iterable[str | os.PathLike]):
        self.paths = shard_paths(urls)
        if not self.paths:
            raise MiroError(f"no webdataset shards found at {urls}; point to a folder of .tar files or a pattern like data-{{000..009}}.tar")
        for path in self.paths:
            if not path.is_file():
                raise MiroError(f"webdataset shard {path} does not exist; check the shard pattern")
            if path.suffix != ".tar":
                raise MiroError(f"webdataset shard {path} is not an uncompressed .tar; decompress it (random access needs plain tar)")

    def stream(self, shard: int, count: int, part: int = 0, parts: int = 1) -> Iterator[SourceItem | SourceProblem]:
        """The samples of tars shard, shard + count, ... (part `part` of `parts` of them), in tar order."""
        for path in self.paths[shard::count][part::parts]:
            failure: list[BaseException] = []
            members = 0

            def stop(error: BaseException, failure: list[BaseException] = failure) -> bool:
                failure.append(error)
                return False  # a tar stream cannot go on after an error: keep what was complete

            for sample in tarfile_samples([{"url": str(path)}], handler=stop):
                key = sample["__key__"]
                data = {ext: bytes(value) for ext, value in sample.items() if not ext.startswith("__")}
                members += len(data)
                yield _assemble(sample_id_for(key), key, {ext: _returns(value) for ext, value in data.items()})
            if failure:
                yield SourceProblem(f"{path}: unreadable after {members} members ({type(failure[0]).__name__}: {failure[0]})")

    def estimated_len(self) -> int:
        """The number of samples, without reading every tar: the sum of img2dataset's per-tar `<tar>_stats.json`
        "successes" when every tar has one (exact), else the first tar's sample count times the number of tars."""
        stats = [path.with_name(f"{path.stem}_stats.json") for path in self.paths]
        if all(p.is_file() for p in stats):
            return sum(int(json.loads(p.read_text()).get("successes", 0)) for p in stats)
        groups: dict[str, dict[str, _Member]] = {}
        self._index_shard(0, self.paths[0], groups, [])
        return len([k for k, m in groups.items() if "txt" in m or any(e in m for e in IMAGE_EXTENSIONS)]) * len(self.paths)

    @cached_property
    def _index(self) -> tuple[list[str], dict[str, dict[str, _Member]], list[int], list[str]]:
        groups: dict[str, dict[str, _Member]] = {}
        problems: list[str] = []
        for shard, path in enumerate(self.paths):
            self._index_shard(shard, path, groups, problems)
        keys = [k for k, m in groups.items() if "txt" in m or any(e in m for e in IMAGE_EXTENSIONS)]
        return keys, groups, _index_ids(keys, "webdataset shards"), problems

    @staticmethod
    def _index_shard(shard: int, path: Path, groups: dict[str, dict[str, _Member]], problems: list[str]) -> None:
        file_size = path.stat().st_size
        count = 0
        try:
            with tarfile.open(path, "r:") as tar:
                while (info := tar.next()) is not None:
                    if not info.isreg():
                        continue
                    key, ext = base_plus_ext(info.name)
                    if key is None or info.offset_data + info.size > file_size:
                        continue
                    groups.setdefault(key, {})[ext.lower()] = _Member(shard, info.offset_data, info.size)
                    count += 1
        except (tarfile.TarError, OSError) as err:
            problems.append(f"{path}: unreadable after {count} members ({type(err).__name__}: {err})")

    @property
    def sample_ids(self) -> list[int]:
        return self._index[2]

    @property
    def problems(self) -> list[str]:
        return self._index[3]

    def __len__(self) -> int:
        return len(self._index[0])

    def _reader(self, member: _Member) -> Callable[[], bytes]:
        def read() -> bytes:
            with open(self.paths[member.shard], "rb") as f:
                f.seek(member.offset)
                data = f.read(member.size)
            if len(data) != member.size:
                raise ItemError(f"{self.paths[member.shard]}: member truncated at byte {member.offset + len(data)}")
            return data
        return read

    def item(self, index: int) -> SourceItem:
        keys, groups, ids, _ = self._index
        members = {ext: self._reader(m) for ext, m in groups[keys[index]].items()}
        return _assemble(ids[index], keys[index], members)


class DatasetSource:
    """Any map-style dataset whose items are {"image", "caption", "sample_id"} (e.g. the shapes world).

    `value_range` is the range of its images (the shapes world: (-1, 1)); items are mapped to [0, 1].
    Sample ids are `dataset.sample_ids` if it has them, otherwise the indices; each item is checked.
    """

    def __init__(self, dataset: Any, value_range: tuple[float, float] = (-1.0, 1.0)):
        self.dataset = dataset
        self.value_range = value_range
        self.sample_ids = list(getattr(dataset, "sample_ids", range(len(dataset))))
        self.problems: list[str] = []

    def __len__(self) -> int:
        return len(self.sample_ids)

    def item(self, index: int) -> SourceItem:
        expected = self.sample_ids[index]
        try:
            raw = self.dataset[index]
        except Exception as err:
            return SourceItem(expected, "", error=f"sample {expected}: {type(err).__name__}: {err}")
        if int(raw["sample_id"]) != expected:
            raise MiroError(f"dataset item {index} has sample_id {raw['sample_id']}, expected {expected}; give the dataset a `sample_ids` list in index order")
        low, high = self.value_range
        image = ((raw["image"].float() - low) / (high - low)).clamp_(0, 1)
        fields = {k: v for k, v in raw.items() if k not in ("image", "caption", "sample_id")}
        return SourceItem(expected, str(raw["caption"]), lambda: image, fields)


def as_source(data: Any) -> Source:
    """A Source as is; a folder or shard pattern by path; any other map-style dataset via DatasetSource."""
    if isinstance(data, (WebDatasetSource, ImageFolderSource, DatasetSource)):
        return data  # (asking a tar source for sample_ids would index every tar)
    if hasattr(data, "item") and hasattr(data, "sample_ids"):
        return data
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if path.is_dir() and not any(path.glob("*.tar")):
            return ImageFolderSource(path)
        return WebDatasetSource(data)
    if hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        return DatasetSource(data)
    raise MiroError(f"cannot read a dataset from {type(data).__name__}; pass an image folder, webdataset shards or a map-style dataset")


def task_items(source: Any, shard: int, count: int, part: int = 0, parts: int = 1) -> Iterator[SourceItem | SourceProblem]:
    """The samples of task `shard` of `count` (part `part` of `parts` of them, one per DataLoader worker).

    Tar shards stream whole tars per task (tar i belongs to task i % count); any other source gives the samples
    whose sample_id % count == shard, in index order.
    """
    src = as_source(source)
    if isinstance(src, WebDatasetSource):
        yield from src.stream(shard, count, part, parts)
        return
    mine = [i for i, sid in enumerate(src.sample_ids) if sid % count == shard]
    for index in mine[part::parts]:
        yield src.item(index)
    if part == 0:
        yield from (SourceProblem(p) for p in src.problems)
