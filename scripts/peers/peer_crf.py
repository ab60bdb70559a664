"""Peer: a character-level linear-chain CRF (sklearn-crfsuite 0.5.0).

Features of each character: the characters and the character bigrams in a +-2 window, and digit /
punctuation / whitespace flags of the character and its neighbours; BIO tags; L-BFGS with c1 = c2 = 0.1.
The budget is the number of L-BFGS iterations (--max-iterations, 200 by default; a fold of 12 short
documents trains in well under a minute on one thread). Runs in .peers/crf (scripts/peers/install.sh crf).
"""

from __future__ import annotations

import argparse
import sys
import unicodedata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Peer, Segment, Span, base_parser, bio_tags, run_folds, set_threads, spans_from_bio  # noqa: E402

PAD = ("<s2>", "<s1>")  # beyond the segment start; mirrored for the end


def _char_flags(ch: str) -> str:
    if ch.isdigit():
        return "D"
    if ch.isspace():
        return "S"
    if unicodedata.category(ch)[0] in "PS":
        return "P"
    return "C"


def char_features(padded: list[str], j: int) -> dict[str, Any]:
    """Features of padded[j] (a text padded with two boundary symbols on each side): unigrams and bigrams
    at offsets -2..+2, flags at -1..+1."""
    feats: dict[str, Any] = {"bias": 1.0}
    for k in range(-2, 3):
        feats[f"c[{k}]"] = padded[j + k]
    for k in range(-2, 2):
        feats[f"c[{k}:{k + 1}]"] = padded[j + k] + padded[j + k + 1]
    for k in (-1, 0, 1):
        ch = padded[j + k]
        feats[f"f[{k}]"] = _char_flags(ch) if len(ch) == 1 else "B"
    return feats


def text_features(text: str) -> list[dict[str, Any]]:
    padded = [*PAD, *text, "</s1>", "</s2>"]
    return [char_features(padded, i + 2) for i in range(len(text))]


def make_peer(args: argparse.Namespace) -> Peer:
    settings = {
        "algorithm": "lbfgs",
        "c1": args.c1,
        "c2": args.c2,
        "max_iterations": args.max_iterations,
        "all_possible_transitions": True,
        "features": "chars and bigrams in a +-2 window; digit/punct/space flags at -1..+1; BIO",
    }

    def train(segments: list[Segment], workdir: Path) -> Any:
        import sklearn_crfsuite

        crf = sklearn_crfsuite.CRF(
            algorithm="lbfgs",
            c1=args.c1,
            c2=args.c2,
            max_iterations=args.max_iterations,
            all_possible_transitions=True,
            model_filename=str(workdir / "model.crfsuite"),  # crfsuite's own binary format
        )
        crf.fit([text_features(s.text) for s in segments], [bio_tags(s) for s in segments])
        return crf

    def predict(crf: Any, texts: list[str]) -> list[list[Span]]:
        tags = crf.predict([text_features(t) for t in texts])
        return [spans_from_bio(row) for row in tags]

    return Peer("crf", train, predict, settings, ("sklearn-crfsuite", "python-crfsuite"))


def main(argv: list[str] | None = None) -> int:
    p = base_parser("crf", __doc__.splitlines()[0])
    p.add_argument("--max-iterations", type=int, default=200, help="L-BFGS iterations (the training budget)")
    p.add_argument("--c1", type=float, default=0.1, help="L1 penalty")
    p.add_argument("--c2", type=float, default=0.1, help="L2 penalty")
    args = p.parse_args(argv)
    set_threads(args.threads)
    return run_folds(make_peer(args), args)


if __name__ == "__main__":
    sys.exit(main())
