"""The sentiment tokenizer on crafted strings: scheme, vocabulary, length policy, round trip."""

import json
import subprocess
import sys

import numpy as np
import pytest

from rnnedge.runtime.errors import InputError, ModelFileError
from rnnedge.runtime.tokenizer import PAD, UNK, Scheme, Tokenizer, build_vocab

LETTERS = "a b c d e f g h"


def tokens(text, **scheme):
    return Tokenizer(["<pad>", "<unk>"], Scheme(**scheme)).tokenize(text)


def test_line_breaks_are_removed_and_separate_words():
    assert tokens("Great<br />movie<br>ever<BR/>end< br>") == ["great", "movie", "ever", "end",
                                                                "<", "br", ">"]


def test_lower_case_is_a_switch():
    assert tokens("GREAT Movie") == ["great", "movie"]
    assert tokens("GREAT Movie", lowercase=False) == ["GREAT", "Movie"]


def test_punctuation_is_split_off_or_dropped():
    assert tokens('Wow!!! "Really?" 10/10.') == ["wow", "!", "!", "!", '"', "really", "?", '"',
                                                 "10", "/", "10", "."]
    assert tokens('Wow!!! "Really?" 10/10.', punctuation="drop") == ["wow", "really", "10", "10"]


def test_contractions_stay_one_word_unless_switched_off():
    assert tokens("I don't like it's ending") == ["i", "don't", "like", "it's", "ending"]
    assert tokens("I don't", contractions=False) == ["i", "don", "'", "t"]
    assert tokens("the actors' 'work'") == ["the", "actors", "'", "'", "work", "'"]


def test_emoticons_are_single_tokens_unless_switched_off():
    assert tokens("fun :) bad :-( ok;D :dog") == ["fun", ":)", "bad", ":-(", "ok", ";d", ":", "dog"]
    assert tokens("fun :)", emoticons=False) == ["fun", ":", ")"]
    assert tokens("fun :D", lowercase=False) == ["fun", ":D"]


def test_scheme_rejects_unknown_punctuation_mode():
    with pytest.raises(InputError, match="punctuation"):
        Scheme(punctuation="keep")


def test_vocabulary_orders_by_count_then_code_point_with_specials_first():
    lists = [["b", "a", "c", "a"], ["c", "d", "a"]]
    assert build_vocab(lists) == ["<pad>", "<unk>", "a", "c", "b", "d"]
    assert build_vocab(lists, min_count=2) == ["<pad>", "<unk>", "a", "c"]
    assert build_vocab(lists, max_size=3) == ["<pad>", "<unk>", "a"]
    with pytest.raises(InputError, match="max_size"):
        build_vocab([["a"]], max_size=2)


def test_build_uses_only_the_given_texts_and_counts_min_count():
    tok = Tokenizer.build(["good good film", "bad film", "good"], min_count=2)
    assert tok.vocab == ["<pad>", "<unk>", "good", "film"]
    assert tok.vocab_size == 4


def test_unknown_words_are_1_and_padding_is_0():
    tok = Tokenizer.build(["good movie", "bad film"])
    ids, lengths = tok.encode_batch(["good movie", "bad zzz film !"])
    assert ids.dtype == np.int64 and lengths.dtype == np.int64
    assert lengths.tolist() == [2, 4]
    assert ids.shape == (2, 4)
    assert ids[0, 2:].tolist() == [PAD, PAD]
    assert ids[1, 1] == UNK and ids[1, 3] == UNK
    assert ids[1, 0] == tok.index["bad"]


@pytest.mark.parametrize("keep, want", [("last", "e f g h"), ("first", "a b c d"),
                                        ("head_tail", "a f g h")])
def test_length_policy_keeps_the_chosen_tokens(keep, want):
    tok = Tokenizer.build([LETTERS], max_len=4, keep=keep)
    ids, lengths = tok.encode_batch([LETTERS, "b c"])
    assert [tok.vocab[i] for i in ids[0]] == want.split()
    assert lengths.tolist() == [4, 2]


def test_head_tail_gives_the_head_a_quarter_of_the_budget():
    text = " ".join(f"w{i}" for i in range(20))
    tok = Tokenizer.build([text], max_len=8, keep="head_tail")
    kept = [tok.vocab[i] for i in tok.encode(text)]
    assert kept == ["w0", "w1", "w14", "w15", "w16", "w17", "w18", "w19"]


def test_round_trip_through_json_gives_identical_ids():
    texts = ["A fine, fine film :)<br /><br />I don't regret it!", "Dull. Dull! DULL?", "zzz"]
    tok = Tokenizer.build(texts[:2], Scheme(contractions=False, emoticons=False), max_len=5,
                          keep="head_tail")
    again = Tokenizer.from_dict(json.loads(json.dumps(tok.to_dict())))
    assert again.scheme == tok.scheme and again.vocab == tok.vocab
    for a, b in zip(tok.encode_batch(texts), again.encode_batch(texts)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("empty", ["", "   \n\t", "<br /><br>"])
def test_a_review_without_tokens_is_an_input_error(empty):
    tok = Tokenizer.build(["good film"])
    with pytest.raises(InputError, match="review 1 is empty"):
        tok.encode_batch(["good", empty])


def test_bad_batches_are_input_errors():
    tok = Tokenizer.build(["good film"])
    with pytest.raises(InputError, match="not one string"):
        tok.encode_batch("good film")
    with pytest.raises(InputError, match="review 0 is a int"):
        tok.encode_batch([3])
    with pytest.raises(InputError, match="at least one"):
        tok.encode_batch([])
    with pytest.raises(InputError, match="keep"):
        Tokenizer(["<pad>", "<unk>"], keep="middle")


def test_a_broken_description_is_a_model_file_error():
    good = Tokenizer.build(["good film"]).to_dict()
    for broken in ({k: v for k, v in good.items() if k != "vocab"}, {**good, "format": 99},
                   {**good, "vocab": ["good", "film"]}, {**good, "scheme": {"colour": 1}}):
        with pytest.raises(ModelFileError):
            Tokenizer.from_dict(broken)


def test_the_tokenizer_imports_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "from rnnedge.runtime.tokenizer import Tokenizer\n"
            "print(Tokenizer.build(['ok']).encode_batch(['ok'])[1][0])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"
