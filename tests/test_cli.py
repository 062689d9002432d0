"""The ``xpnn`` command (``python -m xpnn``): subcommands, help, and the one-line error rule."""

from __future__ import annotations

import ast
import contextlib
import itertools
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from optional import import_or_skip

import xpnn
from xpnn import cli

ROOT = Path(__file__).resolve().parent.parent


def run_xpnn(*args, env=None, cwd="/", stdout=subprocess.PIPE, timeout=300):
    """Run ``python -m xpnn ARGS`` in a fresh process from ``cwd`` (default ``/``)."""
    environ = {**os.environ, **(env or {})}
    environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), environ.get("PYTHONPATH", "")) if p
    )
    return subprocess.run(
        [sys.executable, "-m", "xpnn", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env=environ,
        cwd=cwd,
        timeout=timeout,
    )


def one_line_exit_2(out, *parts):
    """Assert the error rule: status 2, one line on stderr naming ``parts``, no traceback."""
    assert out.returncode == 2, (out.returncode, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in out.stderr
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]


# -- the command itself ----------------------------------------------------------


@pytest.mark.parametrize("args", [[], ["frobnicate"]], ids=["none", "unknown"])
def test_no_or_unknown_command_prints_usage_exit_2(args):
    out = run_xpnn(*args)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("usage: python -m xpnn")
    assert "Traceback" not in out.stderr
    if args:
        assert "invalid choice: 'frobnicate'" in out.stderr


def test_help_lists_every_command():
    out = run_xpnn("--help")
    assert out.returncode == 0
    for command in cli.COMMANDS:
        assert command.name in out.stdout and command.summary.split()[0] in out.stdout


def test_main_in_process_returns_the_status(data_dir, capsys):
    assert cli.main(["eval", "--quiet", "--data-dir", data_dir]) == 0
    assert capsys.readouterr().out == "accuracy: 0.9352 (9352/10000)\n"
    assert cli.main(["eval", "--backend", "nunpy"]) == 2
    assert cli.main([]) == 2


def _eval_parser():
    parser = cli._build_parser("xpnn")
    (commands,) = [a for a in parser._actions if a.dest == "command"]
    return commands.choices["eval"]


def test_eval_help_gives_every_default():
    options = [a for a in _eval_parser()._actions if a.dest != "help"]
    assert {a.dest for a in options} >= {
        "backend", "device", "dtype", "batch_size", "data_dir", "weights",
        "json", "quiet", "scheduler", "workers", "plot",
    }  # fmt: skip
    for action in options:
        assert "(default: " in action.help, action.option_strings
    text = _eval_parser().format_help()
    assert "(default: 100, as in the chapter)" in " ".join(text.split())
    flat = " ".join(text.split())
    # The data directory's fallback order, in order.
    assert flat.index("--data-dir DIR") < flat.index("$XPNN_DATA_DIR") < flat.index("~/.cache/xpnn")


def test_the_readme_lists_every_eval_option():
    readme = (ROOT / "docs" / "cli.md").read_text()  # the options table moved from the README
    for action in _eval_parser()._actions:
        for option in action.option_strings:
            if option.startswith("--") and option != "--help":
                assert f"`{option}" in readme, option


def test_nothing_shipped_imports_tests_or_edits_the_path():
    files = [*sorted((ROOT / "xpnn").rglob("*.py"))]
    files += sorted((ROOT / "scripts").glob("*.py"))
    test_modules = {p.stem for p in (ROOT / "tests").glob("*.py")} | {"tests", "conftest"}
    for path in files:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                names = []
            for name in names:
                assert name.split(".")[0] not in test_modules, f"{path}: imports {name}"
            if isinstance(node, ast.Attribute) and node.attr == "path":
                assert not (isinstance(node.value, ast.Name) and node.value.id == "sys"), (
                    f"{path}:{node.lineno} touches sys.path"
                )


# -- weights that do not fit MNIST -------------------------------------------------


def _save_layers(path, sizes):
    rng = np.random.default_rng(0)
    arrays = {}
    for i, (rows, cols) in enumerate(itertools.pairwise(sizes), start=1):
        arrays[f"W{i}"] = rng.standard_normal((rows, cols)).astype(np.float32)
        arrays[f"b{i}"] = np.zeros(cols, np.float32)
    np.savez(path, **arrays)
    return str(path)


@pytest.mark.parametrize(
    ("sizes", "described"),
    [([100, 50, 10], "100-50-10"), ([784, 50, 20], "784-50-20"), ([784, 0, 10], "")],
    ids=["100-inputs", "20-outputs", "empty-layer"],
)
def test_weights_that_do_not_fit_mnist(sizes, described, data_dir, tmp_path):
    weights = _save_layers(tmp_path / "w.npz", sizes)
    out = run_xpnn("eval", "--data-dir", data_dir, "--weights", weights)
    line = one_line_exit_2(out, weights)
    if described:  # what was expected, and what the file has
        assert "784 inputs" in line and "10 outputs" in line and described in line


def test_weights_that_fit_are_scored(data_dir, tmp_path):
    weights = _save_layers(tmp_path / "w.npz", [784, 30, 10])
    out = run_xpnn("eval", "--json", "--data-dir", data_dir, "--weights", weights)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["n"] == 10000


# -- output paths, checked before any work ----------------------------------------------


def _offline_without_data(tmp_path):
    """Options under which evaluating fails at once: proves a check ran before the work."""
    empty = tmp_path / "no-data"
    empty.mkdir()
    return ["--data-dir", str(empty)], {"XPNN_OFFLINE": "1"}


def test_plot_to_a_file_is_refused_before_evaluating(tmp_path):
    import_or_skip("matplotlib", "matplotlib")
    options, env = _offline_without_data(tmp_path)
    target = tmp_path / "figures"
    target.write_text("not a directory")
    for plot in (target, target / "below"):
        out = run_xpnn("eval", *options, "--plot", str(plot), env=env)
        one_line_exit_2(out, "--plot", str(plot), "not a directory")
    assert target.read_text() == "not a directory"


def test_plot_to_an_unwritable_directory_is_refused_before_evaluating(tmp_path):
    import_or_skip("matplotlib", "matplotlib")
    options, env = _offline_without_data(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    if os.access(locked, os.W_OK):  # root writes anyway: sysfs refuses even root
        if not os.path.isdir("/sys/kernel"):
            pytest.skip("running as root and no sysfs: no unwritable directory here")
        target = Path("/sys/kernel/xpnn-figures")
    else:
        target = locked / "figures"
    try:
        out = run_xpnn("eval", *options, "--plot", str(target), env=env)
    finally:
        locked.chmod(0o755)
    one_line_exit_2(out, "--plot", str(target), "cannot write files there")
    assert not target.exists()


def test_failed_run_leaves_no_plot_directory(tmp_path):
    import_or_skip("matplotlib", "matplotlib")
    options, env = _offline_without_data(tmp_path)
    out = run_xpnn("eval", *options, "--plot", str(tmp_path / "new" / "figures"), env=env)
    one_line_exit_2(out, "sample_weight.pkl")
    assert not (tmp_path / "new").exists()


def test_plot_writes_both_figures_and_nothing_else(data_dir, tmp_path):
    import_or_skip("matplotlib", "matplotlib")
    out = run_xpnn("eval", "--quiet", "--data-dir", data_dir, "--plot", str(tmp_path / "f"))
    assert out.returncode == 0, out.stderr
    files = sorted(p.name for p in (tmp_path / "f").iterdir())
    assert files == ["confusion_matrix.png", "misclassified.png"]
    for name in files:
        assert (tmp_path / "f" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("command", ["plot-activations", "show-mnist"])
def test_figure_commands_write_atomically_and_refuse_bad_paths(command, data_dir, tmp_path):
    import_or_skip("matplotlib", "matplotlib")
    out_file = tmp_path / "figure.png"
    out = run_xpnn(command, "--out", str(out_file), env={"XPNN_DATA_DIR": data_dir})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(out_file)
    assert [p.name for p in tmp_path.iterdir()] == ["figure.png"]
    assert out_file.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for bad, message in (
        (tmp_path, "is a directory"),
        (tmp_path / "missing" / "f.png", "no directory"),
        (tmp_path / "figure.xyz", "give a file name ending in one of"),
    ):
        one_line_exit_2(run_xpnn(command, "--out", str(bad)), message)


def test_show_mnist_refuses_a_start_outside_the_test_set():
    one_line_exit_2(
        run_xpnn("show-mnist", "--start", "10000"), "--start: must be an integer in 0..9999"
    )


# -- standard output that goes away ------------------------------------------------------


@pytest.mark.parametrize("args", [["--json"], ["--help"]], ids=["report", "help"])
def test_stdout_closed_early_is_a_quiet_exit(args, data_dir):
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `xpnn eval | true`: the reader is gone before the output
    try:
        out = run_xpnn("eval", *args, "--data-dir", data_dir, stdout=write_end)
    finally:
        os.close(write_end)
    assert out.stderr == ""
    # argparse itself ignores a failed write of the help text; a lost report is status 2.
    assert out.returncode == (0 if "--help" in args else 2)


def test_stdout_on_a_full_disk_is_one_line(data_dir):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    with open("/dev/full", "w") as full:
        out = run_xpnn("eval", "--json", "--data-dir", data_dir, stdout=full)
    one_line_exit_2(out, "cannot write to standard output", "No space left on device")


# -- data directory ------------------------------------------------------------------


def test_empty_data_dir_option_and_variable_mean_the_same(tmp_path):
    home = tmp_path / "home"
    env = {"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "XPNN_OFFLINE": "1"}
    by_variable = run_xpnn("eval", env={**env, "XPNN_DATA_DIR": ""}, cwd=tmp_path)
    environ = {k: v for k, v in os.environ.items() if k != "XPNN_DATA_DIR"}
    by_option = subprocess.run(
        [sys.executable, "-m", "xpnn", "eval", "--data-dir", ""],
        capture_output=True,
        text=True,
        env={**environ, **env, "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
        timeout=300,
    )
    line = one_line_exit_2(by_variable, str(home / ".cache" / "xpnn"))
    assert one_line_exit_2(by_option) == line


def test_data_dir_that_is_a_file_is_one_line(tmp_path):
    a_file = tmp_path / "data"
    a_file.write_text("not a directory")
    # Downloads allowed: the directory is made before anything is fetched.
    out = run_xpnn("eval", "--data-dir", str(a_file), env={"XPNN_OFFLINE": "0"})
    one_line_exit_2(out, str(a_file))


def test_empty_data_dir_option_falls_back_to_the_variable(data_dir):
    out = run_xpnn("eval", "--quiet", "--data-dir", "", env={"XPNN_DATA_DIR": data_dir})
    assert out.returncode == 0, out.stderr
    assert out.stdout == "accuracy: 0.9352 (9352/10000)\n"


# -- dask schedulers that are not there, or not dask -----------------------------------


@contextlib.contextmanager
def fake_service(reply):
    """A TCP service on 127.0.0.1 that accepts and sends ``reply`` (None: says nothing)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()
    accepted = []

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(conn)
            if reply is not None:
                with contextlib.suppress(OSError):
                    conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{server.getsockname()[1]}", accepted
    finally:
        stop.set()
        thread.join()
        server.close()
        for conn in accepted:
            conn.close()


NO_SCHEDULER = "could not connect to the dask scheduler at"

NOT_DASK = {
    "garbage": b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" * 4,
    "huge-length": struct.pack("<Q", 2**62) + b"\0" * 64,  # 4 EiB announced
    "silent": None,
}


@pytest.mark.parametrize("kind", NOT_DASK)
def test_cluster_refuses_a_service_that_is_not_dask(kind):
    import_or_skip("distributed", "dask")
    from xpnn.distributed import cluster

    with fake_service(NOT_DASK[kind]) as (address, accepted):
        with pytest.raises(xpnn.BackendError, match=NO_SCHEDULER) as info:  # noqa: SIM117
            with cluster(address, timeout=1.0):
                pass
        assert accepted, "the client never connected"
    assert "\n" not in str(info.value)
    if kind == "silent":
        assert "no answer within 1 s" in str(info.value)


def test_cluster_accepts_a_scheduler_and_refuses_a_worker():
    distributed = import_or_skip("distributed", "dask")
    from xpnn.distributed import cluster

    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
    ) as local:
        with cluster(local.scheduler_address, timeout=5.0) as client:
            assert client.submit(sum, [1, 2, 3]).result() == 6
        # A worker speaks dask's protocol too, but cannot schedule: a one-line refusal.
        (worker,) = local.scheduler_info["workers"]
        with pytest.raises(xpnn.BackendError, match=NO_SCHEDULER):  # noqa: SIM117
            with cluster(worker, timeout=5.0):
                pass


@pytest.mark.parametrize("kind", ["silent", "huge-length"])
def test_eval_with_a_scheduler_that_is_not_dask_is_one_line(kind, data_dir):
    import_or_skip("distributed", "dask")
    with fake_service(NOT_DASK[kind]) as (address, _):
        out = run_xpnn("eval", "--backend", "dask", "--scheduler", address, "--data-dir", data_dir,
                       timeout=120)  # fmt: skip
    one_line_exit_2(out, NO_SCHEDULER, address)


@pytest.mark.parametrize("scheme", ["tls", "ucx"])
def test_eval_with_unsupported_scheduler_schemes_is_one_line(scheme, data_dir):
    import_or_skip("distributed", "dask")
    address = f"{scheme}://127.0.0.1:1"
    out = run_xpnn("eval", "--backend", "dask", "--scheduler", address, "--data-dir", data_dir)
    one_line_exit_2(out, address, f"{scheme}://")


def test_ctrl_c_with_workers_is_one_line_and_leaves_no_process(data_dir):
    import_or_skip("distributed", "dask")
    psutil = import_or_skip("psutil", "psutil")
    environ = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "xpnn", "eval", "--backend", "dask", "--workers", "2",
         "--data-dir", data_dir],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ, cwd="/",
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )  # fmt: skip
    parent = psutil.Process(process.pid)
    seen = set()
    deadline = time.monotonic() + 120
    try:
        # Press Ctrl-C (to the whole group, as a terminal does) once the workers exist,
        # and again every 0.3 s, as an impatient user does, until the command ends.
        while process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(psutil.Error):
                seen.update(parent.children(recursive=True))
            if len(seen) >= 2:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGINT)
            time.sleep(0.3)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, (process.returncode, err)
    assert err.strip().splitlines() == ["python -m xpnn eval: interrupted"], err
    assert out == ""
    assert len(seen) >= 2
    time.sleep(1)

    def running(p):  # one that exits between the two questions is gone, not alive
        try:
            return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    alive = [p for p in seen if running(p)]
    assert alive == [], [p.pid for p in alive]


def test_notebook_is_stored_without_outputs():
    notebook = json.loads((ROOT / "docs" / "chapter3.ipynb").read_text())
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code, "no code cells"
    for cell in code:
        assert cell["outputs"] == [] and cell["execution_count"] is None


# -- issue 20/18: deadlines, bounds, signals, and every output path checked first -----------


def run_on_terminal(*args, env=None, timeout=300):
    """Run ``python -m xpnn ARGS`` with stderr on a pseudo-terminal; (status, stdout, stderr)."""
    import fcntl
    import pty
    import select
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
    environ = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "xpnn", *args],
        stdout=subprocess.PIPE, stderr=slave, env=environ, cwd="/",
    )  # fmt: skip
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    data = os.read(master, 1 << 16)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif process.poll() is not None:
                break
        out = process.communicate(timeout=max(1, deadline - time.monotonic()))[0]
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)
    return process.returncode, out.decode(), b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize(
    ("options", "shown"),
    [
        ([], "classifying"),
        (["--backend", "onnxruntime"], "classifying"),
        (["--backend", "dask", "--workers", "1"], "computing on 1 dask worker(s)"),
    ],
    ids=["numpy", "onnxruntime", "workers"],
)
def test_progress_shows_on_a_terminal_on_every_path(options, shown, data_dir):
    import_or_skip("tqdm", "tqdm")
    if "onnxruntime" in options:
        import_or_skip("onnxruntime", "onnx")
        import_or_skip("ndonnx", "onnx")
    if "--workers" in options:
        import_or_skip("distributed", "dask")
    code, out, err = run_on_terminal("eval", "--data-dir", data_dir, *options)
    assert code == 0, err
    assert "accuracy: 0.9352" in out
    assert shown in err, err


def test_eval_help_says_how_the_waits_end():
    flat = " ".join(_eval_parser().format_help().split())
    assert "refused after 5 s without a scheduler's answer, or 5 s more without a worker" in flat


def test_a_scheduler_without_workers_is_one_line_in_bounded_time(data_dir):
    distributed = import_or_skip("distributed", "dask")
    with distributed.LocalCluster(
        n_workers=0, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=":0"
    ) as local:
        started = time.monotonic()
        out = run_xpnn("eval", "--backend", "dask", "--scheduler", local.scheduler_address,
                       "--data-dir", data_dir, timeout=60)  # fmt: skip
    one_line_exit_2(out, local.scheduler_address, "has no worker", "dask worker")
    assert time.monotonic() - started < 40


@pytest.mark.parametrize("dpi", ["0", "-3", "9000", "20000", "many"])
@pytest.mark.parametrize("command", ["plot-activations", "show-mnist"])
def test_dpi_outside_its_range_is_refused_up_front(command, dpi, tmp_path):
    out = run_xpnn(command, "--out", str(tmp_path / "f.png"), "--dpi", dpi, timeout=60)
    one_line_exit_2(out, "--dpi", "10..600", dpi)
    assert list(tmp_path.iterdir()) == []


def test_a_plot_file_that_is_a_directory_is_refused_before_evaluating(tmp_path):
    import_or_skip("matplotlib", "matplotlib")
    options, env = _offline_without_data(tmp_path)  # evaluating would fail on the data
    (tmp_path / "figures" / "misclassified.png").mkdir(parents=True)
    out = run_xpnn("eval", *options, "--plot", str(tmp_path / "figures"), env=env)
    one_line_exit_2(out, "misclassified.png", "is a directory")


def test_sigterm_is_one_line_exit_143_and_leaves_no_process(data_dir):
    import_or_skip("distributed", "dask")
    psutil = import_or_skip("psutil", "psutil")
    process = subprocess.Popen(
        [sys.executable, "-m", "xpnn", "eval", "--backend", "dask", "--workers", "2",
         "--data-dir", data_dir],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/",
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    parent, seen = psutil.Process(process.pid), set()
    try:
        deadline = time.monotonic() + 120
        while len(seen) < 2 and process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(psutil.Error):
                seen.update(parent.children(recursive=True))
            time.sleep(0.2)
        process.terminate()  # SIGTERM, as kill, timeout and a container stop send
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, (process.returncode, err)
    assert err.strip().splitlines() == ["python -m xpnn eval: terminated"], err
    assert out == ""
    time.sleep(1)

    def running(p):  # one that exits between the two questions is gone, not alive
        try:
            return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    alive = [p for p in seen if running(p)]
    assert alive == [], [p.pid for p in alive]


def test_sigterm_while_writing_a_figure_leaves_no_temporary(tmp_path, monkeypatch):
    """The command line turns SIGTERM into the exception that atomic_write cleans up after."""
    import_or_skip("matplotlib", "matplotlib")
    from matplotlib.figure import Figure

    def savefig(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the signal arrives first

    monkeypatch.setattr(Figure, "savefig", savefig)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert cli.main(["plot-activations", "--out", str(tmp_path / "a.png")]) == 143
    finally:  # the command ignores further signals on its way out: this process goes on
        for number, handler in handlers.items():
            signal.signal(number, handler)
    assert list(tmp_path.iterdir()) == []


def test_show_mnist_refuses_digits_past_the_end():
    out = run_xpnn("show-mnist", "--start", "9999", "--count", "5")
    one_line_exit_2(out, "--start 9999 --count 5", "9999", "--count at most 1")


def test_ndonnx_is_refused_with_the_alternative(data_dir):
    import_or_skip("ndonnx", "onnx")
    out = run_xpnn("eval", "--backend", "ndonnx", "--data-dir", data_dir, timeout=60)
    one_line_exit_2(out, "ndonnx", "--backend onnxruntime")


def test_missing_data_names_every_file_at_once(tmp_path):
    options, env = _offline_without_data(tmp_path)
    line = one_line_exit_2(run_xpnn("eval", *options, env=env))
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "sample_weight.pkl"):
        assert name in line


def test_onnxruntime_failures_are_one_line(data_dir, tmp_path):
    import_or_skip("onnxruntime", "onnx")
    import_or_skip("ndonnx", "onnx")
    linear = xpnn.Network({"W1": np.zeros((784, 10)), "b1": np.arange(10.0)})
    fixed = str(xpnn.export_onnx(linear, tmp_path / "m.onnx", batch=7))  # 7 rows, never 100
    out = run_xpnn("eval", "--backend", "onnxruntime", "--weights", fixed, "--data-dir", data_dir)
    one_line_exit_2(out)


def test_onnx_models_are_scored_on_every_backend(backend, data_dir, tmp_path):
    import_or_skip("onnx", "onnx")
    model = tmp_path / "book.onnx"
    out = run_xpnn("export-onnx", "--out", str(model), "--data-dir", data_dir)
    assert out.returncode == 0, out.stderr
    out = run_xpnn("eval", "--quiet", "--weights", str(model), "--data-dir", data_dir,
                   "--backend", backend.name, "--device", backend.case.device)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout == "accuracy: 0.9352 (9352/10000)\n"


def test_ctrl_c_while_the_workers_compute_is_one_line(data_dir):
    """Pressed once the command says it is computing: no asyncio traceback before the line."""
    import_or_skip("distributed", "dask")
    import fcntl
    import pty
    import select
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "xpnn", "eval", "--backend", "dask", "--workers", "2",
         "--batch-size", "20", "--data-dir", data_dir],
        stdout=subprocess.PIPE, stderr=slave, cwd="/", start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    os.close(slave)
    err, deadline = b"", time.monotonic() + 120
    try:
        while b"computing" not in err and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                err += os.read(master, 1 << 16)
        assert b"computing on 2 dask worker(s)" in err, err
        time.sleep(1)
        while process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGINT)
            time.sleep(0.3)
            with contextlib.suppress(OSError):
                while select.select([master], [], [], 0)[0]:
                    err += os.read(master, 1 << 16)
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        os.close(master)
    assert process.returncode == 130, (process.returncode, err)
    lines = err.decode(errors="replace").strip().splitlines()
    assert lines[-1].strip() == "python -m xpnn eval: interrupted", lines
    assert "Traceback" not in err.decode(errors="replace"), err
