"""Figures: written as valid, non-blank PNGs whose data is xpnn's own."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import xpnn
from xpnn import plot  # matplotlib is imported on first use; CI installs the plot extra

ROOT = Path(__file__).resolve().parent.parent


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def assert_not_blank(fig) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # headless: render with Agg
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())[..., :3]
    assert pixels.std() > 10, "the figure is blank"
    assert (pixels < 128).mean() > 0.005


def test_activation_figure_plots_xpnn_values(backend, tmp_path):
    fig = plot.activation_figure(backend.name, backend.device)
    sig_line, step_line = fig.axes[0].lines
    relu_line = fig.axes[1].lines[0]
    x = sig_line.get_xdata()
    assert len(x) == 100 and x[0] == -5.0 and x[-1] == pytest.approx(4.9)
    expected_x = np.arange(-5.0, 5.0, 0.1)  # the backend's default float: float32 on torch
    np.testing.assert_allclose(x, expected_x, atol=1e-6)
    np.testing.assert_allclose(sig_line.get_ydata(), 1 / (1 + np.exp(-expected_x)), atol=1e-6)
    np.testing.assert_array_equal(step_line.get_ydata(), (expected_x > 0).astype(int))
    assert step_line.get_linestyle() == "--"
    np.testing.assert_allclose(relu_line.get_ydata(), np.maximum(expected_x, 0), atol=1e-6)
    assert fig.axes[0].get_ylim() == (-0.1, 1.1)
    assert_not_blank(fig)
    path = tmp_path / "a.png"
    fig.savefig(path, dpi=50)
    assert png_size(path) == (450, 180)


def test_digits_figure_marks_wrong_predictions(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(12, 784), dtype=np.uint8)
    labels = np.arange(12) % 10
    predictions = labels.copy()
    predictions[[3, 7]] = 0
    fig = plot.digits_figure(images, labels, predictions, columns=6)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[3] == "3→0" and titles[7] == "7→0" and titles[0] == "0"
    assert [ax.title.get_color() for ax in fig.axes].count("red") == 2
    np.testing.assert_array_equal(fig.axes[5].images[0].get_array(), images[5].reshape(28, 28))
    assert_not_blank(fig)
    fig.savefig(tmp_path / "d.png", dpi=50)
    assert png_size(tmp_path / "d.png") == (450, 180)  # 1.5 in per digit: legible captions


def test_misclassified_grid_shows_exactly_the_mistakes(data_dir):
    network = xpnn.pretrained_network(data_dir=data_dir)
    x, t = xpnn.load_mnist_split("test", data_dir=data_dir)
    probabilities = network.predict(x)
    wrong = np.flatnonzero(t != np.argmax(probabilities, axis=1))
    assert len(wrong) == 648  # 10000 - 9352
    fig = plot.misclassified_figure(x, t, probabilities, limit=40)
    assert "648 misclassified of 10000" in fig._suptitle.get_text()
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 40
    for ax, index in zip(shown, wrong[:40], strict=True):
        np.testing.assert_array_equal(ax.images[0].get_array(), x[index].reshape(28, 28))
        true, predicted = ax.get_title().split(" ")[0].split("→")
        assert int(true) == t[index] != int(predicted)


def test_misclassified_captions_are_legible():
    """At least 10 px high at the 80 dpi that ``xpnn eval --plot`` writes, 1.4 in per digit."""
    rng = np.random.default_rng(0)
    probabilities = rng.random((30, 10))
    fig = plot.misclassified_figure(rng.integers(0, 256, (30, 784)), np.zeros(30), probabilities)
    shown = [ax for ax in fig.axes if ax.images]
    assert shown and all(ax.title.get_fontsize() * 80 / 72 >= 10 for ax in shown)
    columns = len({round(ax.get_position().x0, 3) for ax in shown})
    assert fig.get_figwidth() / columns >= 1.4


def test_confusion_matrix_figure_annotates_counts():
    matrix = np.array([[5, 1], [0, 7]])
    fig = plot.confusion_matrix_figure(matrix)
    texts = sorted(t.get_text() for t in fig.axes[0].texts)
    assert texts == ["0", "1", "5", "7"]
    assert "12/13 correct" in fig.axes[0].get_title()
    assert_not_blank(fig)
    with pytest.raises(ValueError, match="square"):
        plot.confusion_matrix_figure(np.ones((2, 3)))


def test_eval_writes_plots(data_dir, tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "eval.py"), "--quiet", "--plot", str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "XPNN_DATA_DIR": data_dir},
    )
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "confusion_matrix.png",
        "misclassified.png",
    ]
    assert png_size(tmp_path / "confusion_matrix.png") == (512, 448)
    width, height = png_size(tmp_path / "misclassified.png")
    assert width == 960 and height > 500


@pytest.mark.parametrize("script", ["plot_activations.py", "show_mnist.py"])
def test_scripts_write_pngs(script, data_dir, tmp_path):
    target = tmp_path / "out.png"
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / script),
            "--out",
            str(target),
            "--data-dir",
            data_dir,
        ]
        if script == "show_mnist.py"
        else [sys.executable, str(ROOT / "scripts" / script), "--out", str(target)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert min(png_size(target)) > 100


def test_missing_matplotlib_names_the_extra():
    code = (
        "import sys; sys.modules['matplotlib'] = None; sys.modules['matplotlib.figure'] = None\n"
        "import xpnn.plot\n"
        "try:\n    xpnn.plot.activation_figure()\n"
        "except ImportError as err:\n    print(err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert "pip install 'xpnn[plot]'" in out.stdout, out.stderr


def test_import_xpnn_does_not_import_matplotlib():
    code = "import sys, xpnn; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_no_mistakes_draw_no_digit_and_bad_shapes_are_refused():
    probabilities = np.eye(10)[[3, 1]]
    fig = plot.misclassified_figure(np.zeros((2, 784)), np.array([3, 1]), probabilities)
    assert "0 misclassified of 2" in fig._suptitle.get_text()
    assert not [ax for ax in fig.axes if ax.images]
    with pytest.raises(ValueError, match=r"\(N, 784\)"):
        plot.digits_figure(np.zeros((2, 783)), np.array([0, 1]))
