import json

from miro.bench import main, median


def test_our_side_of_the_benchmark_times_training_and_sampling(capsys):
    main(["--side", "ours"])  # one measurement process, tiny config on a CPU
    numbers = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert numbers["params_M"] == 0.5  # the reference's TINY=1 network has 0.5M parameters too
    assert numbers["train_samples_per_s_B4"] > 0 and numbers["sample_images_per_s_B2_3steps_cfg"] > 0


def test_repeats_are_summarised_by_their_median_over_shared_keys():
    assert median([{"a": 1.0, "b": 5.0}, {"a": 3.0}, {"a": 2.0, "b": 1.0}]) == {"a": 2.0}
