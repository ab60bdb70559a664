"""Record where each gold document comes from (``data.meta``: province, place, title, year, file).

The pool's `SOURCES.tsv` gives it for the pool files; the table below for the seeds and the extra
excerpts. Province-grouped cross-validation reads ``data.meta.province``.

    python scripts/pool_meta.py ../shared/pool/SOURCES.tsv annotations/*.json
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from pipeline.core.files import write_atomic

EARLIER_GOLD = {
    "000_af21887b59a64702": ("河北省", "", "河北省质量发展规划（2012-2020年）", "2012"),
    "001_8f302211cd35763b": ("河北省", "", "河北省贯彻实施质量发展纲要建设质量强省2016年行动计划", "2016"),
    "002_6d78427fa31f8098": ("河北省", "", "河北省深入推进质量兴省和名牌战略实施方案", "2012"),
    "003_23a5a19fe3ee302e": ("河南省", "", "贯彻落实质量发展纲要深入实施质量立省战略2013年行动计划", "2013"),
    "004_b1c33d9a6f6e6fde": ("海南省", "", "海南省质量发展纲要（2013-2020年）", "2013"),
    "anhui_tisheng2018": ("安徽省", "", "质量提升行动", "2018"),
    "gansu2018": ("甘肃省", "", "质量提升行动实施方案", "2018"),
    "gansu2023": ("甘肃省", "", "质量强省", "2023"),
    "liaoyuan2023": ("吉林省", "辽源市", "", "2023"),
    "xianning2012": ("湖北省", "咸宁市", "质量兴市“十二五”规划", "2012"),
    "yinchuan2019": ("宁夏回族自治区", "银川市", "", "2019"),
    "zhejiang2022": ("浙江省", "", "质量强省实施意见", "2022"),
}


def pool_sources(path: Path) -> dict[str, dict[str, str]]:
    out = {}
    with path.open(encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            province, _, place = row["province_or_city"].partition(" ")
            out[Path(row["file"]).stem] = {
                "province": province,
                "place": place,
                "title": row["title_if_known"],
                "year": row["year_if_known"],
                "pool_file": row["file"],
            }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sources", help="the pool's SOURCES.tsv")
    ap.add_argument("exports", nargs="+", help="gold exports to update in place")
    args = ap.parse_args()
    meta = pool_sources(Path(args.sources))
    meta |= {k: dict(zip(("province", "place", "title", "year"), v, strict=True)) for k, v in EARLIER_GOLD.items()}
    for path in map(Path, args.exports):
        tasks = json.loads(path.read_text(encoding="utf-8"))
        for task in tasks:
            doc_id = task["data"]["doc_id"]
            if doc_id not in meta:
                raise SystemExit(f"{path}: doc_id {doc_id!r}: no source record")
            task["data"]["meta"] = meta[doc_id]
        write_atomic(path, json.dumps(tasks, ensure_ascii=False, indent=1) + "\n")
    print(f"updated {len(args.exports)} file(s)")


if __name__ == "__main__":
    main()
