"""The sentiment model and its training loop on tiny synthetic reviews."""

import json

import numpy as np
import pytest
import torch

from rnnedge.runtime.errors import InputError
from rnnedge.runtime.tokenizer import Tokenizer
from rnnedge.runtime.tolerances import FP32, assert_close
from rnnedge.train import sentiment
from rnnedge.data.imdb import Review
from rnnedge.train.config import SentimentConfig
from rnnedge.train.sentiment import predict_proba, train_sentiment
from rnnedge.train.sentiment_model import SentimentModel, build_model

TINY = dict(embed_dim=16, hidden_size=16, dropout=0.1, batch_size=16, lr=1e-2, val_size=60,
            max_len=30, min_count=1, threads=1, echo=None)  # equal weights need equal threads
NEUTRAL = "the a film movie plot actor scene was is it and of to story cast".split()
POSITIVE = "great superb wonderful loved brilliant".split()
NEGATIVE = "awful boring terrible hated dull".split()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and spinning threads crawl on shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def synthetic(n, seed):
    """``n`` reviews of neutral filler with two to four words of their sentiment."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        label = i % 2
        words = list(rng.choice(NEUTRAL, size=rng.integers(3, 20)))
        for _ in range(rng.integers(2, 5)):
            word = rng.choice(POSITIVE if label else NEGATIVE)
            words.insert(rng.integers(0, len(words) + 1), word)
        out.append(Review(" ".join(words) + ".", label, None, f"syn/{seed}/{i}"))
    return out


def write_jsonl(path, records):
    path.write_text("".join(json.dumps({"text": r.text, "label": r.label}) + "\n" for r in records))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(out dir, metrics) of 3 epochs on 400 synthetic reviews via the IMDb path."""
    splits = {"train": synthetic(400, 0), "test": synthetic(100, 1)}
    out = tmp_path_factory.mktemp("sentiment")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sentiment, "load_imdb", lambda split, data_dir=None: splits[split])
        metrics = train_sentiment(out, epochs=3, **TINY)
    return out, metrics


CASES = [dict(cell="lstm", head="last"), dict(cell="lstm", head="mean"),
         dict(cell="lstm", head="max"), dict(cell="gru", head="last"),
         dict(cell="lstm", head="last", num_layers=2),
         dict(cell="lstm", head="last", bidirectional=True),
         dict(cell="gru", head="mean", bidirectional=True, num_layers=2)]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_padding_does_not_change_a_reviews_logit(case):
    torch.manual_seed(0)
    config = SentimentConfig(vocab_size=50, embed_dim=8, hidden_size=12, **case)
    model = SentimentModel(config).eval()
    rng = np.random.default_rng(1)
    lengths = np.array([9, 17, 1, 30, 5])
    ids = np.zeros((len(lengths), lengths.max()), dtype=np.int64)  # (B, T) right-padded
    for b, n in enumerate(lengths):
        ids[b, :n] = rng.integers(1, 50, size=n)
    with torch.no_grad():
        batch = model(torch.from_numpy(ids), torch.from_numpy(lengths)).numpy()
        alone = np.array([model(torch.from_numpy(ids[b:b + 1, :n]), torch.tensor([n])).item()
                          for b, n in enumerate(lengths)])
    assert batch.shape == (len(lengths),)
    assert_close(f"padded vs alone {case}", batch, alone, FP32)


def test_run_writes_safe_checkpoints_and_a_log(trained):
    out, metrics = trained
    for name in ("best.pt", "last.pt"):
        ckpt = torch.load(out / name, map_location="cpu", weights_only=True)
        assert ckpt["task"] == "sentiment"
        assert set(ckpt) >= {"config", "train_config", "vocab", "model", "optimizer", "epoch",
                             "metrics", "history"}
    assert ckpt["epoch"] == 3 and len(ckpt["history"]) == 3
    lines = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines if "val_acc" in r] == [1, 2, 3]
    assert [r.get("event") for r in lines][-2:] == ["test", "end"]
    assert metrics["stopped"] == "epochs" and metrics["params"] > 0


def test_the_tiny_model_learns_and_scores_the_test_split_from_best(trained):
    out, metrics = trained
    best = torch.load(out / "best.pt", map_location="cpu", weights_only=True)
    assert metrics["val_acc"] == max(h["val_acc"] for h in best["history"]) > 0.9
    assert best["epoch"] == metrics["epoch"]
    assert metrics["test_acc"] > 0.9 and best["metrics"]["test_acc"] == metrics["test_acc"]


def test_build_model_and_predict_proba_rebuild_from_the_checkpoint(trained):
    out, _ = trained
    ckpt = torch.load(out / "best.pt", map_location="cpu", weights_only=True)
    model, tokenizer = build_model(ckpt), Tokenizer.from_dict(ckpt["vocab"])
    assert not model.training and tokenizer.max_len == 30
    probs = predict_proba(model, tokenizer, ["a great and superb film", "boring , dull , awful",
                                             "loved it , great . " * 20])
    assert probs.shape == (3,) and probs.dtype == np.float32
    assert probs[0] > 0.5 > probs[1] and probs[2] > 0.5
    with pytest.raises(InputError, match="review 1 is empty"):
        predict_proba(model, tokenizer, ["great", "  "])


def test_resuming_gives_the_weights_of_an_uninterrupted_run(tmp_path):
    data = write_jsonl(tmp_path / "reviews.jsonl", synthetic(200, 2))
    train_sentiment(tmp_path / "straight", data=data, epochs=2, **TINY)
    train_sentiment(tmp_path / "cut", data=data, epochs=1, **TINY)
    metrics = train_sentiment(tmp_path / "cut", data=data, epochs=2, resume=tmp_path / "cut",
                              threads=1, echo=None)
    straight = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    resumed = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert resumed["epoch"] == 2 and "test_acc" not in metrics
    for a, b in zip(resumed["history"], straight["history"]):
        assert (a["train_loss"], a["val_acc"]) == (b["train_loss"], b["val_acc"])
    for key, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][key]), key


def test_early_stopping_and_the_time_budget_end_a_run(tmp_path):
    data = write_jsonl(tmp_path / "reviews.jsonl", synthetic(100, 4))
    frozen = train_sentiment(tmp_path / "frozen", data=data, epochs=5, patience=1,
                             **{**TINY, "lr": 1e-30})  # a step too small to change a float32
    assert (frozen["stopped"], frozen["epoch"]) == ("early", 1)
    assert len(torch.load(tmp_path / "frozen" / "last.pt", weights_only=True)["history"]) == 2
    spent = train_sentiment(tmp_path / "spent", data=data, epochs=5, max_minutes=0, **TINY)
    assert (spent["stopped"], spent["epoch"]) == ("budget", 1)


def test_a_fresh_run_refuses_an_occupied_out_dir(tmp_path, trained):
    out, _ = trained
    with pytest.raises(InputError, match="--resume"):
        train_sentiment(out, data=write_jsonl(tmp_path / "r.jsonl", synthetic(100, 3)), **TINY)


def test_bad_configs_are_input_errors(tmp_path):
    data = write_jsonl(tmp_path / "r.jsonl", synthetic(100, 3))
    with pytest.raises(InputError, match="unknown setting"):
        train_sentiment(tmp_path / "run", data=data, **TINY, hidden=8)
    with pytest.raises(InputError, match="head"):
        SentimentConfig(head="attention")
    with pytest.raises(InputError, match="cell"):
        SentimentConfig(cell="transformer")
    with pytest.raises(InputError, match="nonlinearity"):
        SentimentConfig(cell="rnn", nonlinearity="gelu")
    with pytest.raises(InputError, match="vocab_size"):
        SentimentModel(SentimentConfig())
