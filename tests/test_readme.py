"""Every example in README.md and docs/*.md runs, and every public function shows an example.

How the blocks are run
----------------------
* README.md and every ``docs/*.md`` page are read by :mod:`markdown_blocks` (the parser that
  ``.ci/run`` uses for the Quick start too) and run the same way.
* Each fenced block is found by its language tag. ``python`` blocks and shell blocks
  (``sh``, ``bash``, ``shell``) run; ``text`` blocks (output, listings) do not. A fence without a
  language fails :func:`test_every_block_names_its_language`, so nothing escapes by omission.
* A ``python`` block is a complete program: it is written to ``example.py`` in a fresh temporary
  directory and run there as ``python example.py`` in a subprocess, exactly as a user who saves it
  would run it (``__name__ == "__main__"``, so ``if __name__ == "__main__":`` guards are exercised).
* A shell block runs with ``bash -e -o pipefail`` in a temporary directory that mirrors the
  repository: symlinks to its top-level entries, except ``docs/``, which is copied so that
  commands writing figures there never touch the checkout. ``python``/``python3`` on ``PATH`` are
  this interpreter, and each ``[project.scripts]`` command of ``pyproject.toml`` has a shim, as
  after ``pip install``.
* Both run with the repository root on ``PYTHONPATH``, ``XPNN_DATA_DIR`` from the ``data_dir``
  fixture (so they are skipped with it, or fail under ``XPNN_REQUIRE_DATA=1``), ``XPNN_OFFLINE=1``
  (no download can happen), ``MPLBACKEND=Agg`` and no ``XPNN_BACKEND``.
* A block that names an optional library (torch, jax, dask, ndonnx, onnx, plots: see
  :data:`NEEDS`) is skipped where that library is not installed, unless ``XPNN_TEST_REQUIRE``
  lists it (CI installs them all).
* GPU to CPU: before running, every block goes through :data:`SUBSTITUTIONS`, a short, explicit
  list of textual replacements (``"cuda"`` devices become ``"cpu"``, ``cupy`` becomes ``numpy``);
  the test prints nothing about it unless the block fails, when the substituted source is shown.
* Markers, an HTML comment alone on the line right before the opening fence (invisible on GitHub):

  - ``<!-- readme-test: skip (REASON) -->``: not run, reported as skipped with REASON. Only for
    what cannot run in a test: installing packages, the internet, a GPU that the substitutions
    cannot replace, or running the whole test suite from inside itself.
  - ``<!-- readme-test: exit N -->``: the block must stop with status N (for examples of errors).

  Any other ``readme-test`` comment is an error.

New sections and new ``docs/*.md`` pages are covered without changing this file. Docstring
examples are run by pytest's ``--doctest-modules`` (``testpaths`` includes ``xpnn``);
:func:`test_public_api_has_examples` checks that every public function and class has one.
``scripts/`` is not collected for doctests (importing a script module is not free of side
effects); instead its docstrings must hold no ``>>>`` examples, and every script's ``--help``
must run.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from markdown_blocks import MARKER, QUICK_START, Block, parse_blocks, quick_start

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
TIMEOUT_S = 600

PYTHON_LANGS = {"python", "py"}
SHELL_LANGS = {"sh", "bash", "shell"}
INERT_LANGS = {"text"}

# (pattern, replacement, why): applied in order to every block before it runs.
SUBSTITUTIONS: tuple[tuple[str, str, str], ...] = (
    (r"""(["'])cuda(?::\d+)?\1""", r"\1cpu\1", 'a "cuda" device in Python runs on "cpu"'),
    (r"--device[ =]cuda(?::\d+)?\b", "--device cpu", "--device cuda runs on the CPU"),
    (r"\bXPNN_BACKEND=cupy\b", "XPNN_BACKEND=numpy", "cupy runs as numpy"),
    (r"--backend[ =]cupy\b", "--backend numpy", "cupy runs as numpy"),
    (r"""backend=(["'])cupy\1""", r"backend=\1numpy\1", "cupy runs as numpy"),
    (r"^(\s*)import cupy\b", r"\1import numpy as cupy", "cupy runs as numpy"),
)

# Optional libraries a block needs, recognised by words in its source: (pattern, module, extra).
# A missing one skips the block, unless its extra is listed in XPNN_TEST_REQUIRE.
NEEDS: tuple[tuple[str, str, str], ...] = (
    (r"\btorch\b", "torch", "torch"),
    (r"\bjax\b", "jax", "jax"),
    (r"\bdask\b|\bdistributed\b", "distributed", "dask"),
    (r"\barray_api_strict\b", "array_api_strict", "strict"),
    (r"\bndonnx\b", "ndonnx", "onnx"),
    (r"\bonnx(runtime)?\b|export_onnx|export-onnx", "onnxruntime", "onnx"),
    (r"\bsklearn\b", "sklearn", "test-onnx"),
    (r"\bskl2onnx\b", "skl2onnx", "test-onnx"),
    (r"\bplot\b|plot_activations|plot-activations|show_mnist|show-mnist", "matplotlib", "plot"),
)

SKIP = re.compile(r"skip \((?P<reason>.+)\)")
EXIT = re.compile(r"exit (?P<status>\d+)")


def substitute(source: str) -> str:
    """Apply :data:`SUBSTITUTIONS` (GPU to CPU) to a block's source."""
    for pattern, replacement, _why in SUBSTITUTIONS:
        source = re.sub(pattern, replacement, source, flags=re.MULTILINE)
    return source


def _blocks(path: Path) -> list[Block]:
    return parse_blocks(path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix())


BLOCKS = [block for page in PAGES for block in _blocks(page)]
RUNNABLE = [b for b in BLOCKS if b.lang in PYTHON_LANGS | SHELL_LANGS]


def expected_status(block: Block) -> int:
    """0, or the status an ``exit N`` marker asks for; skip or fail on other markers."""
    if block.marker is None:
        return 0
    skip = SKIP.fullmatch(block.marker)
    if skip:
        pytest.skip(f"{block.file} line {block.line}: {skip['reason']}")
    status = EXIT.fullmatch(block.marker)
    if status:
        return int(status["status"])
    pytest.fail(
        f"{block.file} line {block.line - 1}: unknown marker {block.marker!r}; "
        "use 'skip (reason)' or 'exit N'"
    )


def require_libraries(source: str, where: str = "the block") -> None:
    """Skip (or fail, if required) when a library the block names is not installed."""
    required = {v.strip() for v in os.environ.get("XPNN_TEST_REQUIRE", "").split(",")}
    for pattern, module, key in NEEDS:
        if re.search(pattern, source) and importlib.util.find_spec(module) is None:
            if key in required:
                pytest.fail(f"{where} needs {module} ({key} is required), not installed")
            pytest.skip(f"{where} needs {module}: pip install -e '.[{key}]'")


def _environment(data_dir: str, bin_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("XPNN_BACKEND", None)
    python_path = [str(ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env.update(
        PYTHONPATH=os.pathsep.join(python_path),
        XPNN_DATA_DIR=data_dir,
        XPNN_OFFLINE="1",
        MPLBACKEND="Agg",
        PATH=os.pathsep.join([str(bin_dir), env.get("PATH", "")]),
    )
    return env


def _console_scripts() -> dict[str, str]:
    """``[project.scripts]`` of pyproject.toml: command name -> ``module:function``."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomli = pytest.importorskip("tomli", reason="reading pyproject.toml needs Python 3.11")
        loads = tomli.loads
    else:
        loads = tomllib.loads
    project = loads((ROOT / "pyproject.toml").read_text(encoding="utf-8")).get("project", {})
    return dict(project.get("scripts", {}))


def _make_bin(bin_dir: Path) -> None:
    """``python``, ``python3`` and every console script, as after ``pip install``."""
    bin_dir.mkdir()
    for name in ("python", "python3"):
        path = bin_dir / name
        path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n', encoding="utf-8")
        path.chmod(0o755)
    for name, target in _console_scripts().items():
        module, _, function = target.partition(":")
        path = bin_dir / name
        path.write_text(
            f"#!{sys.executable}\nimport sys\nfrom {module} import {function}\n"
            f"sys.argv[0] = {name!r}\nsys.exit({function}())\n",
            encoding="utf-8",
        )
        path.chmod(0o755)


def _mirror(into: Path) -> None:
    """Symlink the repository's top-level entries into ``into``; copy ``docs/``."""
    for entry in ROOT.iterdir():
        if entry.name in (".git", "docs"):
            continue
        (into / entry.name).symlink_to(entry)
    if (ROOT / "docs").is_dir():
        shutil.copytree(ROOT / "docs", into / "docs")


def _report(block: Block, source: str, out: subprocess.CompletedProcess[str]) -> str:
    numbered = "\n".join(f"{n:4} | {line}" for n, line in enumerate(source.splitlines(), 1))
    return (
        f"{block.file} block at line {block.line} ({block.lang}) exited {out.returncode}.\n"
        f"Source as run (after GPU-to-CPU substitutions):\n{numbered}\n"
        f"--- stdout (tail)\n{out.stdout[-3000:]}\n--- stderr (tail)\n{out.stderr[-3000:]}"
    )


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.id for b in RUNNABLE])
def test_readme_block_runs(block: Block, data_dir: str, tmp_path: Path) -> None:
    status = expected_status(block)
    source = substitute(block.source)
    require_libraries(source, f"{block.file} line {block.line}")
    bin_dir = tmp_path / "bin"
    _make_bin(bin_dir)
    env = _environment(data_dir, bin_dir)
    work = tmp_path / "work"
    work.mkdir()
    if block.lang in PYTHON_LANGS:
        script = work / "example.py"
        script.write_text(source, encoding="utf-8")
        command = [sys.executable, script.name]
    else:
        _mirror(work)
        command = ["bash", "-e", "-o", "pipefail", "-c", source]
    out = subprocess.run(
        command,
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert out.returncode == status, _report(block, source, out)


def test_readme_has_runnable_blocks() -> None:
    langs = {b.lang for b in RUNNABLE if b.file == "README.md"}
    assert langs & PYTHON_LANGS, "README.md has no python block"
    assert langs & SHELL_LANGS, "README.md has no shell block"


def test_every_block_names_its_language() -> None:
    known = PYTHON_LANGS | SHELL_LANGS | INERT_LANGS
    unknown = [(b.file, b.line, b.lang) for b in BLOCKS if b.lang not in known]
    assert not unknown, (
        f"blocks (file, line, language) {unknown}: tag each fence with one of {sorted(known)}"
    )


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_markers_sit_on_a_block(page: Path) -> None:
    """A readme-test comment that is malformed or not right above a fence would be ignored."""
    lines = page.read_text(encoding="utf-8").splitlines()
    fence_lines = {b.line for b in _blocks(page)}
    comments = [
        (n + 1, line.strip())
        for n, line in enumerate(lines)
        if line.strip().startswith("<!--") and "readme-test" in line
    ]
    malformed = [n for n, line in comments if not MARKER.match(line)]
    stray = [n for n, _ in comments if n + 1 not in fence_lines]
    assert not malformed, f"{page.name} lines {malformed}: write <!-- readme-test: ... --> alone"
    assert not stray, f"{page.name} lines {stray}: readme-test marker not right above a fence"


def test_readme_is_short_and_links_every_page() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250, "README.md: at most 250 lines; move detail to docs/"
    unlinked = [p.name for p in PAGES[1:] if f"(docs/{p.name})" not in text]
    assert not unlinked, f"docs pages the README does not link to: {unlinked}"
    first_screen = "\n".join(text.splitlines()[:60])
    for name in ("step_function", "init_network", "get_data", "docs/chapter3.ipynb"):
        assert name in text, name
    assert "docs/chapter3.ipynb" in first_screen or "## The book's names" in first_screen


def test_ci_runs_the_quick_start_block_as_printed() -> None:
    """.ci/run takes the Quick start through quick_start(), never a copy of the commands."""
    commands = quick_start(README.read_text(encoding="utf-8"))
    (block,) = [b for b in _blocks(README) if b.section == QUICK_START and b.lang in SHELL_LANGS]
    assert commands == block.source
    lines = [line for line in commands.splitlines() if line.strip()]
    assert any("pip install -e '.[data,test,plot]'" in line for line in lines), lines
    assert any("xpnn eval" in line for line in lines), lines
    assert any("-m pytest" in line for line in lines), lines
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "tests/markdown_blocks.py quick-start README.md" in ci
    copied = [line for line in lines if line.strip() in ci]
    assert not copied, f".ci/run copies Quick start lines instead of reading them: {copied}"


def test_quick_start_extraction_fails_without_the_section() -> None:
    assert quick_start("# x\n\n## Quick start\n\n```sh\necho hi\n```\n") == "echo hi\n"
    with pytest.raises(ValueError, match="Quick start"):
        quick_start("# x\n\n## Usage\n\n```sh\necho hi\n```\n")


def test_parser_and_substitutions() -> None:
    text = (
        "# Top\n\n## A section\n<!-- readme-test: skip (needs a GPU) -->\n"
        '```python\nnet.to("torch", "cuda:1")\nimport cupy\n```\n'
        "- item\n\n  ```sh\n  XPNN_BACKEND=cupy python x.py --device cuda\n  ```\n"
    )
    first, second = parse_blocks(text)
    assert (first.lang, first.line, first.section, first.marker) == (
        "python",
        5,
        "a-section",
        "skip (needs a GPU)",
    )
    assert substitute(first.source) == 'net.to("torch", "cpu")\nimport numpy as cupy\n'
    assert (second.lang, second.marker) == ("sh", None)
    assert substitute(second.source) == "XPNN_BACKEND=numpy python x.py --device cpu\n"
    assert expected_status(Block("sh", "false\n", 9, "s", "exit 2")) == 2
    assert expected_status(Block("sh", "true\n", 9, "s", None)) == 0
    with pytest.raises(pytest.skip.Exception, match=r"^docs/x.md line 9: why$"):
        expected_status(Block("sh", "true\n", 9, "s", "skip (why)", "docs/x.md"))
    with pytest.raises(ValueError, match="never closed"):
        parse_blocks("```python\nx = 1\n")


def test_missing_library_skips_or_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        sys.modules[__name__], "NEEDS", (("nosuchlib", "xpnn_no_such_module", "nosuch"),)
    )
    require_libraries("print('no library named')\n")  # not named: runs
    monkeypatch.setenv("XPNN_TEST_REQUIRE", "numpy")
    with pytest.raises(pytest.skip.Exception, match="needs xpnn_no_such_module"):
        require_libraries("import nosuchlib\n")
    monkeypatch.setenv("XPNN_TEST_REQUIRE", "numpy,nosuch")
    with pytest.raises(pytest.fail.Exception, match="nosuch is required"):
        require_libraries("import nosuchlib\n")


# --- docstring examples ---------------------------------------------------------------------

# Public names that had no example when this check was introduced. The list may only shrink:
# a name that gains an example must be removed from it, and new public names need an example.
KNOWN_WITHOUT_EXAMPLE = frozenset(
    {
        # Commands: they need the data set or write files; tests/test_cli.py runs them.
        "xpnn.cli.evaluate.run",
        "xpnn.distributed.mnist_dask",
        "xpnn.download.RemoteFile",
        "xpnn.download.ensure_files",
        "xpnn.mnist.load_mnist",
        "xpnn.mnist.load_mnist_labels",
        "xpnn.mnist.load_mnist_split",
        "xpnn.plot.confusion_matrix_figure",
        "xpnn.plot.digits_figure",
        "xpnn.plot.misclassified_figure",
        "xpnn.report.score_matrix",
        "xpnn.safe_pickle.load_weight_pickle",
        "xpnn.weights.pretrained_network",
        "xpnn.weights.save_weights",
    }
)


def _public_modules() -> list[str]:
    import xpnn

    names = ["xpnn"]
    for info in pkgutil.walk_packages(xpnn.__path__, "xpnn."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


@pytest.mark.parametrize("module_name", _public_modules())
def test_public_api_has_examples(module_name: str) -> None:
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        pytest.skip(f"{module_name} cannot be imported here: {err}")
    missing, stale = [], []
    for attr in getattr(module, "__all__", ()):
        obj = getattr(module, attr)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        if obj.__module__ != module_name or (
            inspect.isclass(obj) and issubclass(obj, BaseException)
        ):
            continue  # re-exports are checked where defined; exceptions need no example
        name = f"{module_name}.{attr}"
        has_example = ">>>" in (inspect.getdoc(obj) or "")
        if not has_example and name not in KNOWN_WITHOUT_EXAMPLE:
            missing.append(name)
        if has_example and name in KNOWN_WITHOUT_EXAMPLE:
            stale.append(name)
    assert not missing, f"public names without an Examples section (>>>): {missing}"
    assert not stale, f"these now have examples: remove them from KNOWN_WITHOUT_EXAMPLE: {stale}"


def test_doctests_that_need_a_missing_library_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    """conftest reads what an example needs from its imports and the backends it names."""
    conftest = sys.modules["conftest"]
    source = "import dask.array as da\nxpnn.namespace('torch')\nf(backend=\"jax\")\n"
    source += "xpnn.namespace('nunpy')\nfrom numpy import asarray\n"
    assert conftest.doctest_needs(source) == ["dask", "torch", "jax", "numpy"]
    assert conftest.doctest_needs("import numpy\n", "export.py")[1:] == ["onnx", "onnxruntime"]
    monkeypatch.delenv("XPNN_TEST_REQUIRE", raising=False)
    assert conftest.missing_for_doctest("import numpy\n") is None
    reason = conftest.missing_for_doctest("import numpy\nimport xpnn_no_such_module\n")
    assert reason == "needs xpnn_no_such_module: pip install -e '.[xpnn_no_such_module]'"
    monkeypatch.setenv("XPNN_TEST_REQUIRE", "xpnn_no_such_module")  # required: runs and fails
    assert conftest.missing_for_doctest("import xpnn_no_such_module\n") is None


SCRIPTS = sorted((ROOT / "scripts").glob("*.py"))


def test_scripts_hold_no_uncollected_doctests() -> None:
    """scripts/ is not collected by --doctest-modules, so a >>> example there would never run."""
    offenders = [p.name for p in SCRIPTS if ">>>" in p.read_text(encoding="utf-8")]
    assert not offenders, f"{offenders}: move the >>> examples into the package or a test"


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_script_help_runs(script: Path, tmp_path: Path) -> None:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    out = subprocess.run(
        [sys.executable, str(script), "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage:" in out.stdout.lower(), out.stdout[-2000:]
