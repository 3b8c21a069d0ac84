"""``python -m train.export RUN OUT``: a trained run as a Hugging Face Llama folder.

The model is a Llama-style decoder (pre-norm RMSNorm, RoPE, SwiGLU, no biases), so the export
is a weight mapping plus one permutation: this project's RoPE rotates the consecutive pairs
(x[2k], x[2k+1]) of each head, Llama's the pairs (x[k], x[k + d/2]) ("rotate half"). Reordering
the rows of each head of W_q and W_k as (0, 2, 4, ..., 1, 3, 5, ...) turns one into the other,
and leaves every attention score unchanged (q and k are permuted alike). The folder holds::

    OUT/model.safetensors        the weights, under transformers' Llama names
    OUT/config.json              a LlamaConfig (model_type "llama")
    OUT/tokenizer.json           the run's tokenizer for `tokenizers` (tokenizer.hf_json)
    OUT/tokenizer_config.json    what AutoTokenizer needs beside it
    OUT/generation_config.json   the end-of-text id

so ``AutoModelForCausalLM.from_pretrained(OUT)`` and ``AutoTokenizer.from_pretrained(OUT)`` give
the project's logits and ids. Options that Llama cannot express (QK-norm, logit soft-capping,
post-norm, no norm, no positions, the ungated FFNs) are refused with the reason.

    python -m train.export runs/a hf/a
    python -m train.export runs/a tok.json --to tokenizers    # the tokenizer alone
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from tritonlm.model import ModelConfig, TransformerLM
from tritonlm.tokenizer import END_OF_TEXT, Tokenizer
from tritonlm.tokenizer.hf_json import save_tokenizer_json
from tritonlm.util.atomic import atomic_path, write_json_atomic
from tritonlm.util.cli import cli_main

from .run_folder import load_model, load_tokenizer


class ExportError(ValueError):
    """A model that the target format cannot express."""


def check_llama_compatible(cfg: ModelConfig) -> None:
    """Raise ``ExportError`` naming every option of ``cfg`` that a Llama model cannot express."""
    problems = []
    if cfg.qk_norm:
        problems.append("QK-norm (model.qk_norm=true): Llama has no norm on queries and keys")
    if cfg.logit_softcap:
        problems.append(f"logit soft-capping (model.logit_softcap={cfg.logit_softcap:g}): Llama's logits are uncapped")
    if cfg.norm != "pre":
        problems.append(f"model.norm={cfg.norm}: Llama is pre-norm")
    if cfg.positions != "rope":
        problems.append(f"model.positions={cfg.positions}: Llama uses RoPE")
    if cfg.ffn != "swiglu":
        problems.append(f"model.ffn={cfg.ffn}: Llama's MLP is the gated SwiGLU")
    if problems:
        raise ExportError("this model cannot be exported as a Llama model: " + "; ".join(problems)
                          + ". Train with these options off to export it")


def rope_half_order(head_dim: int) -> torch.Tensor:
    """The row order that makes interleaved RoPE pairs (2k, 2k+1) into rotate-half pairs (k, k + d/2)."""
    return torch.cat((torch.arange(0, head_dim, 2), torch.arange(1, head_dim, 2)))


def _permute_heads(weight: torch.Tensor, num_heads: int) -> torch.Tensor:
    head_dim = weight.shape[0] // num_heads
    rows = weight.unflatten(0, (num_heads, head_dim))  # (heads, head_dim, d_model)
    return rows[:, rope_half_order(head_dim)].flatten(0, 1).contiguous()


def llama_state_dict(model: TransformerLM) -> dict[str, torch.Tensor]:
    """The model's weights under transformers' Llama names, q and k rows in rotate-half order."""
    cfg = model.config
    check_llama_compatible(cfg)
    sd = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    out = {"model.embed_tokens.weight": sd["token_embeddings.weight"], "model.norm.weight": sd["ln_final.weight"]}
    for i in range(cfg.num_layers):
        ours, theirs = f"layers.{i}.", f"model.layers.{i}."
        out[theirs + "input_layernorm.weight"] = sd[ours + "ln1.weight"]
        out[theirs + "post_attention_layernorm.weight"] = sd[ours + "ln2.weight"]
        out[theirs + "self_attn.q_proj.weight"] = _permute_heads(sd[ours + "attn.q_proj.weight"], cfg.num_heads)
        out[theirs + "self_attn.k_proj.weight"] = _permute_heads(sd[ours + "attn.k_proj.weight"], cfg.num_heads)
        out[theirs + "self_attn.v_proj.weight"] = sd[ours + "attn.v_proj.weight"]
        out[theirs + "self_attn.o_proj.weight"] = sd[ours + "attn.output_proj.weight"]
        out[theirs + "mlp.gate_proj.weight"] = sd[ours + "ffn.w1.weight"]
        out[theirs + "mlp.up_proj.weight"] = sd[ours + "ffn.w3.weight"]
        out[theirs + "mlp.down_proj.weight"] = sd[ours + "ffn.w2.weight"]
    if not cfg.tie_embeddings:
        out["lm_head.weight"] = sd["lm_head.weight"]
    return out


def llama_config(cfg: ModelConfig, eos_id: int | None) -> dict:
    """The ``config.json`` of a LlamaForCausalLM with ``cfg``'s shape."""
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": cfg.vocab_size, "hidden_size": cfg.d_model, "intermediate_size": cfg.d_ff,
        "num_hidden_layers": cfg.num_layers, "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_heads, "head_dim": cfg.head_dim, "hidden_act": "silu",
        "max_position_embeddings": cfg.context_length, "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_theta, "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "attention_bias": False, "attention_dropout": 0.0, "mlp_bias": False, "initializer_range": 0.02,
        "tie_word_embeddings": cfg.tie_embeddings, "use_cache": True, "torch_dtype": "float32",
        "bos_token_id": eos_id, "eos_token_id": eos_id,
    }


def export_hf(run: str | Path, out: str | Path, tokenizer: str | None = None) -> Path:
    """Write the Hugging Face folder of the run (see the module docstring); returns it."""
    try:
        from safetensors.torch import save_file
    except ImportError:
        raise ExportError("exporting weights needs the safetensors package: pip install safetensors") from None
    model = load_model(run, "cpu", "torch")
    check_llama_compatible(model.config)
    tok = _bpe_tokenizer(load_tokenizer(tokenizer, run))
    eos = tok.special_ids.get(END_OF_TEXT)
    with atomic_path(Path(out)) as folder:
        folder.mkdir(parents=True)
        save_file(llama_state_dict(model), str(folder / "model.safetensors"), metadata={"format": "pt"})
        write_json_atomic(folder / "config.json", llama_config(model.config, eos))
        write_json_atomic(folder / "generation_config.json", {"bos_token_id": eos, "eos_token_id": eos})
        save_tokenizer_json(tok, folder / "tokenizer.json")
        write_json_atomic(folder / "tokenizer_config.json", {
            "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": model.config.context_length,
            "bos_token": END_OF_TEXT if eos is not None else None, "eos_token": END_OF_TEXT if eos is not None else None,
            "add_bos_token": False, "add_eos_token": False, "clean_up_tokenization_spaces": False})
    return Path(out)


def _bpe_tokenizer(tokenizer) -> Tokenizer:
    if not isinstance(tokenizer, Tokenizer):
        raise ExportError("this run reads raw bytes (no BPE tokenizer): pass --tokenizer DIR to export a BPE "
                          "tokenizer beside it")
    return tokenizer


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m train.export", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="run folder (or checkpoint); with --to tokenizers also a tokenizer folder")
    parser.add_argument("out", help="output folder (hf) or file (tokenizers)")
    parser.add_argument("--to", choices=("hf", "tokenizers"), default="hf",
                        help="hf: a transformers Llama folder; tokenizers: the tokenizer alone as tokenizer.json")
    parser.add_argument("--tokenizer", default=None, help="tokenizer folder (default: the one the run recorded)")
    return parser


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    if out.exists():
        raise ExportError(f"{out} already exists; remove it or choose another output")
    if args.to == "tokenizers":
        source = Path(args.source)
        tok = _bpe_tokenizer(load_tokenizer(args.tokenizer or (source if (source / "vocab.json").is_file() else None),
                                            source))
        save_tokenizer_json(tok, out)
        print(f"wrote {out}: load it with tokenizers.Tokenizer.from_file({str(out)!r})")
        return 0
    export_hf(args.source, out, args.tokenizer)
    print(f"wrote {out}: load it with transformers.AutoModelForCausalLM.from_pretrained({str(out)!r}) "
          f"and AutoTokenizer.from_pretrained({str(out)!r})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
