"""`python -m miro example-data OUT`: a small image-caption data set in the formats a real study reads.

Shapes-world scenes (web-like: some blurred, noisy or low in contrast, some captions wrong) written as
img2dataset writes web data: uncompressed webdataset shards (`data-00000.tar`, members `<key>.png` and
`<key>.txt`) or an image folder (`<key>.png` + `<key>.txt`). A real study annotates them with real scorers,
precomputes their latents and text features, and trains on them, exactly as it would on downloaded data.
"""
from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from miro.errors import MiroError
from miro.files import atomic_path

FORMATS = ("webdataset", "folder")


def _png(pixels) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def example_samples(count: int, seed: int = 0, resolution: int = 32) -> list[tuple[str, bytes, str]]:
    """(key, PNG bytes, caption) of `count` shapes-world samples of the default world."""
    from miro.data.shapes import ShapesDataset, ShapesWorldConfig

    world = ShapesDataset(ShapesWorldConfig(resolution=resolution), count, seed)
    return [(f"{i:09d}", _png(s.image), s.caption) for i, s in ((i, world.sample(i)) for i in range(count))]


def write_example_data(out: Path, samples: int = 64, shards: int = 2, fmt: str = "webdataset", seed: int = 0,
                       resolution: int = 32) -> Path:
    """Write the data set to `out` (a whole folder or nothing); a folder that already holds it is kept as it is."""
    if fmt not in FORMATS:
        raise MiroError(f"--format {fmt}: choose one of {', '.join(FORMATS)}")
    if not 1 <= shards <= samples:
        raise MiroError(f"--shards {shards} must lie in [1, --samples = {samples}]: every shard holds at least one sample")
    out = Path(out).expanduser().absolute()
    if out.exists():
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        else:
            print(f"{out} exists; kept as it is (remove it to write the data again)")
            return out
    rows = example_samples(samples, seed, resolution)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        if fmt == "folder":
            for key, png, caption in rows:
                (tmp / f"{key}.png").write_bytes(png)
                (tmp / f"{key}.txt").write_text(caption)
        else:
            import webdataset as wds

            for shard in range(shards):
                with wds.TarWriter(str(tmp / f"data-{shard:05d}.tar")) as sink:
                    for key, png, caption in rows[shard::shards]:
                        sink.write({"__key__": key, "png": png, "txt": caption})
    return out
