"""Real reward models and metrics, each run through its own package's code on weights from a local path.

One module per scorer (hps, image_reward, pickscore, sciscore, aesthetic, clip_score, jina_clip,
vqascore) plus the helpers they share: where weights come from (`sources`), how they are loaded and
checked (`weights`), how a batch becomes the 8-bit images every reference implementation scores
(`images`), the device/autocast settings (`runtime`), the fingerprint details (`details`) and the
released code's pre-scaling (`prescale`). Importing this package imports no heavy dependency; the
registry imports a scorer module only when that scorer is built.
"""
