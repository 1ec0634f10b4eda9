"""The series readers on files users really have, and on hostile ones: each is read as what
it is or refused with a ``DataError`` naming the file (and line or case), never a traceback,
a silently wrong value or a made-up class."""

import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rnnedge.data.series import load_series, split_stratified
from rnnedge.runtime.errors import DataError

TS_HEAD = "@problemName t\n@timeStamps false\n@univariate true\n@classLabel true {labels}\n@data\n"


def write(path, data):
    (path.write_bytes if isinstance(data, bytes) else path.write_text)(data)
    return path


def npz(path, **arrays):
    np.savez(path, **arrays)
    return path


CSV = "id,t,a,b,label\n1,0,0.5,1.0,x\n1,1,0.25,2.0,x\n2,0,1.5,-1.0,y\n"


@pytest.mark.parametrize("name, make, message", [
    ("big.csv", lambda p: write(p, CSV.replace("0.25", "1e39")), "is not finite in float32"),
    ("nan_t.csv", lambda p: write(p, CSV.replace("1,1,", "1,nan,")), "t 'nan' is not a finite number"),
    ("utf16.csv", lambda p: write(p, CSV.encode("utf-16")), "is UTF-16; save it as UTF-8"),
    ("latin1.ts", lambda p: write(p, (TS_HEAD.format(labels="caf\xe9 tea") + "1,2,3:caf\xe9\n")
                                  .encode("latin-1")), "not UTF-8 text"),
    ("huge.ts", lambda p: write(p, TS_HEAD.format(labels="a b") + "1,1e39,3:a\n"),
     "is not finite in float32"),
    ("floatlen.npz", lambda p: npz(p, X=np.zeros((2, 3, 1)), lengths=np.array([1.0, 2.0])),
     "lengths must be (cases,) integers"),
    ("array.npz", lambda p: (np.save(p.with_suffix(".npy"), np.zeros(3)),
                             p.with_suffix(".npy").rename(p), p)[-1], "holds one array"),
    ("empty.npz", lambda p: write(p, b""), "not a readable .npz"),
    ("dup.npz", lambda p: npz(p, X=np.zeros((2, 3, 1)), y=np.array([0, 1]),
                              classes=np.array(["a", "a"])), "class names must be distinct"),
    ("escape.npz", lambda p: npz(p, X=np.zeros((2, 3, 1)), y=np.array(["ok", "\x1b[2J"])),
     "printable"),
    ("inf.npz", lambda p: npz(p, X=np.full((1, 2, 1), 1e39), y=np.array([0])),
     "case 1, frame 1, channel 1 is not finite in float32"),
])
def test_a_bad_file_is_a_data_error_naming_it(tmp_path, name, make, message):
    path = make(tmp_path / name)
    with pytest.raises(DataError) as caught:
        load_series(path)
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_what_spreadsheets_write_is_read(tmp_path):
    """Excel's "CSV UTF-8" starts with a byte-order mark, and its labels may be non-ASCII."""
    series = load_series(write(tmp_path / "excel.csv", ("\ufeff" + CSV).replace("y", "é")
                               .encode("utf-8")))
    assert series.classes == ("x", "é") and [len(x) for x in series.X] == [2, 1]


def test_large_integer_labels_name_the_classes_present_without_allocating_for_the_gaps(tmp_path):
    start = time.perf_counter()
    series = load_series(npz(tmp_path / "big.npz", X=np.zeros((2, 3, 1)),
                             y=np.array([10**9, 7])))
    assert time.perf_counter() - start < 5
    assert series.classes == ("7", "1000000000") and list(series.y) == [1, 0]


def test_one_case_per_class_leaves_nothing_to_validate_on_and_says_so():
    with pytest.raises(DataError, match="no class has 2 or more cases"):
        split_stratified(np.array([0, 1, 2]), 0.2)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["1", "2", "x", ""]),
                          st.sampled_from(["0", "1", "2", "nan", "", "-1"]),
                          st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                                    st.sampled_from(["?", "", "1e39", "abc", "-0"])),
                          st.sampled_from(["a", "b", "", "\u00e9"])), max_size=12))
def test_any_csv_is_read_finite_or_refused_with_a_data_error(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("csv") / "f.csv"
    path.write_text("id,t,v,label\n" + "".join(",".join(r) + "\n" for r in rows), "utf-8")
    for missing in ("error", "interpolate"):
        try:
            series = load_series(path, missing=missing)
        except DataError as exc:
            assert str(path) in str(exc)
        else:
            assert all(x.dtype == np.float32 and np.isfinite(x).all() for x in series.X)
            assert len(series.y) == len(series.X) and len(set(series.classes)) == len(series.classes)


class _Response:
    """A download that sends ``chunks`` and then fails as a dropped connection does."""

    headers = {"Content-Length": "999"}

    def __init__(self, chunks):
        self.chunks = list(chunks)

    def read(self, size):
        if not self.chunks:
            raise ConnectionResetError(104, "Connection reset by peer")
        return self.chunks.pop(0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("opened, message", [
    (OSError(-2, "Name or service not known"), "Name or service not known"),
    (_Response([b"half a file"]), "Connection reset by peer"),
])
def test_a_failed_download_says_so_and_leaves_nothing(tmp_path, monkeypatch, opened, message):
    """The network's failure is named as the network's (not "cannot write ..."), and neither the
    file, its temporary nor its lock is left behind."""
    import urllib.request

    from rnnedge.data.download import fetch

    def urlopen(url, timeout):
        if isinstance(opened, Exception):
            raise opened
        return opened
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    with pytest.raises(DataError) as caught:
        fetch("https://example.org/f.txt", tmp_path / "f.txt")
    assert message in str(caught.value) and "cannot write" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []
