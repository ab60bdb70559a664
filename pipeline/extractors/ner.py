"""NER inference: a saved token-classification model (optionally with a CRF) predicting character spans;
BIO-constrained Viterbi decoding; export for shipping."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.alignment import (
    PieceTokenizer,
    decode_spans,
)
from pipeline.core.annotations import Span
from pipeline.core.defaults import DEFAULT_BATCH_SIZE, DEFAULT_PRECISION
from pipeline.core.documents import Segment, paragraphs
from pipeline.core.errors import MissingModelError
from pipeline.extractors.model_files import MODEL_META
from pipeline.extractors.section_rules import drop_by_section
from pipeline.extractors.span_rules import tidy_spans, with_rule_spans


class Decoder:
    """The best label sequence of one paragraph from its emission scores [pieces, labels]: Viterbi
    over the CRF's transition scores (zeros for a softmax model) under the BIO constraint that
    ``I-X`` only follows ``B-X`` or ``I-X``."""

    FORBIDDEN = -1.0e4

    def __init__(self, labels: Sequence[str], crf: dict[str, Any] | None = None) -> None:
        import numpy as np

        n = len(labels)

        def weights(name: str, shape: tuple[int, ...]) -> Any:
            return np.asarray(crf[name], dtype=np.float32) if crf else np.zeros(shape, dtype=np.float32)

        def may_follow(prev: str, cur: str) -> bool:
            return not cur.startswith("I-") or prev in (f"B-{cur[2:]}", cur)

        allowed = np.array([[may_follow(a, b) for b in labels] for a in labels])
        can_start = np.array([not lab.startswith("I-") for lab in labels])
        self.transitions = weights("crf.transitions", (n, n)) + np.where(allowed, 0, self.FORBIDDEN)
        self.start = weights("crf.start_transitions", (n,)) + np.where(can_start, 0, self.FORBIDDEN)
        self.end = weights("crf.end_transitions", (n,))

    def __call__(self, emissions: Any) -> list[int]:
        import numpy as np

        if len(emissions) == 0:
            return []
        score = self.start + emissions[0]
        back = np.zeros(emissions.shape, dtype=np.int64)
        for t in range(1, len(emissions)):
            candidates = score[:, None] + self.transitions  # [previous label, current label]
            back[t] = candidates.argmax(0)
            score = candidates.max(0) + emissions[t]
        path = [int((score + self.end).argmax())]
        for t in range(len(emissions) - 1, 0, -1):
            path.append(int(back[t, path[-1]]))
        return path[::-1]


def attach_crf(model: Any, num_labels: int, weights: dict[str, Any] | None = None) -> None:
    """Give a token-classification model a ``crf`` submodule (saved with it as ``crf.*`` tensors)."""
    import torch
    from torchcrf import CRF

    model.crf = CRF(num_labels, batch_first=True)
    if weights:
        model.crf.load_state_dict({k.removeprefix("crf."): torch.as_tensor(v).float() for k, v in weights.items()})


def crf_weights(model_dir: Path) -> dict[str, Any] | None:
    """The ``crf.*`` tensors saved with a model (numpy arrays), or None for a softmax model."""
    from safetensors import safe_open

    weights = {}
    for f in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(str(f), "np") as tensors:  # reads only the crf.* tensors, not the encoder
            weights.update({k: tensors.get_tensor(k) for k in tensors.keys() if k.startswith("crf.")})
    return weights or None


def load_token_classifier(model_dir: Path) -> Any:
    """A saved token-classification model, with its CRF layer if it was trained with one."""
    from transformers import AutoModelForTokenClassification
    from transformers.utils import logging as hf_logging

    weights = crf_weights(model_dir)
    verbosity = hf_logging.get_verbosity()
    if weights:  # the crf.* tensors are "unexpected" to the plain class: attached below, not lost
        hf_logging.set_verbosity_error()
    try:
        model = AutoModelForTokenClassification.from_pretrained(str(model_dir))
    finally:
        hf_logging.set_verbosity(verbosity)
    if weights:
        attach_crf(model, model.config.num_labels, weights)
    return model


def load_inference_model(model_dir: Path) -> tuple[Any, dict[str, Any] | None]:
    """The token classifier for inference (fp32, eval mode) and its CRF tensors (None for a softmax model).
    A plain BERT is built by ``pipeline.extractors.bert_torch`` (no transformers import, the weights read
    once, the same outputs); anything else by transformers (``load_token_classifier``)."""
    from pipeline.extractors.bert_torch import load_bert_token_classifier

    loaded = load_bert_token_classifier(Path(model_dir))
    if loaded is not None:
        model, crf = loaded
        return model, crf or None
    model = load_token_classifier(Path(model_dir))
    return model, module_weights(model)


def module_weights(model: Any) -> dict[str, Any] | None:
    crf = getattr(model, "crf", None)
    return None if crf is None else {f"crf.{k}": v.detach().float().cpu().numpy() for k, v in crf.state_dict().items()}


@dataclass(frozen=True)
class ParagraphProbs:
    text_index: int
    paragraph: Segment
    pieces: list
    probs: Any  # numpy array [pieces, labels]
    texts_done: int  # the texts before this index are complete with this paragraph


class NerModel:
    """A trained token-classification model that predicts character spans on whole documents."""

    def __init__(
        self,
        model_dir: str | Path,
        device: str = "cpu",
        batch_size: int = DEFAULT_BATCH_SIZE,
        precision: str = DEFAULT_PRECISION,
        section_rules: bool | None = None,
    ) -> None:
        """``section_rules``: drop spans in the section kinds the schema rules out for their label
        (pipeline.extractors.section_rules); None follows the model's planie.json (absent: off)."""
        from pipeline.extractors.precision import check_precision, load_forward, load_tokenizer

        self.model_dir = Path(model_dir)
        meta_path = self.model_dir / MODEL_META
        if not meta_path.exists():
            raise MissingModelError(f"{self.model_dir}: not a planie NER model ({MODEL_META} missing)")
        self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        self.section_rules = bool(self.meta.get("section_rules", False)) if section_rules is None else section_rules
        check_precision(precision)
        self.tok = PieceTokenizer(load_tokenizer(self.model_dir))  # without transformers: no torch import
        self.words = self.tok.words()  # for the span rules: where words start
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None
        self._crf: dict[str, Any] | None = None  # the CRF tensors, read with the torch model's weights
        # the encoder forward for the precision (pipeline.extractors.precision); the torch model is loaded
        # only if the precision needs it (not for a cached ONNX export, which transformers' model builds)
        self.forward = load_forward(
            self.model_dir,
            precision,
            lambda: self.model,
            device=device,
            load_export_model=lambda: load_token_classifier(self.model_dir),
        )
        self.precision = self.forward.precision  # as run: an ONNX precision falls back without onnxruntime
        config = json.loads((self.model_dir / "config.json").read_text(encoding="utf-8"))
        self.id2label = {int(k): v for k, v in config["id2label"].items()}
        crf = self._crf if self._model is not None else crf_weights(self.model_dir)  # no second read
        self.decoder = Decoder([self.id2label[i] for i in range(len(self.id2label))], crf)

    @property
    def model(self) -> Any:
        """The torch token classifier (fp32, eval mode), loaded on first use."""
        if self._model is None:
            model, self._crf = load_inference_model(self.model_dir)
            self._model = model.to(self.device).eval().float()
        return self._model

    @property
    def name(self) -> str:
        return f"{self.model_dir.name}:{self.meta.get('base', '?')}"

    chunk_pieces = 16384  # pieces per streamed chunk of paragraphs (about 2 MB of probabilities)

    def paragraph_probabilities(self, texts: Sequence[str]) -> list[ParagraphProbs]:
        """Label probabilities per piece for every non-empty paragraph of every text. Overlapping
        windows are merged by taking, for each piece, the window in which it lies farthest from an edge."""
        return list(self.iter_paragraph_probabilities(texts))

    def iter_paragraph_probabilities(self, texts: Sequence[str]) -> Iterator[ParagraphProbs]:
        """As paragraph_probabilities, streamed: paragraphs are tokenised and run in chunks of at most
        ``chunk_pieces`` pieces (a longer paragraph is a chunk of its own), so memory is bounded by the
        chunk, not by the length of a document, as long as the caller keeps only what it needs. The first
        chunk also ends with the first text, so that a run's first record does not wait for the next text."""
        from pipeline.core.alignment import windows

        max_pieces = self.meta["max_length"] - 2
        stride = min(self.meta["stride"], max_pieces)
        paras: list[tuple[int, Segment, list]] = []
        jobs: list[tuple[int, int, int]] = []  # (paragraph index in the chunk, window start, window end)
        size = 0
        first_done = False  # the first chunk has run

        def flush(done: int) -> Iterator[ParagraphProbs]:
            """The chunk's paragraphs; the texts before ``done`` are complete after its last one."""
            probs = self._run(jobs, [(ti, pieces) for ti, _, pieces in paras])
            last = len(paras) - 1
            for i, ((ti, para, pieces), p) in enumerate(zip(paras, probs, strict=True)):
                yield ParagraphProbs(ti, para, pieces, p, done if i == last else ti)

        for ti, text in enumerate(texts):
            for para in paragraphs(text):
                pieces = self.tok.pieces(text, para.start, para.end)
                if not pieces:
                    continue
                if paras and (size + len(pieces) > self.chunk_pieces or (ti > 0 and not first_done)):
                    yield from flush(ti)
                    paras, jobs, size, first_done = [], [], 0, True
                jobs += [(len(paras), a, b) for a, b in windows(pieces, max_pieces, stride)]
                paras.append((ti, para, pieces))
                size += len(pieces)
        if paras:
            yield from flush(len(texts))

    def predict(self, texts: Sequence[str], viterbi: bool = True) -> list[list[Span]]:
        """Character spans per text: label sequence per paragraph (BIO-constrained Viterbi, with the
        CRF's transitions if the model has one; ``viterbi=False``: argmax per piece), then tidy_spans,
        the rules' spans for the meta's ``rule_labels``, and the section rules when they are on."""
        return list(self.iter_predict(texts, viterbi))

    def iter_predict(self, texts: Sequence[str], viterbi: bool = True) -> Iterator[list[Span]]:
        """As predict, one text at a time, in order: each text's spans as soon as the chunk holding its last
        paragraph has run (the chunks and batches are those of predict, so are the spans). The first
        document of a run is out after the first chunk, not after the whole batch of documents."""
        import numpy as np

        rule_labels = set(self.meta.get("rule_labels", ()))

        def finish(ti: int, spans: list[Span]) -> list[Span]:
            tidy = tidy_spans(texts[ti], spans, self.words)
            if rule_labels:
                tidy = with_rule_spans(tidy, texts[ti], rule_labels)
            if self.section_rules:
                tidy = drop_by_section(texts[ti], tidy)
            return [Span(f"T{i + 1}", s.start, s.end, s.label, s.text, s.score) for i, s in enumerate(tidy)]

        current, spans = 0, []  # the first text not yet yielded, and its spans so far
        for para in self.iter_paragraph_probabilities(texts):
            while current < para.text_index:  # paragraphs come in text order: the texts before are complete
                yield finish(current, spans)
                current, spans = current + 1, []
            best = self.decoder(np.log(para.probs + 1e-12)) if viterbi else para.probs.argmax(-1)
            labels = [self.id2label[int(i)] for i in best]
            scores = [float(s) for s in para.probs.max(-1)]
            spans.extend(decode_spans(texts[para.text_index], para.pieces, labels, scores))
            while current < para.texts_done:  # complete now: out before the next chunk runs
                yield finish(current, spans)
                current, spans = current + 1, []
        while current < len(texts):
            yield finish(current, spans)
            current, spans = current + 1, []

    def _run(self, jobs: list[tuple[int, int, int]], para_pieces: list[tuple[int, list]]) -> list:
        import numpy as np

        n_labels = len(self.id2label)
        out = [np.zeros((len(p), n_labels), dtype=np.float32) for _, p in para_pieces]
        best_margin = [np.full(len(p), -1) for _, p in para_pieces]
        jobs = sorted(jobs, key=lambda j: j[2] - j[1])
        for i in range(0, len(jobs), self.batch_size):
            batch = jobs[i : i + self.batch_size]
            width = max(b - a for _, a, b in batch) + 2
            ids = np.full((len(batch), width), self.tok.pad_id, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, (pi, a, b) in enumerate(batch):
                pieces = para_pieces[pi][1][a:b]
                seq = [self.tok.cls_id, *(p.token_id for p in pieces), self.tok.sep_id]
                ids[row, : len(seq)] = seq
                mask[row, : len(seq)] = 1
            p = self.forward(ids, mask)  # probabilities [batch, width, labels]
            for row, (pi, a, b) in enumerate(batch):
                idx = np.arange(a, b)
                margin = np.minimum(idx - a, b - 1 - idx)
                take = margin > best_margin[pi][a:b]
                out[pi][a:b][take] = p[row, 1 : 1 + (b - a)][take]
                best_margin[pi][a:b][take] = margin[take]
        return out


def export_model(src: Path, dst: Path, fp16: bool = True) -> Path:
    """Copy a trained model for shipping: weights stored in fp16 (computed in fp32 at load time),
    tokenizer and planie.json alongside. Written to a temporary folder and renamed into place."""
    import shutil
    import tempfile

    from transformers import AutoTokenizer

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        model = load_token_classifier(Path(src))
        if fp16:
            model = model.half()
        model.save_pretrained(str(tmp))
        AutoTokenizer.from_pretrained(str(src)).save_pretrained(str(tmp))
        shutil.copy2(Path(src) / MODEL_META, tmp / MODEL_META)
        tmp.chmod(0o755)
        for f in tmp.iterdir():
            f.chmod(0o644)
        if dst.exists():
            shutil.rmtree(dst)
        tmp.rename(dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dst
