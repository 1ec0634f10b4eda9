"""The IMDb loader on synthetic official-layout data and the real archive; labeled files."""

import io
import json
import tarfile

import pytest

from rnnedge.runtime.errors import DataError, InputError
from rnnedge.data import imdb
from rnnedge.data.imdb import Review, load_imdb, load_labeled_file, split_train_val

# (path inside the archive, text): two train reviews, one test review, noise to skip.
FILES = {
    "aclImdb/README": "not a review",
    "aclImdb/train/pos/10_9.txt": "A triumph. <br />Loved it.",
    "aclImdb/train/pos/2_7.txt": "Pretty good \u00e9t\u00e9 film.",
    "aclImdb/train/neg/0_3.txt": "Dreadful.",
    "aclImdb/train/unsup/0_0.txt": "unlabeled, skipped",
    "aclImdb/train/labeledBow.feat": "0:1 1:2",
    "aclImdb/test/neg/5_1.txt": "Awful from start to end.",
}


def write_tar(path, files=FILES):
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            raw = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path


def write_folder(root, files=FILES):
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")


def check_synthetic(train, test):
    assert train == [Review("Dreadful.", 0, 3, "train/neg/0"),
                     Review("Pretty good \u00e9t\u00e9 film.", 1, 7, "train/pos/2"),
                     Review("A triumph. <br />Loved it.", 1, 9, "train/pos/10")]
    assert test == [Review("Awful from start to end.", 0, 1, "test/neg/5")]


def test_official_archive_layout(tmp_path):
    write_tar(tmp_path / "aclImdb_v1.tar.gz")
    check_synthetic(load_imdb("train", tmp_path), load_imdb("test", tmp_path))


def test_extracted_folder_gives_the_same_records(tmp_path):
    write_folder(tmp_path)
    check_synthetic(load_imdb("train", tmp_path), load_imdb("test", tmp_path))


def test_labeled_archive_is_preferred_to_the_official_one(tmp_path):
    write_tar(tmp_path / "aclImdb_v1.tar.gz", {"aclImdb/train/pos/0_8.txt": "official",
                                               "aclImdb/test/pos/0_8.txt": "official"})
    write_tar(tmp_path / "aclImdb_labeled.tar.gz")
    check_synthetic(load_imdb("train", tmp_path), load_imdb("test", tmp_path))


def test_data_dir_comes_from_the_environment(tmp_path, monkeypatch):
    write_tar(tmp_path / "aclImdb_v1.tar.gz")
    monkeypatch.setenv("RNNEDGE_DATA", str(tmp_path))
    assert len(load_imdb("train")) == 3


def test_a_missing_data_set_is_downloaded_from_the_official_url(tmp_path, monkeypatch):
    calls = []

    def fake_fetch(url, dest):
        calls.append(url)
        dest.parent.mkdir(parents=True)
        return write_tar(dest)

    monkeypatch.setattr(imdb, "fetch", fake_fetch)
    check_synthetic(load_imdb("train", tmp_path / "new"), load_imdb("test", tmp_path / "new"))
    assert calls == [imdb.URL]
    assert (tmp_path / "new" / "aclImdb_v1.tar.gz").is_file()


def test_an_offline_download_failure_is_a_data_error(tmp_path, monkeypatch):
    def offline(url, dest):
        raise DataError("offline")

    monkeypatch.setattr(imdb, "fetch", offline)
    with pytest.raises(DataError, match="offline"):
        load_imdb("train", tmp_path)


def test_bad_archives_and_splits(tmp_path):
    with pytest.raises(InputError, match="'train' or 'test'"):
        load_imdb("unsup", tmp_path)
    (tmp_path / "aclImdb_v1.tar.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(DataError, match="not a readable tar.gz"):
        load_imdb("train", tmp_path)
    write_tar(tmp_path / "aclImdb_labeled.tar.gz", {"aclImdb/train/pos/0_9.txt": "only train"})
    with pytest.raises(DataError, match="no aclImdb/test"):
        load_imdb("train", tmp_path)


@pytest.mark.slow
def test_the_real_archive_has_the_official_counts(data_dir):
    if not (data_dir / "aclImdb_labeled.tar.gz").is_file():
        pytest.fail(f"{data_dir} lacks aclImdb_labeled.tar.gz; set RNNEDGE_DATA")
    for split in ("train", "test"):
        records = load_imdb(split, data_dir)
        assert len(records) == 25_000
        assert sum(r.label for r in records) == 12_500
        assert len({r.id for r in records}) == 25_000
        assert {r.rating for r in records if r.label == 0} == {1, 2, 3, 4}
        assert {r.rating for r in records if r.label == 1} == {7, 8, 9, 10}


def test_csv_and_jsonl_with_every_label_spelling(tmp_path):
    (tmp_path / "a.csv").write_text('text,label\n"Good, really",pos\nBad,0\n"Two\nlines",TRUE\n'
                                    "Meh,negative\n", encoding="utf-8")
    records = load_labeled_file(tmp_path / "a.csv")
    assert [(r.text, r.label) for r in records] == [("Good, really", 1), ("Bad", 0),
                                                    ("Two\nlines", 1), ("Meh", 0)]
    assert records[2].id == "a.csv:3" and records[2].rating is None
    rows = [{"review": "Fine", "y": 1}, {"review": "Poor", "y": False}, {"review": "Yes", "y": "1"}]
    (tmp_path / "b.jsonl").write_text("\n".join(map(json.dumps, rows)) + "\n\n", encoding="utf-8")
    records = load_labeled_file(tmp_path / "b.jsonl", text_column="review", label_column="y")
    assert [(r.text, r.label) for r in records] == [("Fine", 1), ("Poor", 0), ("Yes", 1)]


@pytest.mark.parametrize("name, content, message", [
    ("x.csv", "body,label\nGood,1\n", "row 1: no 'text' column"),
    ("x.csv", "text,label\nGood,1\nBad,2\n", "row 2: label '2' is not binary"),
    ("x.jsonl", '{"text": "Good", "label": 0.5}\n', "line 1: label 0.5 is not binary"),
    ("x.jsonl", '{"text": "Good", "label": 1}\n{"text": "Bad" "label": 0}\n',
     "line 2: not valid JSON"),
    ("x.jsonl", '["Good", 1]\n', "expected a JSON object"),
    ("x.jsonl", '{"text": 5, "label": 1}\n', "must be a string"),
    ("x.csv", "text,label\n", "holds no rows"),
    ("x.txt", "Good\t1\n", "unknown file type"),
])
def test_bad_labeled_files_are_data_errors(tmp_path, name, content, message):
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        load_labeled_file(tmp_path / name)


def test_non_utf8_and_missing_files_are_data_errors(tmp_path):
    (tmp_path / "x.csv").write_bytes("text,label\nCaf\u00e9,1\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        load_labeled_file(tmp_path / "x.csv")
    with pytest.raises(DataError, match="does not exist"):
        load_labeled_file(tmp_path / "missing.csv")


def records(n_neg, n_pos):
    return ([Review(f"n{i}", 0, 1, f"neg/{i}") for i in range(n_neg)] +
            [Review(f"p{i}", 1, 10, f"pos/{i}") for i in range(n_pos)])


def test_split_is_stratified_fixed_and_keeps_input_order():
    data = records(300, 100)
    train, val = split_train_val(data, val_size=40, seed=3)
    assert len(val) == 40 and sum(r.label for r in val) == 10
    assert len(train) == 360 and {r.id for r in train}.isdisjoint(r.id for r in val)
    assert train == [r for r in data if r in set(train)]
    assert val == [r for r in data if r in set(val)]
    assert split_train_val(data, val_size=40, seed=3) == (train, val)
    assert split_train_val(data, val_size=40, seed=4)[1] != val


def test_split_rejects_impossible_sizes():
    with pytest.raises(InputError, match="val_size"):
        split_train_val(records(2, 2), val_size=4)
    with pytest.raises(InputError, match="val_size"):
        split_train_val(records(2, 2), val_size=0)
