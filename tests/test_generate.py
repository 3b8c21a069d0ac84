"""KV-cached decoding equals full recomputation; top-p keeps the right nucleus; the CLI loads a
checkpoint written by train.save_checkpoint."""

from __future__ import annotations

import io

import pytest
import torch

from tritonlm.model import TransformerLM, presets
from tritonlm.train.checkpoint import save_checkpoint
from tritonlm.tokenizer import ByteTokenizer
from tritonlm.train.generate import (StreamingText, generate, generate_samples, main, next_token_distribution,
                                     sample_next, top_k_filter, top_p_filter)
from tritonlm.train.run_folder import find_tokenizer_dir, load_model


@pytest.fixture(scope="module")
def model() -> TransformerLM:
    torch.manual_seed(0)
    return TransformerLM.from_config(presets.micro(vocab_size=61, context_length=12)).eval()


def full_recompute_greedy(model, prompt, max_new_tokens, eos_id=None):
    """The obvious decoder: a full forward over the last context_length tokens for every step."""
    tokens, ctx = list(prompt), model.config.context_length
    new = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            token = int(model(torch.tensor([tokens[-ctx:]]))[0, -1].argmax())
            if token == eos_id:
                break
            tokens.append(token)
            new.append(token)
    return new


@pytest.mark.parametrize("prompt_len", [1, 5, 12, 20])  # 12 and 20: the window slides at once
def test_cached_greedy_decoding_equals_full_recomputation_across_the_context_limit(model, prompt_len):
    prompt = torch.randint(0, 61, (prompt_len,), generator=torch.Generator().manual_seed(prompt_len)).tolist()
    cached = generate(model, prompt, max_new_tokens=25, temperature=0)
    assert cached == full_recompute_greedy(model, prompt, 25)
    assert len(cached) == 25


@pytest.mark.parametrize("overrides", [{}, {"positions": "none"}, {"norm": "post", "qk_norm": True}])
def test_incremental_logits_equal_full_forward(overrides):
    model = TransformerLM.from_config(presets.micro(**overrides))
    ids = torch.randint(0, 97, (3, 16), generator=torch.Generator().manual_seed(1))
    full = model(ids)
    cache = model.new_kv_cache(batch_size=3)
    pieces = [model(ids[:, a:b], kv_cache=cache) for a, b in ((0, 7), (7, 8), (8, 9), (9, 16))]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=2e-5, rtol=1e-5)
    assert cache.length == 16
    with pytest.raises(ValueError, match="exceeds context_length"):
        model(ids[:, :1], kv_cache=cache)


def test_generation_stops_at_eos_and_respects_max_new_tokens(model):
    greedy = generate(model, [3, 1, 4], max_new_tokens=10, temperature=0)
    first_new = next(i for i, t in enumerate(greedy) if i >= 3 and t not in greedy[:i])  # unseen before
    eos = greedy[first_new]
    assert generate(model, [3, 1, 4], 10, temperature=0, eos_id=eos) == greedy[:first_new]
    assert generate(model, [3, 1, 4], 0, temperature=0) == []
    assert len(generate(model, [3], 7, temperature=1.0, generator=torch.Generator().manual_seed(0))) == 7


def test_sampling_is_reproducible_with_a_seeded_generator(model):
    draw = lambda seed: generate(model, [5], 20, temperature=1.5, top_p=0.9,  # noqa: E731
                                 generator=torch.Generator().manual_seed(seed))
    assert draw(3) == draw(3)
    assert draw(3) != draw(4)


@pytest.mark.parametrize("top_p, kept", [(0.5, {2}), (0.7, {2, 0}), (0.8, {2, 0}), (0.81, {2, 0, 3}),
                                         (0.99, {2, 0, 3, 1}), (1.0, {2, 0, 3, 1})])
def test_top_p_keeps_the_smallest_set_reaching_the_mass(top_p, kept):
    probs = torch.tensor([0.3, 0.05, 0.5, 0.15])
    filtered = top_p_filter(probs, top_p)
    assert set(filtered.nonzero().flatten().tolist()) == kept
    expected = torch.where(filtered > 0, probs, 0.0)
    torch.testing.assert_close(filtered, expected / expected.sum())


def test_sampled_frequencies_follow_the_tempered_nucleus():
    logits = torch.tensor([2.0, 0.5, -1.0, 1.0, 0.0])
    probs = next_token_distribution(logits, temperature=0.7, top_p=0.9)
    reference = torch.softmax(logits.double() / 0.7, -1)
    order = reference.argsort(descending=True)
    keep = (reference[order].cumsum(0) - reference[order]) < 0.9
    nucleus = torch.zeros_like(reference)
    nucleus[order[keep]] = reference[order[keep]]
    torch.testing.assert_close(probs.double(), nucleus / nucleus.sum(), atol=1e-6, rtol=1e-5)
    n = 40_000
    draws = sample_next(logits.expand(n, -1), 0.7, 0.9, torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=5).double() / n
    assert torch.all((freq - nucleus / nucleus.sum()).abs() < 0.01)  # ~4 standard errors
    assert sample_next(logits, temperature=0).item() == 0  # greedy


def test_invalid_sampling_arguments_are_clear_errors(model):
    with pytest.raises(ValueError, match="top_p must be in"):
        top_p_filter(torch.ones(3) / 3, 0.0)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        next_token_distribution(torch.zeros(3), -1.0, 1.0)
    with pytest.raises(ValueError, match="prompt is empty"):
        generate(model, [], 5)


def test_cli_loads_a_run_folder_checkpoint_and_prints_samples(tmp_path, capsys):
    torch.manual_seed(0)
    trained = TransformerLM.from_config(presets.micro(vocab_size=256, context_length=16, kernels="torch"))
    save_checkpoint(trained, None, 7, tmp_path / "run" / "checkpoint.pt")
    loaded = load_model(tmp_path / "run")
    assert loaded.config.kernels == "auto" and loaded.config.vocab_size == 256
    ids = torch.randint(0, 256, (1, 16))
    torch.testing.assert_close(loaded(ids), trained(ids))

    argv = [str(tmp_path / "run"), "--prompt", "Hi", "--tokenizer", "bytes", "--max-new-tokens", "30",
            "--temperature", "0"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    expected = bytes(generate(trained, list(b"Hi"), 30, temperature=0)).decode("utf-8", errors="replace")
    assert out.splitlines()[0].startswith("--- sample 1 (30 new tokens")
    assert out.split("\n", 1)[1].rstrip("\n") == "Hi" + expected


def test_cli_errors_name_the_fix(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    save_checkpoint(TransformerLM.from_config(presets.micro()), None, 1, tmp_path / "checkpoint.pt")
    assert main([str(tmp_path)]) == 2
    assert "pass --tokenizer DIR" in capsys.readouterr().err
    assert main([str(tmp_path), "--tokenizer", "bytes", "--prompt", "zz"]) == 2  # 'z' = 122 >= vocab 97
    assert "outside the model's vocabulary" in capsys.readouterr().err


def test_tokenizer_folder_is_found_beside_the_run_or_through_the_leaderboard_report(tmp_path):
    run = tmp_path / "run"
    (run / "tokenizer").mkdir(parents=True)
    assert find_tokenizer_dir(run) is None
    elsewhere = tmp_path / "cache" / "tok"
    elsewhere.mkdir(parents=True)
    (elsewhere / "vocab.json").write_text("{}")
    (run / "report.json").write_text('{"data": {"tokenizer_dir": "%s"}}' % elsewhere)
    assert find_tokenizer_dir(run / "checkpoint.pt") == elsewhere
    (run / "tokenizer" / "vocab.json").write_text("{}")
    assert find_tokenizer_dir(run) == run / "tokenizer"


def test_cli_uses_the_bpe_tokenizer_saved_in_the_run_folder(tmp_path, capsys):
    from tritonlm.tokenizer import Tokenizer, train_bpe

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat.<|endoftext|>the dog sat on the log.<|endoftext|>" * 20)
    vocab, merges = train_bpe(corpus, 290, ["<|endoftext|>"], num_workers=1)
    tok = Tokenizer(vocab, merges, ["<|endoftext|>"])
    run = tmp_path / "run"
    tok.save(run / "tokenizer")
    torch.manual_seed(0)
    trained = TransformerLM.from_config(presets.micro(vocab_size=len(vocab), context_length=16))
    save_checkpoint(trained, None, 3, run / "checkpoint.pt")
    eot = tok.encode("<|endoftext|>")
    assert len(eot) == 1

    assert main([str(run), "--prompt", "the cat", "--max-new-tokens", "12", "--temperature", "0"]) == 0
    out = capsys.readouterr().out.split("\n", 1)[1].rstrip("\n")
    new = generate(trained, tok.encode("the cat"), 12, temperature=0, eos_id=eot[0])
    assert out == "the cat" + tok.decode(new)

    assert main([str(run), "--max-new-tokens", "5", "--temperature", "1.0", "--seed", "1"]) == 0  # empty prompt
    expected = generate(trained, eot, 5, 1.0, 0.95, eot[0], torch.Generator().manual_seed(1))
    assert capsys.readouterr().out.split("\n", 1)[1].rstrip("\n") == tok.decode(expected)

    # streamed: the same text, printed as it is drawn, then the sample's summary line
    assert main([str(run), "--prompt", "the cat", "--max-new-tokens", "12", "--temperature", "0", "--stream"]) == 0
    lines = capsys.readouterr().out.split("\n")
    assert lines[0] == "--- sample 1" and lines[1] == "the cat" + tok.decode(new) and "new tokens" in lines[2]
    # three samples at once, top-k 5: one batch, each printed with its header
    assert main([str(run), "--num-samples", "3", "--top-k", "5", "--max-new-tokens", "6", "--seed", "2"]) == 0
    expected = generate_samples(trained, eot, 3, 6, 0.8, 0.95, eot[0], torch.Generator().manual_seed(2), top_k=5)
    out = capsys.readouterr().out
    assert out.count("--- sample") == 3 and all(tok.decode(e) in out for e in expected)


def test_cached_decoding_with_the_triton_kernels_equals_the_reference():
    """The fused attention kernel serves decoding too (one query against many cached keys)."""
    torch.manual_seed(2)
    triton_model = TransformerLM.from_config(presets.micro(context_length=8, kernels="triton"))
    reference = TransformerLM.from_config(presets.micro(context_length=8, kernels="torch"))
    reference.load_state_dict(triton_model.state_dict())
    prompt = [5, 17, 3]
    with torch.no_grad():
        cache_t, cache_r = triton_model.new_kv_cache(), reference.new_kv_cache()
        steps = (torch.tensor([prompt]), torch.tensor([[9]]), torch.tensor([[40, 2]]))
        for ids in steps:
            torch.testing.assert_close(triton_model(ids, kv_cache=cache_t), reference(ids, kv_cache=cache_r),
                                       atol=1e-4, rtol=1e-4)
    assert generate(triton_model, prompt, 7, temperature=0) == full_recompute_greedy(reference, prompt, 7)


def test_incremental_decoding_under_bf16_autocast_matches_full_forward():
    """Keys computed in bf16 by autocast go into a float32 cache and come back in bf16."""
    model = TransformerLM.from_config(presets.micro())
    ids = torch.randint(0, 97, (2, 12), generator=torch.Generator().manual_seed(3))
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        full = model(ids)
        cache = model.new_kv_cache(batch_size=2)
        pieces = [model(ids[:, :5], kv_cache=cache), model(ids[:, 5:6], kv_cache=cache), model(ids[:, 6:], kv_cache=cache)]
    assert full.dtype == torch.bfloat16
    torch.testing.assert_close(torch.cat(pieces, 1).float(), full.float(), atol=3e-2, rtol=3e-2)


@pytest.mark.parametrize("temperature", [0.0, 1.5], ids=["greedy", "sampled"])
def test_padding_ids_beyond_the_tokenizer_are_never_produced(temperature):
    """A model whose vocabulary is padded past its tokenizer's (the leaderboard rounds up to a
    multiple of 64) may favour a padding id; with vocab_limit none is ever produced."""
    torch.manual_seed(0)
    model = TransformerLM.from_config(presets.micro(vocab_size=64, context_length=12)).eval()
    with torch.no_grad():  # make the padding rows (ids 40..63) the most likely by far
        model.lm_head.weight[40:] = model.lm_head.weight[:40].abs().max() * 50
    gen = torch.Generator().manual_seed(1)
    unlimited = generate(model, [1, 2], 20, temperature, 1.0, generator=gen)
    assert max(unlimited) >= 40  # the padding would be drawn without the limit
    limited = generate(model, [1, 2], 20, temperature, 1.0, generator=torch.Generator().manual_seed(1),
                       vocab_limit=40)
    assert len(limited) == 20 and max(limited) < 40


def test_sampling_settings_are_checked_even_for_greedy_decoding(model):
    with pytest.raises(ValueError, match="top_p must be in"):
        generate(model, [1], 3, temperature=0.0, top_p=1.5)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        generate(model, [1], 3, temperature=-1.0)
    with pytest.raises(ValueError, match="outside the model's vocabulary"):
        generate(model, [1, 500], 3)


def test_samples_decoded_as_one_batch_equal_decoding_each_alone(model):
    """Greedy: every row of the batch is the single-sample continuation (across the context
    limit); sampled with one generator, the batch draws what the rows would draw in turn."""
    prompt = [7, 3, 9, 1]
    rows = generate_samples(model, prompt, 3, 25, temperature=0)
    assert rows == [generate(model, prompt, 25, temperature=0)] * 3
    batch = generate_samples(model, prompt, 4, 6, temperature=1.3, generator=torch.Generator().manual_seed(2))
    assert len({tuple(r) for r in batch}) > 1 and all(len(r) == 6 for r in batch)


def test_each_sample_stops_at_its_own_eos(model):
    batch = generate_samples(model, [5], 8, 12, temperature=2.0, generator=torch.Generator().manual_seed(0))
    eos = batch[0][2]
    stopped = generate_samples(model, [5], 8, 12, temperature=2.0, eos_id=eos,
                               generator=torch.Generator().manual_seed(0))
    for full, cut in zip(batch, stopped):
        expected = full[:full.index(eos)] if eos in full else full
        assert cut == expected


def test_top_k_samples_only_among_the_k_most_likely(model):
    generator = torch.Generator().manual_seed(1)
    seen = []
    new = generate(model, [2, 8], 30, temperature=2.0, top_k=3, generator=generator, on_token=seen.append)
    assert seen == new
    tokens = [2, 8] + new
    with torch.no_grad():
        for i in range(2, len(tokens)):
            window = tokens[max(0, i - model.config.context_length):i]
            best3 = model(torch.tensor([window]))[0, -1].topk(3).indices.tolist()
            assert tokens[i] in best3
    assert generate(model, [2, 8], 15, temperature=1.0, top_k=1) == generate(model, [2, 8], 15, temperature=0)
    probs = torch.tensor([0.1, 0.4, 0.2, 0.3])
    torch.testing.assert_close(top_k_filter(probs, 2), torch.tensor([0.0, 4 / 7, 0.0, 3 / 7]))
    with pytest.raises(ValueError, match="top_k"):
        top_k_filter(probs, -1)


def test_streaming_text_holds_a_character_split_across_tokens():
    out = io.StringIO()
    text = StreamingText(ByteTokenizer(), out)
    for byte in "é✓".encode("utf-8"):
        text.add(byte)
    assert out.getvalue() == "é✓" and text.finish() == ""
    text.add("✓".encode("utf-8")[0])
    assert text.finish() == "\ufffd"
