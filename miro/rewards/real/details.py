"""The fingerprint details every real scorer records: what decides its numbers besides the formula."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from miro.rewards.real.runtime import Runtime


def package_versions(*distributions: str) -> str:
    """'name==version' for each installed distribution, e.g. 'hpsv2==1.2.0 torch==2.14.1'."""
    parts = []
    for name in distributions:
        try:
            parts.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            parts.append(f"{name}==missing")
    return " ".join(parts)


def scorer_details(
    runtime: Runtime, weights_sha256: dict[str, str], preprocessing: str, packages: tuple[str, ...], **extra: str
) -> dict[str, str]:
    """The `ScorerInfo.details` mapping: one `sha256:<what>` entry per weight file or folder, and the rest.

    The device is left out on purpose: CPU and GPU runs of the same weights agree to float tolerance and
    should share a fingerprint; the autocast dtype changes the numbers more and is recorded.
    """
    details = {f"sha256:{what}": digest for what, digest in weights_sha256.items()}
    details.update(
        preprocessing=preprocessing,
        packages=package_versions("torch", *packages),
        autocast_dtype=runtime.dtype_name,
        **extra,
    )
    return details
