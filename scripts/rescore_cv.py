"""Re-score the fold models kept by `planie cv --keep-models` with the current decoding steps (and
optional switches), without training: the ablation of post-decoding rules on grouped CV.

    python scripts/rescore_cv.py runs/cv-province --out OUT [--section-rules on|off] [--docs ID...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.evaluation.crossval import rescore_folds
from pipeline.extractors.extract import ModelExtractor


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cv_dir", help="a planie cv output folder with FOLD/model folders")
    ap.add_argument("--out", required=True)
    ap.add_argument("--annotations", default="annotations")
    ap.add_argument(
        "--section-rules",
        choices=("on", "off", "model"),
        default="model",
        help="drop spans in section kinds where the schema has none (model: as the model's planie.json says)",
    )
    ap.add_argument("--traditional", action="store_true", help="also score traditional-character twins (OpenCC s2t)")
    ap.add_argument("--docs", nargs="*", default=[], help="score only these test documents (doc ids)")
    args = ap.parse_args()
    switch = {"on": True, "off": False, "model": None}[args.section_rules]

    def extractor(model_dir: Path) -> ModelExtractor:
        return ModelExtractor(model_dir, section_rules=switch) if switch is not None else ModelExtractor(model_dir)

    title = f"NER cross-validation re-scored from {args.cv_dir} (section rules: {args.section_rules})"
    if args.docs:
        title += f", documents {', '.join(args.docs)}"
    summary = rescore_folds(
        Path(args.cv_dir), Path(args.out), args.annotations, extractor, title, args.traditional, args.docs
    )
    micro = summary["pooled"]["model"]["entities"]["micro"]
    print(f"{args.out}: pooled entity micro P {micro['precision']:.3f} R {micro['recall']:.3f} F1 {micro['f1']:.3f}")


if __name__ == "__main__":
    main()
