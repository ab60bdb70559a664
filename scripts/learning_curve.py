"""Learning curve: province-grouped CV micro-F1 against the number of training documents per fold.

    planie cv --group province --folds 5 --epochs 10 --train-docs 10 --out runs/cv-lc10
    planie cv --group province --folds 5 --epochs 10 --train-docs 20 --out runs/cv-lc20
    python scripts/learning_curve.py runs/cv-lc10 runs/cv-lc20 runs/cv-province \
        --out scripts/results/cv-province/learning_curve

Each folder is a `planie cv` output on the same folds (folds.json); a folder without ``train_docs`` in
its cv.json trained on all of each fold's training documents. Writes OUT.md, OUT.json and OUT.png.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pipeline.core.files import write_atomic


def curve_point(folder: Path) -> dict[str, Any]:
    summary = json.loads((folder / "cv.json").read_text(encoding="utf-8"))
    folds = json.loads((folder / "folds.json").read_text(encoding="utf-8"))["folds"]
    scored = {f["name"] for f in summary["folds"]}
    sizes = [min(summary.get("train_docs") or len(f["train"]), len(f["train"])) for f in folds if f["name"] in scored]
    model = summary["pooled"]["model"]
    return {
        "folder": str(folder),
        "train_docs_mean": round(sum(sizes) / len(sizes), 1),
        "train_docs": sizes,
        "folds": len(scored),
        "micro_f1": model["entities"]["micro"]["f1"],
        "per_label_f1": {lab: v["f1"] for lab, v in model["entities"].items() if lab != "micro"},
        "relations_f1": model["relations"]["micro"]["f1"],
        "rules_micro_f1": summary["pooled"]["rules"]["entities"]["micro"]["f1"],
    }


def plot(points: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [p["train_docs_mean"] for p in points]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(xs, [p["micro_f1"] for p in points], "o-", label="model, entity micro-F1")
    ax.plot(xs, [p["relations_f1"] for p in points], "s--", label="model, relations end to end")
    ax.axhline(points[-1]["rules_micro_f1"], color="grey", linestyle=":", label="rules baseline, entities")
    ax.set_xlabel("training documents per fold (mean)")
    ax.set_ylabel("pooled strict F1, province-grouped CV")
    ax.set_ylim(0.2, 1.0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(points: list[dict[str, Any]], command: str, png: str) -> str:
    labels = list(points[0]["per_label_f1"])
    head = ["training docs per fold (mean)", "folds", "entity micro-F1", *labels, "relations e2e F1", "run"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for p in points:
        cells = [f"{p['train_docs_mean']:g}", str(p["folds"]), f"{p['micro_f1']:.3f}"]
        cells += [f"{p['per_label_f1'][lab]:.3f}" for lab in labels] + [f"{p['relations_f1']:.3f}", p["folder"]]
        lines.append("| " + " | ".join(cells) + " |")
    return (
        "# Learning curve: province-grouped CV against training documents\n\n"
        "Every point is a full `planie cv --group province` run on the same folds; smaller points train on a\n"
        "seeded sample of each fold's training documents and are scored on the fold's full test documents.\n"
        "Every point trains the same number of epochs, so a smaller sample also gets fewer optimisation steps.\n"
        f"Rules baseline (entities, pooled): {points[-1]['rules_micro_f1']:.3f}.\n\n"
        + "\n".join(lines)
        + f"\n\n![learning curve]({png})\n\nCommand: `{command}`\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="planie cv output folders (same folds)")
    ap.add_argument("--out", required=True, help="path without suffix: writes .md, .json, .png")
    args = ap.parse_args()
    points = sorted((curve_point(Path(r)) for r in args.runs), key=lambda p: p["train_docs_mean"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = f"python scripts/learning_curve.py {' '.join(args.runs)} --out {args.out}"
    write_atomic(out.with_suffix(".md"), markdown(points, command, out.with_suffix(".png").name))
    write_atomic(out.with_suffix(".json"), json.dumps(points, ensure_ascii=False, indent=2) + "\n")
    plot(points, out.with_suffix(".png"))
    print(out.with_suffix(".md"))


if __name__ == "__main__":
    main()
