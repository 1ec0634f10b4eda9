"""The character corpus: locating the play, the 90/10 split, the stream layout, downloads."""

import numpy as np
import pytest

from rnnedge.runtime.errors import DataError
from rnnedge.data import hamlet
from rnnedge.data.hamlet import CharCorpus, extract_play, load_text, stream_windows

TODAYS_HEADER = """\ufeffThe Project Gutenberg eBook of Hamlet\n\nTitle: Hamlet\n\n
*** START OF THE PROJECT GUTENBERG EBOOK 2265 ***\n\n\nThe Tragedie of Hamlet\n\n"""


def test_play_is_cut_at_its_own_first_and_last_lines(data_dir):
    play = load_text(data_dir_=data_dir)
    lines = [l for l in play.splitlines() if l.strip()]
    assert lines[0] == "The Tragedie of Hamlet"
    assert lines[1].startswith("Actus Primus")
    assert lines[-1].startswith("FINIS. The tragedie of HAMLET")
    assert "Gutenberg" not in play
    assert 150_000 < len(play) < 180_000


def test_play_is_found_under_another_header_and_line_endings(data_dir):
    ours = load_text(data_dir_=data_dir)
    served = TODAYS_HEADER + ours.replace("\n", "\r\n") + "\r\n*** END OF THE PROJECT GUTENBERG EBOOK ***\r\n"
    assert extract_play(served) == ours


@pytest.mark.parametrize("raw, missing", [("no play here", "Actus Primus"),
                                          ("The Tragedie of Hamlet\nActus Primus.\nBar. Who", "FINIS")])
def test_a_file_without_the_markers_is_a_data_error(raw, missing):
    with pytest.raises(DataError, match=missing):
        extract_play(raw)


def test_split_is_90_10_over_one_vocabulary():
    text = "abcdefghij" * 100
    corpus = CharCorpus.from_text(text)
    assert corpus.vocab == tuple("abcdefghij")
    assert len(corpus.train) == 900 and len(corpus.val) == 100
    assert "".join(corpus.vocab[i] for i in corpus.val[:10]) == "abcdefghij"


def test_windows_are_parallel_streams_and_targets_are_shifted():
    ids = np.arange(1000)
    windows = list(stream_windows(ids, batch_size=4, num_steps=10))
    x0, y0 = windows[0]
    x1, _ = windows[1]
    assert x0.shape == (4, 10)
    np.testing.assert_array_equal(y0, x0 + 1)  # next character
    np.testing.assert_array_equal(x1[:, 0], x0[:, -1] + 1)  # row b of window 1 continues window 0
    np.testing.assert_array_equal(x0[:, 0], [0, 249, 498, 747])  # four contiguous streams


def test_any_utf8_text_is_a_corpus_and_other_bytes_are_refused(tmp_path):
    good = tmp_path / "poem.txt"
    good.write_text("Schläft ein Lied in allen Dingen, " * 10, encoding="utf-8")
    assert load_text(good).startswith("Schläft")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("Schläft ein Lied ".encode("latin-1") * 10)
    with pytest.raises(DataError, match="not UTF-8"):
        load_text(bad)
    with pytest.raises(DataError, match="does not exist"):
        load_text(tmp_path / "missing.txt")


def test_missing_hamlet_is_downloaded_or_fails_clearly_offline(tmp_path, monkeypatch):
    monkeypatch.setattr(hamlet, "HAMLET_URL", "http://127.0.0.1:9/pg2265.txt")  # nothing listens
    with pytest.raises(DataError, match="downloading it from http://127.0.0.1:9"):
        load_text(data_dir_=tmp_path)
    assert list(tmp_path.iterdir()) == []  # no partial file left behind


def test_download_is_used_when_the_file_is_missing(tmp_path, monkeypatch, data_dir):
    served = TODAYS_HEADER + (data_dir / hamlet.HAMLET_FILE).read_text()
    source = tmp_path / "served.txt"
    source.write_text(served)
    monkeypatch.setattr(hamlet, "HAMLET_URL", source.as_uri())
    target = tmp_path / "data"
    assert load_text(data_dir_=target) == load_text(data_dir_=data_dir)
    assert (target / hamlet.HAMLET_FILE).is_file()
