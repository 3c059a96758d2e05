"""A real text-classification task on every machine, without a download: docstrings of the Python standard library
labelled by the topic of the module they document.

Text people wrote (the first paragraph of every module, class and function docstring, whitespace collapsed, at least
four words, each text once), read with `ast` from the standard library's own source files (no import of them), in
five topics of whole modules and packages (tests and GUI code left out). A seeded draw of `--per_topic` texts per
topic goes into one CSV (`text`, `label`); the sweep splits it 80/20, stratified, with its --seed.

The texts depend on the Python version (the standard library's docstrings change between releases): the CSV's
sidecar JSON records the version, the count per topic and a SHA-256 of the file.

    python experiments/stdlib_docstrings.py --output stdlib_docstrings.csv [--per_topic 400 --seed 0]
"""

import argparse
import ast
import csv
import hashlib
import json
import platform
import sysconfig
from pathlib import Path

import numpy as np


# topic -> the standard library's modules and packages whose docstrings it holds.
TOPICS = {
    "concurrency": [
        "asyncio",
        "concurrent",
        "multiprocessing",
        "threading",
        "queue",
        "sched",
        "selectors",
        "subprocess",
    ],
    "internet": [
        "email",
        "http",
        "urllib",
        "wsgiref",
        "smtplib",
        "imaplib",
        "poplib",
        "ftplib",
        "mailbox",
        "mimetypes",
        "socketserver",
        "xmlrpc",
    ],
    "file_formats": [
        "xml",
        "json",
        "html",
        "csv",
        "configparser",
        "tomllib",
        "plistlib",
        "zipfile",
        "tarfile",
        "gzip",
        "bz2",
        "lzma",
        "base64",
        "quopri",
    ],
    "code_and_imports": [
        "importlib",
        "pkgutil",
        "zipimport",
        "modulefinder",
        "runpy",
        "venv",
        "sysconfig",
        "site",
        "py_compile",
        "compileall",
        "zipapp",
        "inspect",
        "pydoc",
        "pyclbr",
        "symtable",
        "dis",
        "ast",
        "tokenize",
    ],
    "testing_and_debugging": [
        "unittest",
        "doctest",
        "pdb",
        "bdb",
        "logging",
        "trace",
        "traceback",
        "cProfile",
        "profile",
        "pstats",
        "timeit",
        "tracemalloc",
        "code",
        "codeop",
    ],
}
MIN_WORDS = 4


def _source_files(stdlib: Path, name: str) -> list[Path]:
    """The .py files of module or package `name` (a package's tests left out), sorted."""
    package = stdlib / name
    if package.is_dir():
        return sorted(f for f in package.rglob("*.py") if not {"test", "tests", "idle_test"} & set(f.parts))
    module = stdlib / f"{name}.py"
    return [module] if module.is_file() else []


def docstrings(path: Path) -> list[str]:
    """The first paragraph of every module, class and function docstring of the source file `path`, whitespace
    collapsed, in source order; those under `MIN_WORDS` words left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    texts = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            docstring = ast.get_docstring(node)
            if docstring:
                paragraph = " ".join(docstring.strip().split("\n\n")[0].split())
                if len(paragraph.split()) >= MIN_WORDS:
                    texts.append(paragraph)
    return texts


def topic_texts(stdlib: Path | None = None) -> dict[str, list[str]]:
    """topic -> its distinct texts, in a fixed order; a text found under two topics is left out of both."""
    stdlib = Path(stdlib or sysconfig.get_paths()["stdlib"])
    found = {}
    for topic, names in TOPICS.items():
        texts = dict.fromkeys(
            text for name in names for path in _source_files(stdlib, name) for text in docstrings(path)
        )
        found[topic] = list(texts)
    seen: dict[str, int] = {}
    for texts in found.values():
        for text in texts:
            seen[text] = seen.get(text, 0) + 1
    return {topic: [text for text in texts if seen[text] == 1] for topic, texts in found.items()}


def build(output: str | Path, per_topic: int = 400, seed: int = 0) -> dict:
    """Write `per_topic` texts of every topic (a seeded draw, then shuffled together) as CSV `output`; returns (and
    writes beside it, as OUTPUT.json) what it holds: Python version, counts, SHA-256."""
    output = Path(output)
    texts = topic_texts()
    short = {topic: len(found) for topic, found in texts.items() if len(found) < per_topic}
    if short:
        raise ValueError(
            f"per_topic={per_topic}: these topics have fewer texts on Python {platform.python_version()}: {short}."
        )
    rng = np.random.default_rng(seed)
    rows = [
        (texts[topic][i], topic)
        for topic in TOPICS
        for i in sorted(rng.choice(len(texts[topic]), per_topic, replace=False))
    ]
    rows = [rows[i] for i in rng.permutation(len(rows))]
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    info = {
        "python": platform.python_version(),
        "per_topic": per_topic,
        "seed": seed,
        "available": {topic: len(found) for topic, found in texts.items()},
        "sha256": hashlib.sha256(output.read_bytes()).hexdigest(),
    }
    output.with_suffix(".json").write_text(json.dumps(info, indent=1) + "\n")
    return info


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="stdlib_docstrings.csv", help="the CSV to write (text, label)")
    parser.add_argument("--per_topic", type=int, default=400, help="texts per topic")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draw and the order")
    args = parser.parse_args(argv)
    info = build(args.output, args.per_topic, args.seed)
    print(
        f"wrote {args.output}: {args.per_topic} texts of each of {len(TOPICS)} topics (Python {info['python']}, "
        f"available {info['available']}), sha256 {info['sha256'][:12]}"
    )


if __name__ == "__main__":
    main()
