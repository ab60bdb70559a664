"""Encoder forward per precision: how the NER model's encoder + token head turn a batch of piece ids into
label probabilities. Only this forward changes with the precision; decoding (CRF/Viterbi, span rules) is
the caller's and stays the same.

- ``fp32``: torch, fp32 matmuls.
- ``bf16``: torch, ``torch.autocast("cpu", bfloat16)`` for the matmuls (weights stay fp32).
- ``int8``: torch dynamic quantisation of the encoder's Linear layers (``torch.ao.quantization``,
  int8 weights per output channel, activations quantised per batch); the token head stays fp32.
- ``onnx``: ONNX Runtime (CPU), the encoder + token head exported once with ``torch.onnx.export``.
- ``onnx-int8``: the same graph with its MatMul weights quantised to int8 per channel
  (``onnxruntime.quantization.quantize_dynamic``).

The ONNX files are built once and cached beside the model (``MODEL/onnx/model.onnx``,
``model-int8.onnx``, each with a ``.json`` that records a SHA-256 of the weights and config, the
exporter/runtime versions and the files' sizes and times), rebuilt when stale, written atomically;
a read-only model folder caches under ``$XDG_CACHE_HOME/planie/onnx/`` instead. With a fresh cache,
an ONNX precision neither imports torch nor reads the encoder weights. Without onnxruntime an ONNX
precision falls back to bf16 with one warning line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pipeline.core.defaults import DEFAULT_PRECISION

if TYPE_CHECKING:  # numpy is imported where it runs: the command line reads PRECISIONS without it
    import numpy as np

PRECISIONS = ("fp32", "bf16", "int8", "onnx", "onnx-int8")
ONNX_PRECISIONS = ("onnx", "onnx-int8")
FALLBACK = DEFAULT_PRECISION
EXPORT_FORMAT = 1  # bump when the export or quantisation recipe changes: cached files are then stale
OPSET = 17
INSTALL_HINT = "pip install -e '.[onnx]'"
PRECISION_HELP = (
    "encoder forward: bf16 autocast (torch), fp32, int8 (torch dynamic quantisation), onnx (ONNX Runtime "
    "fp32), onnx-int8 (ONNX Runtime, int8 weights); the onnx ones need the 'onnx' extra and are built once "
    "into MODEL/onnx/"
)

log = logging.getLogger(__name__)


class Forward(Protocol):
    """Label probabilities [batch, width, labels] (float32) from piece ids and the attention mask
    (int64 [batch, width])."""

    precision: str

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray: ...


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")


class TorchForward:
    """fp32, bf16 autocast or dynamic int8 with a torch token-classification model."""

    def __init__(self, model: Any, precision: str, device: str = "cpu") -> None:
        import torch

        self._torch = torch
        self.precision = precision
        self.device = device
        if precision == "int8":
            if device != "cpu":
                raise ValueError("precision 'int8' (dynamic quantisation) runs on the CPU only")
            model = quantize_linear_int8(model)
        self.model = model

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        torch = self._torch
        ids = torch.from_numpy(input_ids).to(self.device)
        mask = torch.from_numpy(attention_mask).to(self.device)
        autocast = torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.precision == "bf16")
        with torch.inference_mode(), autocast:
            logits = self.model(input_ids=ids, attention_mask=mask).logits
        return torch.softmax(logits.float(), -1).cpu().numpy()


def quantize_linear_int8(model: Any) -> Any:
    """The encoder's Linear layers with int8 weights (per output channel), quantised on the fly; the token
    head (``classifier``) and anything else stay fp32. Returns a quantised copy."""
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    names = {
        name: per_channel_dynamic_qconfig
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and not name.startswith("classifier")
    }
    return quantize_dynamic(model, names, dtype=torch.qint8, inplace=False)


def _softmax(logits: np.ndarray) -> np.ndarray:
    import numpy as np

    z = logits - logits.max(-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(-1, keepdims=True)
    return z


class OnnxForward:
    """An ONNX Runtime session on the CPU over an exported encoder + token head."""

    def __init__(self, path: Path, precision: str, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads if threads is not None else _env_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.precision = precision
        self.path = path

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        (logits,) = self.session.run(["logits"], {"input_ids": input_ids, "attention_mask": attention_mask})
        return _softmax(logits.astype("float32", copy=False))


def _env_threads() -> int:
    """OMP_NUM_THREADS if set (as torch reads it), else 0: ONNX Runtime's default (one per physical core)."""
    try:
        return max(0, int(os.environ.get("OMP_NUM_THREADS", "0")))
    except ValueError:
        return 0


def onnxruntime_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def load_forward(
    model_dir: str | Path,
    precision: str,
    load_model: Callable[[], Any],
    device: str = "cpu",
    threads: int | None = None,
    load_export_model: Callable[[], Any] | None = None,
) -> Forward:
    """The forward for ``precision``. ``load_model`` returns the torch token classifier (fp32, eval mode on
    ``device``); it is called only when needed (torch precisions). ``load_export_model`` (default:
    ``load_model``) returns the model an ONNX file is exported from, called only when one is built."""
    check_precision(precision)
    if precision not in ONNX_PRECISIONS:
        return TorchForward(load_model(), precision, device)
    if device != "cpu":
        raise ValueError(f"precision {precision!r} runs on the CPU only (device {device!r})")
    if not onnxruntime_available():
        log.warning(
            "planie: precision %r needs onnxruntime, which is not installed (%s); using %s instead",
            precision,
            INSTALL_HINT,
            FALLBACK,
        )
        return TorchForward(load_model(), FALLBACK, device)
    quantized = precision == "onnx-int8"
    path = onnx_artifact(Path(model_dir), quantized=quantized, load_model=load_export_model or load_model)
    return OnnxForward(path, precision, threads)


# ---------------------------------------------------------------------------------------------------
# The cached ONNX files


def _sources(model_dir: Path) -> list[Path]:
    """The files whose content determines the exported graph: the config and the weights."""
    return [model_dir / "config.json", *sorted(model_dir.glob("*.safetensors"))]


def _stats(files: list[Path]) -> dict[str, list[int]]:
    return {f.name: [f.stat().st_size, f.stat().st_mtime_ns] for f in files}


def weights_sha256(model_dir: Path) -> str:
    digest = hashlib.sha256()
    for f in _sources(model_dir):
        digest.update(f.name.encode() + b"\0")
        with f.open("rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _versions() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, Any] = {"format": EXPORT_FORMAT, "opset": OPSET}
    for pkg in ("torch", "onnxruntime", "onnx"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def _fresh(meta_path: Path, target: Path, model_dir: Path, versions: dict[str, Any]) -> bool:
    """The cached file matches the weights: same sizes and times (no hashing), or else the same SHA-256."""
    if not (meta_path.is_file() and target.is_file()):
        return False
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if meta.get("versions") != versions or meta.get("bytes") != target.stat().st_size:
        return False
    sources = _sources(model_dir)
    if meta.get("sources") == _stats(sources):
        return True
    if meta.get("weights_sha256") != weights_sha256(model_dir):
        return False
    try:  # same content, touched files: remember the new times so that the next load need not hash
        _write_meta(meta_path, {**meta, "sources": _stats(sources)})
    except OSError:
        pass
    return True


def _write_meta(path: Path, meta: dict[str, Any]) -> None:
    from pipeline.core.files import write_atomic

    write_atomic(path, json.dumps(meta, indent=2) + "\n")


def cache_dirs(model_dir: Path) -> list[Path]:
    """Where the ONNX files go: beside the model, else (read-only model folder) the user's cache."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    tag = hashlib.sha256(str(model_dir.resolve()).encode()).hexdigest()[:16]
    return [model_dir / "onnx", base / "planie" / "onnx" / f"{model_dir.name}-{tag}"]


def onnx_artifact(model_dir: Path, quantized: bool, load_model: Callable[[], Any]) -> Path:
    """The cached ONNX file (fp32 or int8) of the model in ``model_dir``, built first if missing or stale."""
    versions = _versions()
    name = "model-int8.onnx" if quantized else "model.onnx"
    for folder in cache_dirs(model_dir):
        if _fresh(folder / f"{name}.json", folder / name, model_dir, versions):
            return folder / name
    errors = []
    for folder in cache_dirs(model_dir):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return _build(model_dir, folder, quantized, load_model, versions)
        except PermissionError as exc:  # a read-only model folder: try the next place
            errors.append(f"{folder}: {exc.strerror}")
    raise PermissionError(f"cannot write the ONNX export of {model_dir} anywhere ({'; '.join(errors)})")


def _build(
    model_dir: Path, folder: Path, quantized: bool, load_model: Callable[[], Any], versions: dict[str, Any]
) -> Path:
    sources = _stats(_sources(model_dir))
    sha = weights_sha256(model_dir)
    fp32 = folder / "model.onnx"
    if not _fresh(folder / "model.onnx.json", fp32, model_dir, versions):
        log.warning("planie: exporting %s to ONNX (once; cached in %s)", model_dir, folder)
        _atomic_file(fp32, lambda tmp: export_onnx(load_model(), tmp))
        _write_meta(folder / "model.onnx.json", _meta(fp32, sha, sources, versions))
    if not quantized:
        return fp32
    target = folder / "model-int8.onnx"
    _atomic_file(target, lambda tmp: quantize_onnx_int8(fp32, tmp))
    _write_meta(folder / "model-int8.onnx.json", _meta(target, sha, sources, versions))
    return target


def _meta(target: Path, sha: str, sources: dict[str, list[int]], versions: dict[str, Any]) -> dict[str, Any]:
    return {"weights_sha256": sha, "sources": sources, "versions": versions, "bytes": target.stat().st_size}


def _atomic_file(target: Path, write: Callable[[Path], None]) -> None:
    """``write`` into a temporary file in the target's folder, then rename it into place."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        tmp.chmod(0o644)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def export_onnx(model: Any, path: Path) -> None:
    """Export the token classifier's encoder + head (not the CRF: decoding stays in numpy) as one ONNX
    graph ``(input_ids, attention_mask) -> logits`` with dynamic batch and sequence axes, fp32."""
    import warnings

    import torch

    class EncoderHead(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits

    ids = torch.full((2, 16), 5, dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 12:] = 0
    axes = {0: "batch", 1: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(
            EncoderHead(model.float().eval()),
            (ids, mask),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "logits": axes},
            opset_version=OPSET,
            dynamo=False,  # measured: the TorchScript exporter's graph ran faster in ONNX Runtime here
        )


def quantize_onnx_int8(src: Path, dst: Path) -> None:
    """int8 weights (per output channel) for every MatMul; activations quantised per batch at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs a generic "consider pre-processing" hint on the root logger
    try:
        quantize_dynamic(
            str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"], per_channel=True
        )
    finally:
        root.setLevel(level)


# ---------------------------------------------------------------------------------------------------
# The tokenizer without transformers (which imports torch: about as long as the rest of a cold start)


class TokenizerFiles:
    """What PieceTokenizer reads from a HF fast tokenizer (``backend_tokenizer`` and the special-token ids),
    from ``tokenizer.json`` and ``tokenizer_config.json`` with the ``tokenizers`` package alone."""

    def __init__(self, model_dir: Path) -> None:
        from tokenizers import Tokenizer

        self.backend_tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        config = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))

        def token_id(key: str) -> int | None:
            token = config.get(key)
            token = token.get("content") if isinstance(token, dict) else token
            return None if token is None else self.backend_tokenizer.token_to_id(token)

        self.unk_token_id = token_id("unk_token")
        self.cls_token_id = token_id("cls_token")
        self.sep_token_id = token_id("sep_token")
        self.bos_token_id = token_id("bos_token")
        self.eos_token_id = token_id("eos_token")
        self.pad_token_id = token_id("pad_token")


def load_tokenizer(model_dir: str | Path) -> Any:
    """The model's tokenizer for PieceTokenizer: TokenizerFiles when the files have what it needs (a fast
    tokenizer with unk, pad and cls/bos, sep/eos tokens), else ``AutoTokenizer.from_pretrained``."""
    model_dir = Path(model_dir)
    if (model_dir / "tokenizer.json").is_file() and (model_dir / "tokenizer_config.json").is_file():
        try:
            tok = TokenizerFiles(model_dir)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            tok = None
        if tok is not None and None not in (
            tok.unk_token_id,
            tok.pad_token_id,
            tok.cls_token_id if tok.cls_token_id is not None else tok.bos_token_id,
            tok.sep_token_id if tok.sep_token_id is not None else tok.eos_token_id,
        ):
            return tok
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))
