"""Latency of every number on the Inside page, for the Best preset's network.

Run from the repository root::

    python benchmarks/explain_speed.py

The network has the Best preset's architecture (784-512-512-10, float32), trained briefly
(``--train-images`` MNIST images for one epoch; the saliency maps cost the same whatever
the weights, but how many steps a counterfactual needs depends on them). Each panel is
timed on one test image, as the page computes it after a stroke or a click: medians over
``--repeats`` calls, over different images. The counterfactual is timed on ``--images``
test images towards their runner-up class and towards their least likely class; its
target is 1 s, the other panels' 150 ms together. A last line times the whole page's
computation: the numbers again plus every figure built and serialised to JSON (Plotly),
which is what the browser waits for (Streamlit's own overhead and the drawing aside).
Ratios are against a reference taken in the same run (one forward pass of the 10,000 test
images), so that a slow spell of the machine shows up in both. BLAS gets one thread by
default, as in the dashboard (``DIGITLAB_BLAS_THREADS``): on a busy two-core machine a
two-thread BLAS makes these small products several times slower, not faster.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nn_core import PRESETS, Trainer
from nn_core import explain as ex
from nn_core.data import load_mnist
from nn_core.hidden_space import SNAPSHOT_BUDGET_BYTES, NetworkSnapshots
from ui import charts
from ui import inside_figures as figs

PANEL_TARGET = 0.150
COUNTERFACTUAL_TARGET = 1.0


def median_seconds(fn, repeats: int, clock=time.perf_counter) -> float:
    fn(0)  # warm up
    times = []
    for i in range(repeats):
        start = clock()
        fn(i)
        times.append(clock() - start)
    return statistics.median(times)


def quickly_trained(train_images: int):
    data = load_mnist()
    config = PRESETS["best"].replace(epochs=1, augment_shift=0)
    subset = data.subset(train_images, seed=0)
    trainer = Trainer(config, subset.x_train, subset.y_train)
    trainer.fit()
    return trainer.model, data


def panels(model, images: np.ndarray) -> dict:
    """The page's computations for image ``i``, by name (class = predicted, rival = runner-up)."""

    def classes(i):
        probs = model.predict_proba(images[i : i + 1])[0]
        order = np.argsort(-probs)
        return int(order[0]), int(order[1])

    def one(i):
        return images[i % len(images)][None]

    # The replay panel: the image through every network kept at an epoch's end (as many
    # as the snapshot budget holds for this architecture), then one saliency map.
    kept = max(2, SNAPSHOT_BUDGET_BYTES // (model.n_params * 4))
    rng = np.random.default_rng(0)
    snapshots = NetworkSnapshots.__new__(NetworkSnapshots)
    snapshots.kept = {
        e: (model.params + rng.normal(0, 0.01, model.n_params)).astype(np.float32)
        for e in range(kept)
    }

    def replay(i):
        epochs, probs = snapshots.probabilities(model, one(i))
        then = snapshots.model_at(epochs[-1], model)
        return ex.gradient_times_input(then, one(i), int(np.argmax(probs[-1, 0])))

    return {
        "activations": lambda i: ex.layer_activations(model, one(i)),
        "contributions": lambda i: ex.class_contributions(model, one(i), classes(i)[0]),
        "unit images (top 8)": lambda i: ex.unit_gradient(
            model, one(i), model.n_layers - 2, np.arange(8)
        ),
        "gradient": lambda i: ex.logit_gradient(model, one(i), classes(i)[0]),
        "gradient x input": lambda i: ex.gradient_times_input(model, one(i), classes(i)[0]),
        "occlusion (default)": lambda i: ex.occlusion_map(model, one(i), classes(i)[0]),
        "contrast": lambda i: ex.contrast_gradient(model, one(i), *classes(i)),
        f"epoch replay ({kept} kept)": replay,
    }


def figures_of_the_page(model, images: np.ndarray):
    """Build the page's Plotly figures and unit images from fresh results, as JSON (what the
    browser receives): the cost on top of the numbers."""
    names = [str(c) for c in range(model.sizes[-1])]

    def build(i):
        x = images[i % len(images)][None]
        acts = ex.layer_activations(model, x)
        predicted, rival = np.argsort(-acts.probs[0])[:2]
        out = [charts.probability_figure(acts.probs[0], names)]
        out += [figs.activation_figure(figs.layer_view(h[0]), "layer") for h in acts.hidden]
        out.append(figs.logits_figure(acts.logits[0], names))
        contrib = ex.class_contributions(model, x, predicted, top=8)
        top = contrib.top[0]
        out.append(figs.contributions_figure(contrib.values[0][top], top, "c"))
        for unit_map in ex.unit_gradient(model, x, model.n_layers - 2, top)[0]:
            figs.diverging_rgb(unit_map, 4)
        out.append(figs.overlay_figure(x[0], ex.occlusion_map(model, x, predicted)[0]))
        out.append(figs.overlay_figure(x[0], ex.contrast_gradient(model, x, predicted, rival)[0]))
        return [fig.to_json() for fig in out]

    return build


def counterfactual_times(model, images: np.ndarray, which: str) -> tuple[list[float], int]:
    """Seconds for each image's counterfactual, and how many reached their target."""
    times, reached = [], 0
    for image in images:
        order = np.argsort(-model.predict_proba(image[None])[0])
        target = int(order[1] if which == "runner-up" else order[-1])
        start = time.perf_counter()
        result = ex.counterfactual(model, image[None], target)
        times.append(time.perf_counter() - start)
        reached += int(result.reached[0])
    return times, reached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--images", type=int, default=20, help="counterfactual images")
    parser.add_argument("--train-images", type=int, default=10000)
    parser.add_argument("--blas-threads", type=int, default=1)
    args = parser.parse_args()
    with threadpool_limits(limits=args.blas_threads, user_api="blas"):
        report(args)


def report(args: argparse.Namespace) -> None:
    model, data = quickly_trained(args.train_images)
    accuracy = float(np.mean(model.predict(data.x_test) == data.y_test))
    images = data.x_test[: max(args.repeats, args.images)]
    reference = median_seconds(lambda _: model.predict_proba(data.x_test), 7)
    arch = "-".join(map(str, model.sizes))
    print(
        f"network {arch} {model.dtype}, test accuracy {accuracy:.1%} after one short epoch, "
        f"{args.blas_threads} BLAS thread(s)"
    )
    print(f"reference: one forward pass of the 10,000 test images {reference * 1e3:.1f} ms\n")
    print(f"{'panel (one image)':24s} {'ms':>8s} {'x reference':>12s}")
    total = 0.0
    for name, fn in panels(model, images).items():
        seconds = median_seconds(fn, args.repeats)
        total += seconds
        print(f"{name:24s} {seconds * 1e3:8.2f} {seconds / reference:12.3f}")
    verdict = "within" if total <= PANEL_TARGET else "OVER"
    print(
        f"{'all panels together':24s} {total * 1e3:8.2f} {total / reference:12.3f}   "
        f"{verdict} the {PANEL_TARGET * 1e3:.0f} ms target "
        f"({PANEL_TARGET / reference:.2f} x reference)"
    )
    build = figures_of_the_page(model, images)
    page = median_seconds(build, max(5, args.repeats // 5))
    cpu = median_seconds(build, max(5, args.repeats // 5), clock=time.process_time)
    verdict = "within" if page <= PANEL_TARGET else "OVER"
    print(
        f"{'numbers + figures (JSON)':24s} {page * 1e3:8.2f} {page / reference:12.3f}   "
        f"{verdict} the {PANEL_TARGET * 1e3:.0f} ms target; CPU time {cpu * 1e3:.1f} ms "
        "(about the wall time on an idle core)\n"
    )
    print(f"{'counterfactual':24s} {'median ms':>10s} {'max ms':>8s} {'max x ref':>10s} reached")
    for which in ("runner-up", "least likely"):
        times, reached = counterfactual_times(model, images[: args.images], which)
        worst = max(times)
        verdict = "within" if worst <= COUNTERFACTUAL_TARGET else "OVER"
        print(
            f"{'to the ' + which:24s} {statistics.median(times) * 1e3:10.1f} {worst * 1e3:8.1f} "
            f"{worst / reference:10.2f} {reached}/{len(times)}   {verdict} the 1 s target"
        )


if __name__ == "__main__":
    main()
