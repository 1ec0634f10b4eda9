"""The README and the documents beside it cannot rot: their links, commands and code.

Reads ``README.md``, ``benchmarks/README.md`` and ``docs/*.md`` and checks that every
relative link points to a file that exists (and a ``#heading`` to a heading in it), that
every ``rnnedge ...`` line of a bash block names a command of the typer app with options
that command has, that every python block compiles, and that no internal work-item number
or work-session date is left in them. Needs neither torch nor data: importing the command
line imports no torch (its commands import what they need when they run).
"""

import re
import shlex
from collections import Counter
from pathlib import Path

import pytest
import typer

import rnnedge.cli  # noqa: F401  (importing the package registers every command on ``app``)
from rnnedge.cli.app import app

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", ROOT / "benchmarks" / "README.md",
             *sorted((ROOT / "docs").glob("*.md"))]


FENCE = re.compile(r"^\s*```\s*(\w*)")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//")
WORK_ITEMS = re.compile(r"\bissue[\s-]*\d+|\bstop\s+\d+|\b20\d\d-\d\d-\d\d\b", re.IGNORECASE)


def ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


def split(path):
    """(prose lines, code blocks) of a markdown file: prose as (line number, text), each
    block as (language, first line number, its lines)."""
    prose, blocks, block = [], [], None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fence = FENCE.match(line)
        if block is None and fence:
            block = (fence.group(1).lower(), number + 1, [])
        elif block is not None and line.strip().startswith("```"):
            blocks.append(block)
            block = None
        elif block is not None:
            block[2].append(line)
        else:
            prose.append((number, line))
    assert block is None, f"{path.name}: a code block opened at line {block[1] - 1} never closes"
    return prose, blocks


def anchors(path):
    """The #fragments GitHub gives the headings of a markdown file."""
    seen, found = Counter(), set()
    for _, line in split(path)[0]:
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-")
            found.add(slug if not seen[slug] else f"{slug}-{seen[slug]}")
            seen[slug] += 1
    return found


@pytest.mark.parametrize("doc", DOCUMENTS, ids=ids(DOCUMENTS))
def test_every_relative_link_points_to_a_file_that_exists(doc):
    broken = []
    for number, line in split(doc)[0]:
        for target in LINK.findall(re.sub(r"`[^`]*`", "", line)):
            if SCHEME.match(target):
                continue
            name, _, fragment = target.partition("#")
            path = (doc.parent / name).resolve() if name else doc
            if not path.exists():
                broken.append(f"line {number}: {target} (no {path})")
            elif fragment and path.suffix == ".md" and fragment not in anchors(path):
                broken.append(f"line {number}: {target} (no heading #{fragment} in {path.name})")
    assert not broken, f"{doc.name}: broken links:\n" + "\n".join(broken)


def bash_lines(doc):
    """(line number, text) of each logical line of the bash blocks, continuations joined."""
    for language, first, lines in split(doc)[1]:
        if language in ("bash", "sh", "shell", "console"):
            yield from logical_lines(lines, first)


def logical_lines(lines, first):
    """(line number, text) of each line of one block, ``\\`` continuations joined."""
    text, start = "", None
    for number, line in enumerate(lines, first):
        start = number if start is None else start
        if line.rstrip().endswith("\\"):
            text += line.rstrip()[:-1] + " "
            continue
        yield start, text + line
        text, start = "", None


def rnnedge_calls(line):
    """The arguments after `rnnedge` (or `-m rnnedge.cli`) of each command on a shell line."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars="|&;")
    lexer.whitespace_split, lexer.commenters = True, "#"
    command = []
    for token in [*lexer, ";"]:
        if token and set(token) <= set("|&;"):
            words = [w for w in command if not re.match(r"^\w+=", w)] if command else []
            if words and Path(words[0]).name == "rnnedge":
                yield words[1:]
            elif "rnnedge.cli" in words and words.index("rnnedge.cli") > 0 \
                    and words[words.index("rnnedge.cli") - 1] == "-m":
                yield words[words.index("rnnedge.cli") + 1:]
            command = []
        else:
            command.append(token)


def options(command):
    return {"--help", *(o for p in command.params for o in (*p.opts, *p.secondary_opts))}


def check_call(args):
    """What is wrong with `rnnedge ARGS` against the command line, or None."""
    command, path = typer.main.get_command(app), ["rnnedge"]
    while hasattr(command, "commands"):  # a group: the next word names one of its commands
        if args and args[0].startswith("-") and args[0].split("=")[0] in options(command):
            return None  # the group's own option (``rnnedge --version``)
        if not args or args[0] not in command.commands:
            word = args[0] if args else "(nothing)"
            return f"{' '.join(path)} has no command {word}; it has {', '.join(sorted(command.commands))}"
        path.append(args[0])
        command, args = command.commands[args[0]], args[1:]
    unknown = [a for a in (a.split("=")[0] for a in args if a.startswith("--"))
               if a not in options(command)]
    if unknown:
        return f"{' '.join(path)} has no option {', '.join(unknown)}"
    return None


@pytest.mark.parametrize("doc", DOCUMENTS, ids=ids(DOCUMENTS))
def test_every_rnnedge_line_names_a_command_and_options_that_exist(doc):
    wrong, calls = [], 0
    for number, line in bash_lines(doc):
        for args in rnnedge_calls(line):
            calls += 1
            problem = check_call(args)
            if problem:
                wrong.append(f"line {number}: {problem}\n    {line.strip()}")
    assert not wrong, f"{doc.name}:\n" + "\n".join(wrong)
    if doc.name == "README.md" and doc.parent == ROOT:
        assert calls >= 20, f"only {calls} rnnedge lines found in the README's bash blocks"


def test_the_command_check_catches_what_it_should():
    assert check_call(["bench", "m.onnx", "--checkpoint", "c.pt"]) is None
    assert check_call(["--version"]) is None and "no command --nope" in check_call(["--nope"])
    assert "no command" in check_call(["benchmark", "m.onnx"])
    assert "no command" in check_call(["train", "poems"])
    assert "no option --nope" in check_call(["generate", "m.onnx", "--nope=3"])
    assert list(rnnedge_calls('echo "a | b" | OMP=1 .venv/bin/rnnedge classify m --json  # x')) \
        == [["classify", "m", "--json"]]


@pytest.mark.parametrize("doc", DOCUMENTS, ids=ids(DOCUMENTS))
def test_every_python_block_compiles(doc):
    for language, first, lines in split(doc)[1]:
        if language in ("python", "py"):
            compile("\n".join(lines) + "\n", f"{doc.name}:{first}", "exec")


@pytest.mark.parametrize("doc", DOCUMENTS, ids=ids(DOCUMENTS))
def test_no_work_item_numbers_or_session_dates(doc):
    found = [f"line {n}: {m.group(0)!r}"
             for n, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1)
             for m in WORK_ITEMS.finditer(line)]
    assert not found, f"{doc.name}: internal work items or dates a user cannot place: {found}"
