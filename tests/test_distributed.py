"""Scoring on a real multi-process dask cluster on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optional import import_or_skip

import xpnn
from xpnn import distributed as xd

import_or_skip("distributed", "dask")  # the whole module needs a dask cluster


def tiled(base, start, stop, seed, noise):
    """Rows ``start:stop`` of mnist_dask's set, made as a worker makes them."""
    info = {None: {"array-location": [(start, stop)]}}
    return xd._rows(base, seed, noise, 0, info), xd._rows(base, seed, noise, 1, info)


@pytest.fixture(scope="module")
def client():
    with xd.cluster(workers=2) as client:
        yield client


@pytest.fixture(scope="module")
def book(data_dir):
    return xpnn.pretrained_network(data_dir=data_dir, input_scale=1 / 255)


def test_mnist_on_cluster(client, book, data_dir):
    assert len(client.scheduler_info()["workers"]) == 2
    x, t = xd.mnist_dask(data_dir=data_dir, rows_per_chunk=2500)
    matrix = xd.confusion(xd.classify(book, x), t).compute()
    assert matrix.shape == (10, 10) and int(matrix.sum()) == 10000
    assert int(np.trace(matrix)) == 9352


def test_synthetic_set_matches_numpy(client, book, data_dir):
    n, rows, seed = 30_000, 7_000, 3
    x, t = xd.mnist_dask(n, noise=16, seed=seed, rows_per_chunk=rows, data_dir=data_dir)
    got = xd.classify(book, x).compute()
    base = xpnn.load_mnist_split("test", normalize=False, data_dir=data_dir)
    expected, labels = [], []
    for start in range(0, n, rows):
        images, truth = tiled(base, start, min(start + rows, n), seed, 16)
        expected.append(book.classify(images))
        labels.append(truth)
    np.testing.assert_array_equal(got, np.concatenate(expected))
    np.testing.assert_array_equal(t.compute(), np.concatenate(labels))
    assert 0 < (np.concatenate(expected) != np.concatenate(labels)).mean() < 0.5


def test_weights_are_one_key_for_all_chunks(book, data_dir):
    x, _ = xd.mnist_dask(data_dir=data_dir, rows_per_chunk=1000)
    labels = xd.classify(book, x)
    graph = dict(labels.__dask_graph__())
    classifier_keys = [k for k in graph if "BlockClassifier" in str(k)]
    assert len(classifier_keys) == 1
    assert labels.numblocks == (10,)


def test_result_is_lazy_and_rechunks_features(client, book):
    import dask.array as da

    rng = np.random.default_rng(0)
    host = rng.integers(0, 256, size=(3000, 784), dtype=np.uint8)
    x = da.from_array(host, chunks=(1000, 200))  # feature axis split in 4
    labels = xd.classify(book, x)
    assert isinstance(labels, da.Array) and labels.chunks == ((1000, 1000, 1000),)
    np.testing.assert_array_equal(labels.compute(), book.classify(host))


def test_bad_inputs(book):
    import dask.array as da

    with pytest.raises(TypeError, match="needs a dask array"):
        xd.classify(book, np.zeros((2, 784)))
    with pytest.raises(ValueError, match=r"\(n, 784\)"):
        xd.classify(book, da.zeros((2, 783)))


def test_worker_killed_mid_run_still_completes(book, data_dir):
    with xd.cluster(workers=2) as client:
        x, _ = xd.mnist_dask(400_000, noise=8, seed=5, rows_per_chunk=5000, data_dir=data_dir)
        future = client.compute(xd.classify(book, x))
        pids = client.run(os.getpid)
        deadline = time.monotonic() + 60
        victim = None
        while victim is None and time.monotonic() < deadline:
            busy = [w for w, tasks in client.processing().items() if tasks]
            if busy and not future.done():
                victim = busy[0]
            time.sleep(0.05)
        assert victim is not None, "the computation never started"
        os.kill(pids[victim], signal.SIGKILL)
        got = future.result(timeout=120)
    base = xpnn.load_mnist_split("test", normalize=False, data_dir=data_dir)
    for start in (0, 195_000, 395_000):
        images, _ = tiled(base, start, start + 5000, 5, 8)
        np.testing.assert_array_equal(got[start : start + 5000], book.classify(images))


def test_wrong_scheduler_address_fails_fast():
    started = time.monotonic()
    with pytest.raises(xpnn.BackendError, match="could not connect to the dask scheduler"):  # noqa: SIM117
        with xd.cluster("tcp://127.0.0.1:9", timeout=2):
            pass
    assert time.monotonic() - started < 10


def test_eval_on_local_cluster(data_dir):
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "scripts" / "eval.py"
    out = subprocess.run(
        [
            sys.executable,
            str(script),
            "--backend",
            "dask",
            "--workers",
            "2",
            "--json",
            "--batch-size",
            "2500",
            "--data-dir",
            data_dir,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["correct"] == 9352 and report["device"] == "cluster of 2 worker(s)"


# -- scoring: the dask path agrees with the local one ---------------------------------------


def test_network_with_wrong_output_size_is_refused_up_front():
    import dask.array as da

    rng = np.random.default_rng(0)
    wide = xpnn.Network({"W1": rng.normal(size=(784, 20)), "b1": np.zeros(20)})
    x = da.zeros((10, 784), chunks=5)
    with pytest.raises(ValueError, match="the network has 20 outputs but the labels have 10"):
        xd.classify(wide, x, classes=10)
    assert xd.classify(wide, x, classes=20).shape == (10,)


@pytest.mark.parametrize("bad", [10, 12, -1])
def test_out_of_range_predictions_are_an_error_never_counted(bad):
    """What the local scorer refuses, the dask scorer refuses too."""
    import dask.array as da

    from xpnn.report import confusion_matrix

    labels = np.array([0, 1, 2, 3, 4, 5])
    predictions = np.array([0, 1, 2, bad, 4, 5])
    with pytest.raises(ValueError, match=r"predictions must lie in 0\.\.9"):
        confusion_matrix(labels, predictions)
    lazy = xd.confusion(da.from_array(predictions, chunks=4), da.from_array(labels, chunks=3))
    with pytest.raises(ValueError, match=r"predictions must lie in 0\.\.9"):
        lazy.compute(scheduler="sync")
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.9"):
        xd.confusion(da.from_array(labels, chunks=4), da.from_array(predictions, chunks=3)).compute(
            scheduler="sync"
        )


@settings(max_examples=30, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), min_size=1, max_size=60),
    chunk=st.integers(1, 20),
)
def test_dask_and_local_confusion_agree(pairs, chunk):
    import dask.array as da

    from xpnn.report import confusion_matrix

    labels, predictions = (np.array(v) for v in zip(*pairs, strict=True))
    local = confusion_matrix(labels, predictions)
    lazy = xd.confusion(
        da.from_array(predictions, chunks=chunk), da.from_array(labels, chunks=max(1, chunk - 1))
    )
    got = lazy.compute(scheduler="sync")
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got, local)


def test_bad_arguments_fail_at_call_time():
    import dask.array as da

    net = xpnn.Network({"W1": np.ones((784, 10)), "b1": np.zeros(10)})
    x = da.zeros((4, 784), chunks=2)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="classes"):
            xd.classify(net, x, classes=bad)
        with pytest.raises(ValueError, match="rows_per_chunk"):
            xd.mnist_dask(100, rows_per_chunk=bad)
    assert xd.mnist_dask(4, rows_per_chunk=np.int64(3))[1].chunks == ((3, 1),)
    for bad in (-5, 256, 1.5):
        with pytest.raises(ValueError, match="noise"):
            xd.mnist_dask(100, noise=bad)
    with pytest.raises(ValueError, match="seed"):
        xd.mnist_dask(100, seed=-1)
    with pytest.raises(ValueError, match="n must be"):
        xd.mnist_dask(0)


def test_block_classifier_uses_the_host_copies(monkeypatch):
    """No copy to the device and back: the weights are the network's host arrays."""
    net = xpnn.Network({"W1": np.eye(2), "b1": np.zeros(2)}, dtype="float32", input_scale=0.5)
    monkeypatch.setattr(
        xpnn.Network, "params", property(lambda self: pytest.fail("device copies were made"))
    )
    block = xd._BlockClassifier(net)
    for key, value in net.host_params().items():
        np.testing.assert_array_equal(block.params[key], value)
        assert block.params[key].dtype == np.float64  # the original, not a device dtype
    assert block.options["input_scale"] == 0.5 and block.options["dtype"] == "float32"
    np.testing.assert_array_equal(block(np.array([[1.0, 3.0], [2.0, 0.0]])), [1, 0])
    assert list(block._networks) == [("numpy", "cpu")]  # one network per library and device
