"""The cross-validation options shared by ``planie cv`` and ``planie evaluate-rel --cv``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from pipeline.core.defaults import CV_GROUPS, DEFAULT_K

if TYPE_CHECKING:
    from pipeline.evaluation.crossval import CvPlan


def add_cv_options(p: argparse.ArgumentParser, prefix: str = "") -> None:
    p.add_argument(
        "--group",
        choices=CV_GROUPS,
        default="doc",
        help=f"{prefix}documents of a group stay in one fold: each document alone (default; with the default "
        "--folds this is leave-one-document-out, as before) or the gold's data.meta.province",
    )
    p.add_argument(
        "--folds",
        type=int,
        help=f"{prefix}number of folds K (default: {DEFAULT_K}; with --group doc: one per document)",
    )
    p.add_argument("--seed", type=int, help=f"{prefix}fold assignment seed (default: the run config's seed)")
    p.add_argument(
        "--only", nargs="*", default=[], help=f"{prefix}run only these folds (fold1 ...), e.g. one process each"
    )
    p.add_argument(
        "--train-docs",
        type=int,
        help=f"{prefix}train on a seeded sample of this many of each fold's training documents (a learning "
        "curve point; default: all)",
    )
    p.add_argument(
        "--keep-models",
        action="store_true",
        help=f"{prefix}keep each fold's trained model in OUT/FOLD/model (default: removed after scoring)",
    )


def cv_plan(args: argparse.Namespace) -> CvPlan:
    from pipeline.evaluation.crossval import CvPlan

    return CvPlan(
        group=args.group,
        k=args.folds,
        seed=args.seed,
        only=tuple(args.only or ()),
        keep_models=args.keep_models,
        train_docs=args.train_docs,
    )
