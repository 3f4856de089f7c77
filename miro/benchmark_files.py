"""Where the benchmark files a real study reads are published, pinned to a commit with their sha256, and how one is
fetched verified.

GenEval's prompt metadata and class names (MIT, djghosh13/geneval) and PartiPrompts (Apache-2.0,
google-research/parti) are data the project does not ship: a user names local copies in the weights file,
`python -m miro weights fetch` downloads them, or an evaluation fetches them with --allow-download. Every way
refuses a file whose sha256 differs from the pin, so a moved or edited upstream file cannot silently change a
benchmark.
"""
from __future__ import annotations

import os
import tempfile
import urllib.request
from pathlib import Path

from miro.errors import MiroError
from miro.rewards.real.weights import sha256_file

# The reference repository's files at the commit the published numbers used.
GENEVAL_COMMIT = "af4902f24d3ca90ebbb446dd9891a59e0f82725f"
_RAW = f"https://raw.githubusercontent.com/djghosh13/geneval/{GENEVAL_COMMIT}/prompts"
GENEVAL_FILES = {
    "evaluation_metadata.jsonl": (
        f"{_RAW}/evaluation_metadata.jsonl",
        "5c48e0813e812e3c373fa5c8ed07a8f0a483be30272b4427b0559c8048e67c13",
    ),
    "object_names.txt": (
        f"{_RAW}/object_names.txt",
        "608f6a0e5c8ca1c7a92b818430141fe268c85b7930b50f4160f1d65893b5bacd",
    ),
}


PARTI_COMMIT = "5a657978134374ce28973948331b319adef164bd"
PARTI_URL = f"https://raw.githubusercontent.com/google-research/parti/{PARTI_COMMIT}/PartiPrompts.tsv"
PARTI_SHA256 = "fab29e41bb512a169b56acab4cf2a41dcb675e285df2efcde6640c7dd3c440eb"


def fetch_verified(url: str, dest: str | Path, sha256: str, allow_download: bool = True) -> Path:
    """Download `url` to `dest` unless a file with the right sha256 is already there (and only when
    `allow_download`; otherwise a missing file is a one-line error saying how to get it).

    The bytes go to a temporary file first and replace `dest` only when the checksum matches, so an
    interrupted or tampered download never leaves a file that later runs would trust.
    """
    dest = Path(dest)
    if dest.is_file() and sha256_file(dest) == sha256:
        return dest
    if not allow_download:
        raise MiroError(f"{dest} is not there and downloads are off; on a machine with internet run: wget '{url}' -O {dest.name}, "
                        "then pass the local file (or name it in the weights file), or rerun with --allow-download")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
                out.write(response.read())
        except OSError as err:  # URLError, timeouts, refused connections: this machine is offline
            reason = getattr(err, "reason", err)
            raise MiroError(f"cannot download {url} ({reason}); on a machine with internet run: wget '{url}' -O {dest.name}, "
                            "then pass the local file (or name it in the weights file)") from None
        actual = sha256_file(Path(tmp))
        if actual != sha256:
            raise MiroError(f"{url}: sha256 {actual} does not match the expected {sha256}; "
                            "the file changed upstream: download it by hand and check it, or fix the pin")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest
