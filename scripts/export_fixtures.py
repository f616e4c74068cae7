"""Export small real Hugging Face decoders to ONNX, as a user would, and commit them shape-only as importer fixtures.

Needs the optional ``export`` extra (torch, transformers): ``pip install -e '.[export]'``. Models are made from
configs with random weights (nothing is downloaded). Each family is exported at two sizes: ``tiny`` (2 layers of a
small config) and ``full`` (1 layer of the real model's config: the real hidden size, heads, MLP and vocabulary), in
two phases: ``prefill`` (no past) and ``decode`` (past key/values in, present key/values out), and through two
exporters: torch's legacy TorchScript exporter (``legacy``) and the dynamo exporter (``dynamo``). Sequence and past
lengths stay dynamic, as they are in real exports, so one fixture imports at any L and P.

After export the weights are stripped: every parameter initializer keeps its name, dims and element type, not its
data (buffers such as RoPE's ``inv_freq`` keep theirs: they are folded into constant tables on import). Each fixture
comes with ``<name>.json``, the architecture as a :class:`stream_trapti.workloads.config.DecoderConfig`, which the
tests compare the imported graph with.

    python scripts/export_fixtures.py                       # all into tests/fixtures/hf
    python scripts/export_fixtures.py --family gpt2 --family qwen2 --size tiny --attention sdpa --exporter legacy
    python scripts/export_fixtures.py --family gpt2 --family qwen2 --size tiny --attention sdpa --exporter dynamo \
        --phase prefill   # the dynamo exporter fails on SDPA decode (is_causal must be bool, not SymBool)
    python scripts/export_fixtures.py --family llama --size tiny --exporter legacy --out /tmp/x
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import onnx
import torch
import transformers
from transformers import DynamicCache

from stream_trapti.atomic import atomic_write

OPSET = 18
EXPORT_SEQ = 8  # traced lengths; the exported dims are dynamic
EXPORT_PAST = 8

# Small configs keep each family's structure; "full" configs are the real models' (one layer of them is exported).
FAMILIES: dict[str, dict[str, dict]] = {
    "gpt2": {
        "tiny": dict(n_layer=2, n_embd=64, n_head=4, n_inner=256, vocab_size=512, n_positions=256),
        "full": dict(n_layer=1),  # GPT-2 (124M): 768 wide, 12 heads, vocabulary 50 257
    },
    "llama": {
        "tiny": dict(
            num_hidden_layers=2,
            hidden_size=64,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=176,
            vocab_size=512,
            max_position_embeddings=2048,
            rms_norm_eps=1e-6,
        ),
        # TinyLlama-1.1B: 2048 wide, 32 query heads on 4 K/V heads, SwiGLU 5632, vocabulary 32 000.
        "full": dict(
            num_hidden_layers=1,
            hidden_size=2048,
            num_attention_heads=32,
            num_key_value_heads=4,
            intermediate_size=5632,
            vocab_size=32000,
            max_position_embeddings=2048,
            rms_norm_eps=1e-5,
        ),
    },
    "qwen2": {
        "tiny": dict(
            num_hidden_layers=2,
            hidden_size=64,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=176,
            vocab_size=512,
            max_position_embeddings=2048,
            rms_norm_eps=1e-6,
            tie_word_embeddings=False,
        ),
        # Qwen2-0.5B: 896 wide, 14 query heads on 2 K/V heads, q/k/v biases, vocabulary 151 936, tied head.
        "full": dict(
            num_hidden_layers=1,
            hidden_size=896,
            num_attention_heads=14,
            num_key_value_heads=2,
            intermediate_size=4864,
            vocab_size=151936,
            max_position_embeddings=32768,
            rms_norm_eps=1e-6,
            rope_theta=1000000.0,
            tie_word_embeddings=True,
        ),
    },
    "mistral": {
        "tiny": dict(
            num_hidden_layers=2,
            hidden_size=64,
            num_attention_heads=4,
            num_key_value_heads=1,
            intermediate_size=160,
            vocab_size=512,
            max_position_embeddings=2048,
            rms_norm_eps=1e-5,
            sliding_window=None,
        ),
        # Mistral-7B's attention and MLP widths with its 32 000 vocabulary: 4096 wide, 32 heads on 8, SwiGLU 14 336.
        "full": dict(
            num_hidden_layers=1,
            hidden_size=4096,
            num_attention_heads=32,
            num_key_value_heads=8,
            intermediate_size=14336,
            vocab_size=32000,
            max_position_embeddings=32768,
            rms_norm_eps=1e-5,
            rope_theta=1000000.0,
            sliding_window=None,
        ),
    },
}
CLASSES = {
    "gpt2": (transformers.GPT2Config, transformers.GPT2LMHeadModel),
    "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
    "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM),
    "mistral": (transformers.MistralConfig, transformers.MistralForCausalLM),
}


class FlatDecoder(torch.nn.Module):
    """The model with plain tensors in and out, as optimum exports it: ``input_ids``, ``attention_mask``,
    ``position_ids`` and per layer ``past_key_values.{i}.key/value`` in; ``logits`` and ``present.{i}.key/value``
    out. Transformers 5 takes the cache as a ``DynamicCache`` only, which neither exporter flattens."""

    def __init__(self, model: torch.nn.Module, layers: int, past: bool) -> None:
        super().__init__()
        self.model, self.layers, self.past = model, layers, past

    def forward(self, input_ids, attention_mask, position_ids, *past):
        cache = DynamicCache(config=self.model.config)
        for layer in range(self.layers if self.past else 0):
            cache.update(past[2 * layer], past[2 * layer + 1], layer)
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=cache,
            use_cache=True,
        )
        present = []
        for layer in out.past_key_values.layers:
            present += [layer.keys, layer.values]
        return (out.logits, *present)


def decoder_config(family: str, hf) -> dict:
    """The architecture as :class:`stream_trapti.workloads.config.DecoderConfig` keyword arguments."""
    if family == "gpt2":
        hidden = hf.n_embd
        return dict(
            layers=hf.n_layer,
            hidden=hidden,
            heads=hf.n_head,
            kv_heads=hf.n_head,
            head_dim=hidden // hf.n_head,
            intermediate=hf.n_inner or 4 * hidden,
            mlp="gelu",
            norm="layernorm",
            norm_eps=hf.layer_norm_epsilon,
            position="learned",
            max_positions=hf.n_positions,
            vocab=hf.vocab_size,
            biases=["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"],
            tied_lm_head=True,
            fused_qkv=True,
        )
    rope = getattr(hf, "rope_parameters", None) or {}
    return dict(
        layers=hf.num_hidden_layers,
        hidden=hf.hidden_size,
        heads=hf.num_attention_heads,
        kv_heads=hf.num_key_value_heads,
        head_dim=hf.hidden_size // hf.num_attention_heads,
        intermediate=hf.intermediate_size,
        mlp="swiglu",
        norm="rmsnorm",
        norm_eps=hf.rms_norm_eps,
        position="rope",
        rope_theta=float(rope.get("rope_theta", getattr(hf, "rope_theta", 10000.0))),
        max_positions=hf.max_position_embeddings,
        vocab=hf.vocab_size,
        biases=["q_proj", "k_proj", "v_proj"] if family == "qwen2" else [],
        tied_lm_head=hf.tie_word_embeddings,
    )


def export(family: str, size: str, phase: str, exporter: str, out_dir: Path, attention: str = "eager") -> Path:
    """Export one fixture, strip its weights and write it with its config JSON; returns the ONNX path.
    ``attention`` is transformers' attention implementation (``eager``, or ``sdpa``, its default)."""
    config_class, model_class = CLASSES[family]
    hf = config_class(**FAMILIES[family][size], attn_implementation=attention)
    torch.manual_seed(0)
    model = model_class(hf).eval()
    layers = model.config.num_hidden_layers
    kv_heads = getattr(hf, "num_key_value_heads", None) or hf.num_attention_heads
    head_dim = hf.hidden_size // hf.num_attention_heads
    past = phase == "decode"
    seq, past_len = (1, EXPORT_PAST) if past else (EXPORT_SEQ, 0)
    args = [
        torch.zeros(1, seq, dtype=torch.int64),
        torch.ones(1, past_len + seq, dtype=torch.int64),
        torch.arange(past_len, past_len + seq, dtype=torch.int64)[None],
    ]
    past_names = [f"past_key_values.{i}.{kind}" for i in range(layers) for kind in ("key", "value")] if past else []
    args += [torch.randn(1, kv_heads, past_len, head_dim) for _ in past_names]
    input_names = ["input_ids", "attention_mask", "position_ids", *past_names]
    output_names = ["logits", *(f"present.{i}.{kind}" for i in range(layers) for kind in ("key", "value"))]
    name = f"{family}_{size}_{phase}_{exporter}" + ("" if attention == "eager" else f"_{attention}")
    path = out_dir / f"{name}.onnx"
    wrapper = FlatDecoder(model, layers, past)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "legacy":
            dims = {0: "batch", 1: "sequence"}
            dynamic = {"input_ids": dims, "position_ids": dims, "attention_mask": {0: "batch", 1: "total"}}
            dynamic |= {n: {0: "batch", 2: "past"} for n in past_names}
            dynamic |= {n: {0: "batch", 2: "total"} for n in output_names[1:]}
            torch.onnx.export(
                wrapper,
                tuple(args),
                str(path),
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=dynamic,
                opset_version=OPSET,
                dynamo=False,
            )
            onnx_model = onnx.load(str(path))
        else:
            sequence, total = torch.export.Dim.DYNAMIC, torch.export.Dim.DYNAMIC
            # The trailing *past arguments form one tuple in torch.export's view of the signature.
            shapes = ({1: sequence}, {1: total}, {1: sequence})
            if past_names:
                shapes += (tuple({2: torch.export.Dim.DYNAMIC} for _ in past_names),)
            program = torch.onnx.export(
                wrapper,
                tuple(args),
                input_names=input_names,
                output_names=output_names,
                dynamic_shapes=shapes,
                opset_version=OPSET,
                dynamo=True,
                optimize=True,
                verbose=False,
            )
            onnx_model = program.model_proto
    strip_parameters(onnx_model, {n for n, _ in model.named_parameters()})
    atomic_write(path, onnx_model.SerializeToString())
    config = {"name": name, **decoder_config(family, model.config)}
    atomic_write(path.with_suffix(".json"), (json.dumps(config, indent=1) + "\n").encode())
    return path


def strip_parameters(model: onnx.ModelProto, parameters: set[str]) -> None:
    """Drop the data of every float initializer but the small buffers (RoPE ``inv_freq``), keeping dims and type,
    and the provenance the dynamo exporter attaches to every node (stack traces, module paths: most of the file).

    The exporters rename some parameters (the legacy one gives transposed weights ``onnx::MatMul_…`` names), so a
    parameter is told by its name or by its size: any float initializer of two or more dims is a weight."""
    for init in model.graph.initializer:
        floating = init.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16)
        if floating and (init.name in parameters or len(init.dims) >= 2 or init.name.endswith((".weight", ".bias"))):
            stripped = onnx.TensorProto(name=init.name, data_type=init.data_type, dims=init.dims)
            init.CopyFrom(stripped)
    for node in model.graph.node:
        node.doc_string = ""
        del node.metadata_props[:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", choices=sorted(FAMILIES), action="append")
    parser.add_argument("--size", choices=("tiny", "full"), action="append")
    parser.add_argument("--phase", choices=("prefill", "decode"), action="append")
    parser.add_argument("--exporter", choices=("legacy", "dynamo"), action="append")
    parser.add_argument("--attention", choices=("eager", "sdpa"), default="eager", help="attention implementation")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "tests/fixtures/hf")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for family in args.family or sorted(FAMILIES):
        for size in args.size or ("tiny", "full"):
            for phase in args.phase or ("prefill", "decode"):
                for exporter in args.exporter or ("legacy", "dynamo"):
                    path = export(family, size, phase, exporter, args.out, args.attention)
                    print(f"wrote {path} ({path.stat().st_size:,} B)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
