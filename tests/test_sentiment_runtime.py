"""The exported classifier on real reviews: tokenizer parity, padding invariance, CLI, verify."""

import json
import subprocess
import sys

import numpy as np
import pytest

import rnnedge.runtime as rt
from rnnedge.runtime.errors import InputError
from rnnedge.runtime.tolerances import FP32, assert_close

CLI = [sys.executable, "-m", "rnnedge.cli"]


@pytest.fixture(scope="module")
def test_reviews(data_dir):
    from rnnedge.data.imdb import load_imdb

    reviews = load_imdb("test", data_dir)
    rng = np.random.default_rng(0)
    return [reviews[i] for i in rng.choice(len(reviews), 1000, replace=False)]


def test_runtime_token_ids_equal_the_training_pipelines(sentiment, test_reviews):
    from rnnedge.runtime.tokenizer import Tokenizer
    from rnnedge.train import checkpoint
    from rnnedge.train.sentiment import _encode

    train_rows, _ = _encode(Tokenizer.from_dict(checkpoint.load(sentiment[0])["vocab"]),
                            test_reviews, "test")
    runtime_rows = rt.load(sentiment[1]).tokenizer.encode_rows([r.text for r in test_reviews])
    assert len(runtime_rows) == 1000 and runtime_rows == train_rows
    assert max(map(len, runtime_rows)) == 120  # the length policy travelled in the metadata


@pytest.mark.parametrize("engine", ["ort", "numba"])
def test_a_real_review_scores_the_same_alone_and_in_padded_batches(sentiment, test_reviews, engine):
    model = rt.load(sentiment[1], engine=engine)
    texts = [r.text for r in test_reviews[:64]]
    short = min(texts, key=len)
    alone = model.classify([short], batch_size=1)[0]
    for batch in (1, 7, 64):
        probs = model.classify(texts[:batch - 1] + [short], batch_size=batch)
        assert_close(f"batch {batch}", probs[-1], alone, FP32)
    ids, lengths = model.tokenizer.encode_batch([short, texts[0]])
    padded = np.concatenate([ids, np.zeros((2, 300), np.int64)], axis=1)  # far past any length
    assert_close("extra padding", model.run(padded, lengths)[1][0], alone, FP32)


def test_classify_api_and_cli_agree_on_arguments_file_and_stdin(sentiment, tmp_path):
    texts = ["A wonderful, moving film. The best of the year!", "Dull, boring and far too long."]
    probs = rt.load(sentiment[1]).classify(texts)
    assert probs.shape == (2,) and probs.dtype == np.float32 and np.all((probs > 0) & (probs < 1))
    (tmp_path / "reviews.txt").write_text("\n".join(texts) + "\n")
    runs = [subprocess.run([*CLI, "classify", str(sentiment[1]), *texts, "--json"], capture_output=True, text=True),
            subprocess.run([*CLI, "classify", str(sentiment[1]), "--file", str(tmp_path / "reviews.txt"),
                            "--json"], capture_output=True, text=True),
            subprocess.run([*CLI, "classify", str(sentiment[1]), "--json"], input="\n".join(texts),
                           capture_output=True, text=True)]
    for done in runs:
        assert done.returncode == 0, done.stderr
        rows = json.loads(done.stdout)["results"]
        assert [r["text"] for r in rows] == texts
        np.testing.assert_allclose([r["prob"] for r in rows], probs, rtol=1e-6)
        assert [r["label"] for r in rows] == ["positive" if p >= 0.5 else "negative" for p in probs]
    plain = subprocess.run([*CLI, "classify", str(sentiment[1]), texts[0]], capture_output=True, text=True)
    prob, label, _ = plain.stdout.strip().split("\t")
    assert float(prob) == pytest.approx(probs[0], abs=1e-4) and label in ("positive", "negative")


def test_evaluate_scores_raw_text_with_the_runtime(sentiment, data_dir, test_reviews):
    done = subprocess.run([*CLI, "evaluate", str(sentiment[1]), "--data-dir", str(data_dir),
                           "--limit", "300", "--json", "--engine", "numba"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    from rnnedge.data.imdb import load_imdb
    from rnnedge.deploy.evaluate import stratified

    reviews = load_imdb("test", data_dir)
    picked = [reviews[i] for i in stratified([r.label for r in reviews], 300)[0]]  # 150 a class
    probs = rt.load(sentiment[1]).classify([r.text for r in picked])
    expected = float(np.mean((probs >= 0.5) == np.array([r.label for r in picked])))
    assert result["n"] == 300 and result["accuracy"] == pytest.approx(expected)
    assert result["per_class"] == {"negative": 150, "positive": 150}


def test_verify_compares_three_engines_on_real_reviews(sentiment, data_dir):
    from rnnedge.deploy.verify import verify
    from rnnedge.export.torch_engines import reference

    diffs = verify(sentiment[1], reference(sentiment[0]), data_dir, limit=200)
    names = [d.name for d in diffs]
    assert any("imdb test 200 reviews" in n and "numba vs torch prob" in n for n in names)
    assert sum("label agreement 100.00%" in n for n in names) >= 3
    assert all(d.ok for d in diffs), [str(d) for d in diffs if not d.ok]


@pytest.mark.parametrize("make_input, message", [
    (lambda p: ["", "good"], "review 0 is empty"),
    (lambda p: ["fine", "   \t "], "review 1 is empty"),
    (lambda p: ["--file", p("latin1.txt", "Très bon film".encode("latin-1"))], "not UTF-8"),
    (lambda p: ["--file", p("model.bin", b"\x00\x01\x02binary")], "not a text file"),
])
def test_bad_reviews_exit_2_with_one_line(sentiment, tmp_path, make_input, message):
    def write(name, data):
        (tmp_path / name).write_bytes(data)
        return str(tmp_path / name)

    done = subprocess.run([*CLI, "classify", str(sentiment[1]), *make_input(write)],
                          capture_output=True, text=True)
    assert done.returncode == 2 and message in done.stderr and done.stderr.count("\n") == 1


def test_a_review_far_longer_than_the_policy_is_cut_not_a_crash(sentiment):
    model = rt.load(sentiment[1])
    huge = "great " * 50_000 + "terrible ending"
    assert model.tokenizer.encode_batch([huge])[1][0] == 120
    assert 0 < model.classify([huge])[0] < 1
    with pytest.raises(InputError, match="batch size"):
        model.classify(["ok"], batch_size=0)


def test_bench_reports_reviews_per_second_with_ratios(sentiment, test_reviews):
    from rnnedge.deploy.bench_sentiment import bench_sentiment

    report = bench_sentiment(sentiment[1], [r.text for r in test_reviews[:24]], batch_sizes=(1, 8),
                             threads=(1, 2), repeats=1)
    keys = {(r["engine"], r["threads"], r["batch"]) for r in report["results"]}
    assert keys == {(e, t, b) for e in ("ort", "ort-direct", "numba", "fast", "fast-int8", "floor")
                    for t in (1, 2) for b in (1, 8)}
    assert all(r["reviews_per_s"] > 0 for r in report["results"])
    assert all(r["vs_ort"] == 1.0 for r in report["results"] if r["engine"] == "ort")
    assert all(r["vs_ort_direct"] == 1.0 for r in report["results"] if r["engine"] == "ort-direct")
    assert report["parity"][0]["name"] == "numba vs ort prob" and report["parity"][0]["ok"]
