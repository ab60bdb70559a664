"""The ``train-rel`` and ``evaluate-rel`` commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.cli.cv import add_cv_options, cv_plan


def cmd_train_rel(args: argparse.Namespace) -> int:
    import logging

    import torch

    from pipeline.training.relation_training import RelConfig, train_relations

    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = RelConfig.load(
        args.config,
        variant=args.variant,
        output_dir=args.output_dir,
        epochs=args.epochs,
        max_steps=args.max_steps,
        num_layers=args.num_layers,
    )
    print(f"model saved to {train_relations(cfg, resume=args.resume)}")
    return 0


def add_relation_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train-rel", help="train a relation linker (typed-marker or one-pass biaffine)")
    p.add_argument("--config", default="configs/relations.yaml", help="run config (default: %(default)s)")
    p.add_argument("--variant", choices=["biaffine", "marker"], help="override: model variant")
    p.add_argument("--output-dir", help="override: run folder")
    p.add_argument("--epochs", type=float, help="override: epochs")
    p.add_argument("--max-steps", type=int, help="override: stop after this many steps (smoke runs)")
    p.add_argument("--num-layers", type=int, help="override: encoder layers kept")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    p.add_argument("--resume", action="store_true", help="resume from the last checkpoint in the run folder")
    p.set_defaults(func=cmd_train_rel)
    add_evaluate_rel_command(sub)


def cmd_evaluate_rel(args: argparse.Namespace) -> int:
    import torch

    from pipeline.core.files import write_atomic
    from pipeline.evaluation.crossval import relation_cv
    from pipeline.evaluation.relation_reports import heldout_report, report_markdown
    from pipeline.extractors.relation_model import RelationModel
    from pipeline.training.ner_training import NerConfig
    from pipeline.training.splits import make_splits

    torch.set_num_threads(args.threads)
    if args.cv:
        from pipeline.training.relation_training import RelConfig

        cfg = RelConfig.load(args.config, variant=args.variant, epochs=args.epochs, num_layers=args.num_layers)
        summary = relation_cv(cfg, Path(args.out), cv_plan(args))
        print((Path(args.out) / "cv.md").read_text(encoding="utf-8"))
        return 0 if summary["folds"] else 1
    splits = make_splits(NerConfig(annotations=args.annotations, splits=args.splits))
    models = {f"{RelationModel(d).variant}": RelationModel(d, inherit=True) for d in args.relations}
    metrics = heldout_report(list(splits.test), models, Path(args.ner) if args.ner else None, args.threads)
    metrics["relation_models"] = {name: str(m.model_dir) for name, m in models.items()}
    out = Path(args.out)
    import sys

    command = "planie evaluate-rel " + " ".join(sys.argv[2:])
    write_atomic(out / "report.md", report_markdown(metrics, command))
    write_atomic(out / "metrics.json", json.dumps(metrics, ensure_ascii=False, indent=2) + "\n")
    print((out / "report.md").read_text(encoding="utf-8"))
    return 0


def add_evaluate_rel_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate-rel", help="score relation linkers (held-out split or cross-validation)")
    p.add_argument("--relations", nargs="*", default=[], help="trained relation model folders (runs/rel-*/model)")
    p.add_argument("--ner", help="NER model for the end-to-end setting (trained on the train split only)")
    p.add_argument("--annotations", default="annotations")
    p.add_argument("--splits", default="configs/splits.yaml")
    p.add_argument("--out", default="scripts/results/relations", help="report.md + metrics.json (or folds.json, cv.md)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--cv",
        "--lodo",
        dest="cv",
        action="store_true",
        help="cross-validation given gold entities: train a model per fold (the folds of planie cv)",
    )
    p.add_argument("--config", default="configs/relations.yaml", help="with --cv: the run config")
    p.add_argument("--variant", choices=["biaffine", "marker"], help="with --cv: override the variant")
    p.add_argument("--epochs", type=float, help="with --cv: override epochs")
    p.add_argument("--num-layers", type=int, help="with --cv: override encoder layers")
    add_cv_options(p, prefix="with --cv: ")
    p.set_defaults(func=cmd_evaluate_rel)
