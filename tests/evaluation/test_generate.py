"""Generation: GenEval's layout, per-image seeds (batch size and shards do not matter), resume, refusals."""
from __future__ import annotations

from dataclasses import replace

import pytest

from harness.evaluation.generate import GenerationOptions, Shard, generate_images, image_path
from harness.evaluation.run import world_of
from harness.geneval.layout import read_layout
from harness.prompts import load_prompts
from miro.config import SampleConfig
from miro.errors import MiroError

from .helpers import TRAINED

OPTIONS = GenerationOptions(SampleConfig(steps=2, guidance_scale=2.0, positive_targets=dict.fromkeys(TRAINED, 1.0),
                                         negative_targets=dict.fromkeys(TRAINED, 0.0)), samples_per_prompt=3, batch_size=8)


@pytest.fixture(scope="module")
def prompts(generator):
    return load_prompts("shapes", world=world_of(generator.config))[:4]


def files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def test_images_land_in_genevals_layout(generator, prompts, tmp_path):
    report = generate_images(generator, prompts, tmp_path, OPTIONS, progress=False)
    assert (report.generated, report.skipped) == (12, 0) and report.images_per_second > 0
    layout = read_layout(tmp_path)  # the reference tools' reading rules
    assert [f.index for f in layout] == [0, 1, 2, 3]
    assert [f.spec.prompt for f in layout] == [p.text for p in prompts]
    assert all(len(f.images) == 3 for f in layout)


def test_an_image_depends_on_its_seed_only_not_on_batch_size_or_shard(generator, prompts, tmp_path):
    generate_images(generator, prompts, tmp_path / "whole", OPTIONS, progress=False)
    for index in range(3):
        generate_images(generator, prompts, tmp_path / "sharded", replace(OPTIONS, batch_size=5), Shard(index, 3), progress=False)
    whole, sharded = files(tmp_path / "whole"), files(tmp_path / "sharded")
    assert whole.keys() == sharded.keys() and len(whole) == 12
    assert whole == sharded
    assert len(set(whole.values())) == 12  # and every image differs


def test_a_shard_makes_only_its_share(generator, prompts, tmp_path):
    report = generate_images(generator, prompts, tmp_path, OPTIONS, Shard(1, 4), progress=False)
    assert report.generated == 3 and len(files(tmp_path)) == 3


def test_rerunning_makes_only_the_missing_images(generator, prompts, tmp_path):
    generate_images(generator, prompts, tmp_path, OPTIONS, progress=False)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.png")}
    image_path(tmp_path, 2, 1).unlink()
    (image_path(tmp_path, 2, 1).parent / ".0001.png.tmp-1").write_bytes(b"torn")  # a run killed mid-write
    report = generate_images(generator, prompts, tmp_path, OPTIONS, progress=False)
    assert (report.generated, report.skipped) == (1, 11)
    assert all(p.stat().st_mtime_ns == t for p, t in before.items() if p != image_path(tmp_path, 2, 1))
    more = generate_images(generator, prompts, tmp_path, replace(OPTIONS, samples_per_prompt=4), progress=False)
    assert (more.generated, more.skipped) == (4, 12)  # more samples per prompt reuse the ones there


def test_other_settings_in_the_same_folder_are_refused(generator, prompts, tmp_path):
    generate_images(generator, prompts[:1], tmp_path, OPTIONS, progress=False)
    other = replace(OPTIONS, sample=replace(OPTIONS.sample, guidance_scale=3.0))
    with pytest.raises(MiroError, match="other settings \\(changed: sample.guidance_scale\\); use another --out"):
        generate_images(generator, prompts[:1], tmp_path, other, progress=False)
    with pytest.raises(MiroError, match="holds another prompt"):
        generate_images(generator, [replace(prompts[1], index=0)], tmp_path, OPTIONS, progress=False)


def test_bad_targets_are_refused_before_any_image(generator, prompts, tmp_path):
    bad = replace(OPTIONS, sample=replace(OPTIONS.sample, positive_targets={"shapes_qualty": 1.0}))
    with pytest.raises(MiroError, match='did you mean "shapes_quality"'):
        generate_images(generator, prompts, tmp_path, bad, progress=False)
    assert not list(tmp_path.rglob("*.png"))


def test_shard_and_option_checks():
    assert Shard.parse("2/4") == Shard(2, 4)
    for text in ("4/4", "a/b", "1"):
        with pytest.raises(MiroError, match="shard"):
            Shard.parse(text)
    with pytest.raises(MiroError, match="samples per prompt"):
        GenerationOptions(samples_per_prompt=0)


def test_no_targets_guides_all_one_against_all_zero_and_a_partial_target_keeps_the_rest(generator, prompts, tmp_path):
    explicit, default = tmp_path / "explicit", tmp_path / "default"
    generate_images(generator, prompts[:1], explicit, OPTIONS, progress=False)
    generate_images(generator, prompts[:1], default, replace(OPTIONS, sample=SampleConfig(steps=2, guidance_scale=2.0)), progress=False)
    assert files(explicit) == files(default)  # one place builds the branches: missing = 1 positive, 0 negative
    first = TRAINED[0]
    partial = replace(OPTIONS, sample=SampleConfig(steps=2, guidance_scale=2.0, positive_targets={first: 0.0}))
    spelled = replace(OPTIONS, sample=replace(OPTIONS.sample, positive_targets={**dict.fromkeys(TRAINED, 1.0), first: 0.0}))
    generate_images(generator, prompts[:1], tmp_path / "partial", partial, progress=False)
    generate_images(generator, prompts[:1], tmp_path / "spelled", spelled, progress=False)
    assert files(tmp_path / "partial") == files(tmp_path / "spelled") != files(explicit)
