"""A BERT token classifier for inference in plain torch: the forward of transformers'
``BertForTokenClassification`` (eval mode, SDPA attention) without importing transformers.

Importing transformers takes about twice as long as importing torch, and a ``planie extract`` run
needs nothing from it but this forward: with it the cold start (process start → first record) is
torch's import, one read of the weights and the first batch. The modules, parameter names and the
order of operations are those of transformers 5 (``models/bert/modeling_bert.py``), so the outputs are
the same bit for bit in fp32, under bf16 autocast and with dynamic int8 (tests/test_bert_torch.py
compares them). Only what a planie NER model uses is built: an encoder-only BERT with absolute
positions and the exact GELU; anything else (``supports`` says no) is loaded with transformers.

The weights (fp16 in the shipped model) are read once, with ``safetensors``; the CRF's ``crf.*``
tensors come from the same read (``load_bert_token_classifier`` returns them), not a second one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu}


def supports(config: dict[str, Any]) -> bool:
    """Whether this module reproduces the model of ``config`` (a config.json as a dict)."""
    return (
        config.get("model_type") == "bert"
        and config.get("architectures", ["BertForTokenClassification"]) == ["BertForTokenClassification"]
        and config.get("position_embedding_type", "absolute") == "absolute"
        and config.get("hidden_act", "gelu") in ACTIVATIONS
        and not config.get("is_decoder", False)
        and not config.get("add_cross_attention", False)
        and not config.get("chunk_size_feed_forward", 0)
        and config["hidden_size"] % config["num_attention_heads"] == 0
    )


@dataclass
class TokenClassifierOutput:
    logits: torch.Tensor


class Linear(nn.Linear):
    """An ``nn.Linear`` built without random initialisation: every weight is read from the model file right
    after, and ``load_bert_token_classifier`` then makes it a plain ``nn.Linear`` (int8 quantisation maps
    modules by exact type)."""

    def reset_parameters(self) -> None:
        pass


class Embedding(nn.Embedding):
    """An ``nn.Embedding`` built without random initialisation, as ``Linear``."""

    def reset_parameters(self) -> None:
        pass


class Embeddings(nn.Module):
    def __init__(self, c: dict[str, Any]) -> None:
        super().__init__()
        self.word_embeddings = Embedding(c["vocab_size"], c["hidden_size"], padding_idx=c.get("pad_token_id"))
        self.position_embeddings = Embedding(c["max_position_embeddings"], c["hidden_size"])
        self.token_type_embeddings = Embedding(c.get("type_vocab_size", 2), c["hidden_size"])
        self.LayerNorm = nn.LayerNorm(c["hidden_size"], eps=c.get("layer_norm_eps", 1e-12))
        self.register_buffer("position_ids", torch.arange(c["max_position_embeddings"]).expand((1, -1)), False)
        self.register_buffer("token_type_ids", torch.zeros(self.position_ids.size(), dtype=torch.long), False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        batch_size, seq_length = input_ids.shape
        position_ids = self.position_ids[:, :seq_length]
        token_type_ids = torch.gather(self.token_type_ids.expand(1, -1), dim=1, index=position_ids)
        embeddings = self.word_embeddings(input_ids) + self.token_type_embeddings(
            token_type_ids.expand(batch_size, seq_length)
        )
        embeddings = embeddings + self.position_embeddings(position_ids)
        return self.LayerNorm(embeddings)


class SelfAttention(nn.Module):
    def __init__(self, c: dict[str, Any]) -> None:
        super().__init__()
        self.head_size = c["hidden_size"] // c["num_attention_heads"]
        self.scaling = self.head_size**-0.5
        self.query = Linear(c["hidden_size"], c["hidden_size"])
        self.key = Linear(c["hidden_size"], c["hidden_size"])
        self.value = Linear(c["hidden_size"], c["hidden_size"])

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        input_shape = hidden_states.shape[:-1]
        shape = (*input_shape, -1, self.head_size)
        query = self.query(hidden_states).view(*shape).transpose(1, 2)
        key = self.key(hidden_states).view(*shape).transpose(1, 2)
        value = self.value(hidden_states).view(*shape).transpose(1, 2)
        out = F.scaled_dot_product_attention(
            query, key, value, attn_mask=mask, dropout_p=0.0, scale=self.scaling, is_causal=False
        )
        out = out.reshape(out.shape[0], -1, query.shape[2], value.shape[-1]).transpose(1, 2).contiguous()
        return out.reshape(*input_shape, -1).contiguous()


class DenseNorm(nn.Module):
    """BertSelfOutput / BertOutput: dense, residual, LayerNorm."""

    def __init__(self, c: dict[str, Any], width: int) -> None:
        super().__init__()
        self.dense = Linear(width, c["hidden_size"])
        self.LayerNorm = nn.LayerNorm(c["hidden_size"], eps=c.get("layer_norm_eps", 1e-12))

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(hidden_states) + input_tensor)


class Attention(nn.Module):
    def __init__(self, c: dict[str, Any]) -> None:
        super().__init__()
        self.self = SelfAttention(c)
        self.output = DenseNorm(c, c["hidden_size"])

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.output(self.self(hidden_states, mask), hidden_states)


class Intermediate(nn.Module):
    def __init__(self, c: dict[str, Any]) -> None:
        super().__init__()
        self.dense = Linear(c["hidden_size"], c["intermediate_size"])
        self.act = ACTIVATIONS[c.get("hidden_act", "gelu")]

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(hidden_states))


class Layer(nn.Module):
    def __init__(self, c: dict[str, Any]) -> None:
        super().__init__()
        self.attention = Attention(c)
        self.intermediate = Intermediate(c)
        self.output = DenseNorm(c, c["intermediate_size"])

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        attention_output = self.attention(hidden_states, mask)
        return self.output(self.intermediate(attention_output), attention_output)


class Encoder(nn.Module):
    def __init__(self, c: dict[str, Any]) -> None:
        super().__init__()
        self.layer = nn.ModuleList([Layer(c) for _ in range(c["num_hidden_layers"])])


class Bert(nn.Module):
    def __init__(self, c: dict[str, Any]) -> None:
        super().__init__()
        self.embeddings = Embeddings(c)
        self.encoder = Encoder(c)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        hidden_states = self.embeddings(input_ids)
        mask = None
        if attention_mask is not None and not bool(attention_mask.all()):  # as transformers: no mask without padding
            b, n = attention_mask.shape
            mask = attention_mask.bool()[:, None, None, :].expand(b, 1, n, n).contiguous()
        for layer in self.encoder.layer:
            hidden_states = layer(hidden_states, mask)
        return hidden_states


class BertTokenClassifier(nn.Module):
    """``BertForTokenClassification`` for inference: ``model(input_ids=, attention_mask=).logits``."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = config
        self.bert = Bert(config)
        self.classifier = Linear(config["hidden_size"], len(config["id2label"]))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> TokenClassifierOutput:
        return TokenClassifierOutput(self.classifier(self.bert(input_ids, attention_mask)))


def load_bert_token_classifier(model_dir: Path) -> tuple[BertTokenClassifier, dict[str, Any]] | None:
    """The model in ``model_dir`` (fp32, eval mode) and its ``crf.*`` tensors (numpy; empty for a softmax
    model), the weights read once; None if this module does not reproduce it (the caller then loads it with
    transformers): another architecture or options, several weight files, or weights that do not match
    the modules exactly."""
    from safetensors.torch import load_file

    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    files = sorted(model_dir.glob("*.safetensors"))
    if not supports(config) or len(files) != 1:
        return None
    tensors = load_file(str(files[0]))
    crf = {k: tensors.pop(k).float().numpy() for k in [k for k in tensors if k.startswith("crf.")]}
    tensors.pop("bert.embeddings.position_ids", None)  # a buffer some older checkpoints saved
    model = BertTokenClassifier(config)
    if set(tensors) != set(model.state_dict()):  # the buffers are not in the state dict (not persistent)
        return None
    model.load_state_dict({k: v.float() for k, v in tensors.items()})
    for module in model.modules():  # every weight is loaded: from here on plain torch modules
        if type(module) in (Linear, Embedding):
            module.__class__ = module.__class__.__bases__[0]
    return model.eval(), crf
