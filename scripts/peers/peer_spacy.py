"""Peer: spaCy 3.8, a blank `zh` pipeline with the character segmenter and its CNN NER.

The config is spaCy's own `spacy init config -l zh -p ner -o efficiency` (generated at run time by the
installed spaCy and written next to the predictions); only the budget is changed: training stops after
--max-steps updates (or --patience steps without a better dev score), so a fold trains in bounded time on
CPU. spaCy selects `model-best` on a dev set: a seeded --dev-fraction of the fold's training segments
(never test documents). Runs in .peers/spacy (scripts/peers/install.sh spacy).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Peer, Segment, Span, base_parser, holdout, run_folds, set_threads  # noqa: E402


def write_docbin(nlp: Any, segments: list[Segment], path: Path) -> None:
    """Segments with their gold entities as a spaCy DocBin (character spans align exactly: one token a char)."""
    from spacy.tokens import DocBin

    db = DocBin(store_user_data=False)
    for seg in segments:
        doc = nlp.make_doc(seg.text)
        ents = [doc.char_span(s.start, s.end, label=s.label, alignment_mode="strict") for s in seg.spans]
        if any(e is None for e in ents):
            raise ValueError(f"{seg.doc_id}@{seg.start}: a gold span does not align with spaCy's tokens")
        doc.ents = ents
        db.add(doc)
    db.to_disk(path)


def write_config(path: Path, args: argparse.Namespace) -> None:
    from spacy.cli.init_config import init_config

    config = init_config(lang="zh", pipeline=["ner"], optimize="efficiency", gpu=False)
    config["nlp"]["tokenizer"]["segmenter"] = "char"  # the default already; stated so a change upstream shows
    config["system"]["seed"] = args.seed
    config["training"]["max_steps"] = args.max_steps
    config["training"]["max_epochs"] = 0
    config["training"]["eval_frequency"] = args.eval_frequency
    config["training"]["patience"] = args.patience
    config.to_disk(path)


def make_peer(args: argparse.Namespace, out_root: Path) -> Peer:
    settings = {
        "config": "spacy init config -l zh -p ner -o efficiency (CPU), segmenter char",
        "max_steps": args.max_steps,
        "eval_frequency": args.eval_frequency,
        "patience": args.patience,
        "dev_fraction": args.dev_fraction,
        "model": "model-best (best ents_f on the dev segments)",
    }

    def train(segments: list[Segment], workdir: Path) -> Any:
        import spacy
        from spacy.cli.train import train as spacy_train

        nlp = spacy.blank("zh")
        trn, dev = holdout(segments, args.dev_fraction, args.seed)
        write_docbin(nlp, trn, workdir / "train.spacy")
        write_docbin(nlp, dev or trn, workdir / "dev.spacy")
        write_config(workdir / "config.cfg", args)
        overrides = {"paths.train": str(workdir / "train.spacy"), "paths.dev": str(workdir / "dev.spacy")}
        spacy_train(workdir / "config.cfg", workdir / "model", use_gpu=-1, overrides=overrides)
        (out_root / workdir.name).mkdir(parents=True, exist_ok=True)
        (out_root / workdir.name / "config.cfg").write_text((workdir / "config.cfg").read_text(), encoding="utf-8")
        best = workdir / "model" / "model-best"
        return spacy.load(best if best.exists() else workdir / "model" / "model-last")

    def predict(nlp: Any, texts: list[str]) -> list[list[Span]]:
        return [[Span(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in nlp.pipe(texts, batch_size=64)]

    return Peer("spacy", train, predict, settings, ("spacy", "thinc", "numpy"))


def main(argv: list[str] | None = None) -> int:
    p = base_parser("spacy", __doc__.splitlines()[0])
    p.add_argument("--max-steps", type=int, default=3000, help="training updates per fold (the budget)")
    p.add_argument("--eval-frequency", type=int, default=200, help="steps between dev evaluations")
    p.add_argument("--patience", type=int, default=1600, help="stop after this many steps without a better dev F")
    p.add_argument("--dev-fraction", type=float, default=0.1, help="share of training segments held out as dev")
    args = p.parse_args(argv)
    set_threads(args.threads)
    return run_folds(make_peer(args, Path(args.out) / "spacy"), args)


if __name__ == "__main__":
    sys.exit(main())
