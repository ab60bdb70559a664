"""Peer: HanLP 2.1.5 TransformerNamedEntityRecognizer on the project's local encoder.

Characters are HanLP's tokens (whitespace replaced by a placeholder of the same length), BIO tags, the
encoder a copy of --encoder whose tokenizer does not prepend the word marker (see common.char_encoder_copy:
without it every character gets the same first piece and F1 sticks near 0.5). HanLP keeps the weights of
the best epoch on a dev set: a seeded --dev-fraction of the fold's training segments (never test
documents). Budget: --epochs, early stop after --patience epochs without a better dev F1, and --max-minutes
of training per fold (stops between two batches and keeps the best epoch saved so far).
Runs in .peers/hanlp (scripts/peers/install.sh hanlp: torch 2.13.0 CPU, hanlp 2.1.5, transformers<4.50).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    Peer,
    Segment,
    Span,
    base_parser,
    bio_tags,
    char_encoder_copy,
    holdout,
    run_folds,
    set_threads,
    visible,
)

REPO = Path(__file__).resolve().parents[2]


class BudgetSpent(Exception):
    """Raised between two training batches once the time budget is used up."""


def write_tsv(segments: list[Segment], path: Path) -> None:
    """HanLP's TSV: one `char<TAB>tag` line per character, a blank line between segments."""
    with path.open("w", encoding="utf-8") as fh:
        for seg in segments:
            for ch, tag in zip(visible(seg.text), bio_tags(seg), strict=True):
                fh.write(f"{ch}\t{tag}\n")
            fh.write("\n")


class _UntilDeadline:
    """A DataLoader stand-in that raises BudgetSpent instead of yielding a batch after the deadline."""

    def __init__(self, loader: Any, deadline: float) -> None:
        self.loader, self.deadline = loader, deadline

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Any:
        for batch in self.loader:
            if time.monotonic() > self.deadline:
                raise BudgetSpent
            yield batch


def recognizer_class(deadline: float) -> type:
    from hanlp.components.ner.transformer_ner import TransformerNamedEntityRecognizer

    class BudgetedRecognizer(TransformerNamedEntityRecognizer):
        def fit_dataloader(self, trn: Any, *args: Any, **kwargs: Any) -> Any:
            return super().fit_dataloader(_UntilDeadline(trn, deadline), *args, **kwargs)

    return BudgetedRecognizer


def fit(segments: list[Segment], workdir: Path, encoder: Path, args: argparse.Namespace) -> bool:
    """Train into workdir/model; True when the time budget cut training short."""
    trn, dev = holdout(segments, args.dev_fraction, args.seed)
    write_tsv(trn, workdir / "train.tsv")
    write_tsv(dev or trn, workdir / "dev.tsv")
    ner = recognizer_class(time.monotonic() + args.max_minutes * 60)()
    save_dir = str(workdir / "model")
    try:
        ner.fit(
            trn_data=str(workdir / "train.tsv"),
            dev_data=str(workdir / "dev.tsv"),
            save_dir=save_dir,
            transformer=str(encoder),
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            transformer_lr=args.transformer_lr,
            delimiter_in_entity="",
            seed=args.seed,
            patience=args.patience,
            eval_trn=False,  # no metrics on training batches (saves decoding time)
        )
    except BudgetSpent:
        if not (workdir / "model" / "model.pt").exists():  # not one epoch finished: keep what there is
            ner.save_weights(save_dir)
        return True
    return False


def make_peer(args: argparse.Namespace) -> Peer:
    settings = {
        "encoder": str(args.encoder),
        "encoder_tokenizer": "prepend_scheme never (one piece per character)",
        "epochs": args.epochs,
        "patience": args.patience,
        "max_minutes": args.max_minutes,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "transformer_lr": args.transformer_lr,
        "dev_fraction": args.dev_fraction,
        "tags": "BIO, one token per character, whitespace as '_'",
    }

    def train(segments: list[Segment], workdir: Path) -> Any:
        import torch
        from hanlp.components.ner.transformer_ner import TransformerNamedEntityRecognizer

        torch.set_num_threads(args.threads)
        encoder = char_encoder_copy(args.encoder, workdir / "encoder")
        settings["cut_by_budget"] = fit(segments, workdir, encoder, args)
        ner = TransformerNamedEntityRecognizer()
        ner.load(str(workdir / "model"), devices=-1)
        return ner

    def predict(ner: Any, texts: list[str]) -> list[list[Span]]:
        out = []
        for i in range(0, len(texts), args.batch_size * 4):
            batch = [list(visible(t)) for t in texts[i : i + args.batch_size * 4]]
            found = ner.predict(batch) if batch else []
            out += [[Span(int(s), int(e), str(lab)) for _, lab, s, e in ents] for ents in found]
        return out

    return Peer("hanlp", train, predict, settings, ("hanlp", "hanlp-common", "transformers", "tokenizers", "torch"))


def main(argv: list[str] | None = None) -> int:
    p = base_parser("hanlp", __doc__.splitlines()[0])
    p.add_argument("--encoder", default=str(REPO / "models/base/e5-small-zh"), help="local encoder folder")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--patience", type=int, default=5, help="epochs without a better dev F1 before stopping")
    p.add_argument("--max-minutes", type=float, default=60.0, help="training time budget per fold")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate of the tagging layer")
    p.add_argument("--transformer-lr", type=float, default=5e-5, help="learning rate of the encoder")
    p.add_argument("--dev-fraction", type=float, default=0.1, help="share of training segments held out as dev")
    args = p.parse_args(argv)
    set_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return run_folds(make_peer(args), args)


if __name__ == "__main__":
    sys.exit(main())
