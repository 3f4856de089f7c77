"""Is the drawn shape the prompted one? GenEval's class check alone, on prompts that name one class.

The shape-agnostic accuracy (harness.geneval.shape_agnostic) asks whether colour, count and position are
right whatever was drawn; this asks the converse. On a prompt that names a single class (single_object,
colors, counting), the image's most confident kept object is read: True when its class is the prompted
one. Prompts naming two classes and images where nothing was kept have no verdict (None), so the rate is
conditional on something being drawn and a network that ignores the class word scores the share of the
prompted classes among what it draws: about 1 / (number of classes) on a balanced prompt set (1/3 in the
shapes world), where GenEval alone cannot say whether a low score comes from shape or from composition.
The class read (or "nothing") is kept per image beside the prompted one, so the report can show which
classes collapse into which and how often nothing is drawn.
"""
from __future__ import annotations

from harness.geneval.metadata import PromptSpec
from miro.detection import Detections

NOTHING = "nothing"  # the read of a one-class prompt's image where no object was kept


def read_class(kept: Detections, spec: PromptSpec) -> str | None:
    """The class of the image's most confident kept object on a prompt naming one class, NOTHING when none
    was kept, None on prompts naming two classes (what the report's confusion table counts)."""
    if len({clause.cls for clause in spec.include}) != 1:
        return None
    found = [(detection.score, cls) for cls, detections in kept.items() for detection in detections]
    return max(found)[1] if found else NOTHING


def judge_shape_read(kept: Detections, spec: PromptSpec) -> bool | None:
    read = read_class(kept, spec)
    return None if read in (None, NOTHING) else read == spec.include[0].cls
