"""The explainers behind the app: captum attributions, the robustness curve, the gradient views, and the
compute thread every app request runs on."""
from __future__ import annotations

import contextvars
import threading

import pytest
import torch

import jdx
from jdx.explain import gradient_views, integrated_gradients, noise_robustness, smoothgrad

pytest.importorskip("captum")


@pytest.fixture(scope="module")
def model(tiny_joint):
    return jdx.load(tiny_joint)


@pytest.fixture(scope="module")
def x():
    return torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_integrated_gradients_are_complete(model, x):
    """IG's attributions add up to logit(x) − logit(baseline) (the completeness axiom), up to the path
    integral's discretisation."""
    a = integrated_gradients(model, x, target=1, n_steps=128)
    with torch.no_grad():
        gap = model.classify(x, 0)[0, 1] - model.classify(torch.full_like(x, -1), 0)[0, 1]
    assert a.shape == x.shape
    assert abs(float(a.sum()) - float(gap)) < 0.02 * abs(float(gap)) + 1e-3


def test_smoothgrad_is_seeded_and_differs_from_one_gradient(model, x):
    a, b, c = smoothgrad(model, x, 0, seed=3), smoothgrad(model, x, 0, seed=3), smoothgrad(model, x, 0, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c) and (a >= 0).all()


def test_noise_robustness(model, x):
    ts = [0, 10, 25, 50]
    p = noise_robustness(model, x, ts, draws=4)
    assert p.shape == (4, model.num_classes)
    assert torch.allclose(p.sum(1), torch.ones(4), atol=1e-5)
    assert torch.allclose(p[0], model.predict(x)[0], atol=1e-5)          # t = 0: the image as given


def test_gradient_views(model, x):
    v = gradient_views(model, x, 20, target=2, seed=1)
    sigma = (1 - model.schedule.alpha_bar[20]).sqrt()
    assert torch.allclose(v.score, -v.eps_hat / sigma, atol=1e-5)       # the score is −ε̂/σ_t
    # the guidance field is the gradient of log p(2 | x_t): a small step along it raises log p
    with torch.no_grad():
        lp = lambda z: torch.log_softmax(model.classify(z[None], 20), -1)[0, 2]   # noqa: E731
        assert lp(v.x_t + 1e-3 * v.guidance / v.guidance.norm()) > lp(v.x_t)
    v0 = gradient_views(model, x, 0, target=None)
    assert torch.equal(v0.x_t, x[0]) and torch.count_nonzero(v0.guidance) == 0
    with pytest.raises(ValueError, match="t must be"):
        gradient_views(model, x, 999, target=0)


def test_compute_thread_runs_everything_on_one_thread_and_keeps_context():
    from jdx.ui import compute
    var = contextvars.ContextVar("request", default=None)
    var.set("request-7")
    names = {compute.run(lambda: threading.current_thread().name) for _ in range(3)}
    assert len(names) == 1 and names.pop().startswith("jdx-compute")
    assert compute.run(var.get) == "request-7"                           # Gradio's progress bar needs this
    with pytest.raises(ZeroDivisionError):
        compute.run(lambda: 1 / 0)


def test_set_threads_reaches_the_compute_thread_after_it_ran():
    """OpenMP keeps a team size per thread: the app's compute thread, busy while the page is built, must hear
    the serving thread count too (it kept two threads and fought the web server for the second core)."""
    from jdx.ui import compute
    before = torch.get_num_threads()
    compute.run(torch.set_num_threads, 2)                 # as if it had run with the default team
    try:
        compute.set_threads(1)
        assert compute.run(torch.get_num_threads) == 1 and torch.get_num_threads() == 1
    finally:
        compute.set_threads(before)


def piled_up(batcher, key, n: int) -> list:
    """n callers that arrive while the compute thread is busy, so they wait together; their answers in order."""
    from concurrent.futures import ThreadPoolExecutor

    from jdx.ui import compute
    gate = threading.Event()
    compute.run(lambda: None)
    blocker = compute._EXECUTOR.submit(gate.wait)            # hold the compute thread so callers pile up
    with ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(batcher, key, torch.full((1, 3), float(i))) for i in range(n)]
        while len(batcher._pending) < n:
            threading.Event().wait(0.01)
        gate.set()
        results = [f.result() for f in futures]
    blocker.result()
    return results


def test_batcher_serves_each_caller_its_own_row_in_shared_batches():
    from jdx.ui import compute
    batcher = compute.Batcher(lambda key, x: x * key)
    results = piled_up(batcher, 10, 8)
    assert all(torch.equal(r, torch.full((1, 3), 10.0 * i)) for i, r in enumerate(results))
    assert batcher.batch_sizes == [8]                          # one forward pass served all eight


def test_batcher_keeps_models_apart_and_reports_errors():
    from jdx.ui import compute
    batcher = compute.Batcher(lambda key, x: x + key)
    assert torch.equal(batcher(1, torch.zeros(1, 2)), torch.ones(1, 2))
    failing = compute.Batcher(lambda key, x: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failing("m", torch.zeros(1, 2))


def test_a_big_batch_runs_in_two_halves_side_by_side_where_two_teams_fit():
    """On a 2-core CPU the class's batches split across the compute thread and a helper, each row still its
    own answer."""
    from jdx.ui import compute
    seen = set()

    def fn(key, x):
        seen.add(threading.current_thread().name)
        return x * key

    old = compute._split
    compute._split = True
    try:
        batcher = compute.Batcher(fn)
        results = piled_up(batcher, 3, 12)
    finally:
        compute._split = old
    assert all(torch.equal(r, torch.full((1, 3), 3.0 * i)) for i, r in enumerate(results))
    assert batcher.batch_sizes == [12] and len(seen) == 2     # both threads ran a half
