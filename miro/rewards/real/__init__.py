"""Real reward models and metrics, each run through its own package's code on weights from a local path.

One module per scorer, each with a `build(**options)` factory named in `miro.rewards.real_entries`:
hps (hpsv2), image_reward, pickscore, sciscore, aesthetic, clip_score, jina_clip, vqascore; pickscore,
sciscore, clip_score and jina_clip share `hf_clip`. Package traps are handled in `hpsv2_compat` and
`image_reward_compat`. Shared helpers: where weights come from (`sources`), how they are loaded and
checked (`weights`), how a batch becomes the 8-bit images every reference implementation scores
(`images`), device and autocast dtype (`runtime`), fingerprint details (`details`) and the released
code's pre-scaling (`prescale`). Importing this package imports nothing heavy.
"""
