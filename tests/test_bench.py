import json

from miro.bench import main, median


def test_our_side_of_the_benchmark_times_training_and_sampling(capsys):
    main(["--side", "ours"])  # one measurement process, tiny config on a CPU
    numbers = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert numbers["params_M"] == 0.5  # the reference's TINY=1 network has 0.5M parameters too
    assert numbers["train_samples_per_s_B4"] > 0 and numbers["sample_images_per_s_B2_3steps_cfg"] > 0


def test_repeats_are_summarised_by_their_median_over_shared_keys():
    assert median([{"a": 1.0, "b": 5.0}, {"a": 3.0}, {"a": 2.0, "b": 1.0}]) == {"a": 2.0}


def test_the_data_benchmark_prints_every_named_figure(tmp_path, capsys):
    main(["data", "--samples", "2000", "--reads", "100", "--steps", "3", "--warmup", "1", "--dir", str(tmp_path)])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("bytes_per_sample", "read_samples_per_s", "reference_read_samples_per_s", "read_ratio", "bytes_read_per_sample"):
        assert report[key] > 0, key
    assert report["open_s_12m"] >= 0 and report["open_mb_12m"] >= 0  # a fit through two sizes, floored at 0
    assert set(report["data_wait_fraction"]) == {"0", "1", "2"} and all(0 <= v <= 1 for v in report["data_wait_fraction"].values())
    assert report["bytes_read_per_sample"] == report["record_bytes_per_sample"] < report["bytes_per_sample"] < 150_000
    assert not any(tmp_path.iterdir())  # the stores are deleted unless --keep


def test_training_from_a_store_through_the_loader_runs_on_a_cpu(tmp_path, capsys):
    main(["feed", "--dir", str(tmp_path / "feed")])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["steps"] == 6 and report["samples_per_s"] > 0 and 0 <= report["data_wait_fraction"] <= 1
