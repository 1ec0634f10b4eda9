"""Long commands say they are alive when stderr is a log, not a terminal: plain lines on stderr."""

import io
import subprocess
import sys

from rnnedge.train.common import PlainProgress, progress


def test_plain_lines_replace_the_bar_off_a_terminal_and_stay_sparse():
    stream = io.StringIO()
    bar = progress(every=3600.0, stream=stream)
    assert isinstance(bar, PlainProgress)
    with bar:
        for epoch in (1, 2):
            task = bar.add_task(f"epoch {epoch}/2", total=1000, info="")
            for _ in range(999):
                bar.update(task, advance=1, info="loss 1.0")
            bar.remove_task(task)  # an epoch that ends early still says so, once
    lines = stream.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"], lines
    assert "999/1000" in lines[0] and "loss 1.0" in lines[0]


def test_a_line_every_few_seconds_at_most():
    stream = io.StringIO()
    with PlainProgress(every=0.0, stream=stream) as bar:
        task = bar.add_task("evaluating", total=3, info="")
        for _ in range(3):
            bar.advance(task, 1)
    assert stream.getvalue().splitlines()[-1].startswith("evaluating: 3/3")


def test_evaluate_piped_reports_progress_on_stderr(sentiment, data_dir):
    done = subprocess.run([sys.executable, "-m", "rnnedge.cli", "evaluate", str(sentiment[1]),
                           "--limit", "600", "--data-dir", str(data_dir)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "evaluating on ort: 600/600" in done.stderr
    assert done.stdout.startswith("accuracy ")


def test_a_tiny_training_piped_says_each_epoch_on_stderr(tmp_path, data_dir):
    text = tmp_path / "corpus.txt"
    text.write_text("To be, or not to be, that is the question. " * 200)
    done = subprocess.run([sys.executable, "-m", "rnnedge.cli", "train", "charlm", "--out",
                           str(tmp_path / "run"), "--text", str(text), "--epochs", "2",
                           "--hidden-size", "8", "--embed-dim", "4", "--num-layers", "1",
                           "--batch-size", "4", "--num-steps", "20", "--device", "cpu"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    ends = [line.split(":")[0] for line in done.stderr.splitlines()
            if line.startswith("epoch ") and line.split()[2].split("/")[0] == line.split()[2].split("/")[1]]
    assert ends == ["epoch 1/2", "epoch 2/2"], done.stderr  # one line per finished epoch, at least
