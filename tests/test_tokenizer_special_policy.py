"""``allowed_special`` / ``disallowed_special`` against tiktoken, and ``encode_batch`` against
``encode`` (one process and several)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tritonlm.corpora.stories import generate_corpus
from tritonlm.tokenizer import Tokenizer
from tritonlm.tokenizer.special_policy import DisallowedSpecialToken

tiktoken = pytest.importorskip("tiktoken")
EOT = "<|endoftext|>"
HYPOTHESIS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
PIECES = [" ", "\n", "hello", " world", "<|", "endoftext", "|>", EOT, EOT + EOT, "😀", "123", "'s"]
text_with_specials = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=6)), max_size=20).map("".join)
POLICIES = [
    pytest.param(set(), (), id="specials-as-text"),
    pytest.param({EOT}, (), id="allowed"),
    pytest.param("all", (), id="all-allowed"),
    pytest.param(set(), "all", id="tiktoken-default"),
]


@HYPOTHESIS
@pytest.mark.parametrize("allowed, disallowed", POLICIES)
@given(text=text_with_specials)
def test_special_token_policies_equal_tiktoken(gpt2, tiktoken_gpt2, allowed, disallowed, text):
    try:
        expected = tiktoken_gpt2.encode(text, allowed_special=allowed, disallowed_special=disallowed)
    except ValueError:
        with pytest.raises(DisallowedSpecialToken, match="allowed_special"):
            gpt2.encode(text, allowed_special=allowed, disallowed_special=disallowed)
        return
    assert gpt2.encode(text, allowed_special=allowed, disallowed_special=disallowed) == expected


def test_unknown_or_contradictory_specials_are_errors(gpt2):
    with pytest.raises(ValueError, match="not special tokens of this tokenizer"):
        gpt2.encode("x", allowed_special={"<|im_start|>"})
    with pytest.raises(ValueError, match="both allowed and disallowed"):
        gpt2.encode("x", allowed_special={EOT}, disallowed_special={EOT})


@pytest.fixture(scope="module")
def stories_tokenizer(tmp_path_factory):
    from tritonlm.tokenizer import train_bpe

    path = tmp_path_factory.mktemp("tok") / "stories.txt"
    path.write_text(generate_corpus(100_000, 3))
    vocab, merges = train_bpe(str(path), 400, [EOT])
    return Tokenizer(vocab, merges, [EOT])


@pytest.mark.parametrize("workers", [1, 2])
def test_encode_batch_equals_encode_text_by_text(stories_tokenizer, workers):
    texts = [generate_corpus(40_000 + 997 * i, 10 + i) for i in range(30)]  # ~1.3M characters: parallel
    texts += ["", "Once upon a time" + EOT, EOT + "<|endoftext"]
    batch = stories_tokenizer.encode_batch(texts, num_workers=workers)
    assert batch == [stories_tokenizer.encode(t) for t in texts]
    plain = stories_tokenizer.encode_batch(texts[-3:], allowed_special=set())
    assert plain[1] == stories_tokenizer.encode("Once upon a time") + stories_tokenizer.encode("<|endoftext|>", allowed_special=set())
    assert stories_tokenizer.special_ids[EOT] not in plain[1] and stories_tokenizer.decode(plain[1]).endswith(EOT)
    with pytest.raises(DisallowedSpecialToken):
        stories_tokenizer.encode_batch(texts[-3:], allowed_special=set(), disallowed_special="all")
