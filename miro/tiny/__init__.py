"""Tiny stand-ins in the real file formats, so the whole real path can be tried offline in minutes.

`python -m miro weights tiny OUT` writes random-weight models saved exactly as their real counterparts are
published (FLAN-T5, the SDXL VAE, the scorers, GenEval's detector and colour classifier), benchmark files in
their real formats, and a weights file naming them; `python -m miro example-data OUT` writes shapes-world
scenes as webdataset shards or an image folder. Every command then loads them through its real loading code,
as it would load the released weights. The test suite uses the same functions.
"""
