"""The Inside page: one image, and what happens to it inside the network.

Where the image comes from: the Draw page's drawing (the page stores it under
``DRAWING_KEY``), a test image by number, an uploaded PNG/JPG, or any image another page
sends with ``show_in_inside``. The panels are recomputed from the live network while a
run trains (``ui.views.live_area``); the arithmetic is ``nn_core.explain``.
"""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from dataclasses import dataclass

import numpy as np
import streamlit as st

from nn_core import explain as ex
from nn_core.memory import mb
from nn_core.preprocess import preprocess_image
from ui import charts
from ui import inside_figures as figs
from ui.current_model import ModelView, current_model, model_caption, no_model_message
from ui.data import current_dataset
from ui.views import changing_choice, digit_image, live_area

INSIDE_PAGE = "app_pages/inside.py"
DRAWING_KEY = "inside_image"  # the Draw page's preprocessed drawing, (28, 28) uint8 or None
SENT_KEY = "inside_sent"  # {"image", "label", "source"} from show_in_inside
SOURCE_PREF = "_inside_source"  # the chosen source, kept while other pages are shown
INDEX_PREF = "_inside_test_index"
RESULT_KEY = "_inside_counterfactual"
MAX_IMAGE_PIXELS = 16_000_000  # an upload's width x height, checked from its header
TOP_UNITS = 8
LATEST = -1  # the replay slider's value for "the newest epoch kept"
RUNNER_UP = -1  # the rival and target boxes' value for "the runner-up, whichever it is"
SOURCES = {
    "drawing": "My drawing (Draw page)",
    "test": "A test image",
    "upload": "Upload a PNG or JPG",
}
METHODS = {
    "gradient": "Gradient",
    "gradient_x_input": "Gradient × input",
    "occlusion": "Occlusion",
}
METHOD_HELP = {
    "gradient": (
        "How the score of {c} would change if each pixel got a little brighter: red pixels "
        "raise it, blue ones lower it. It can light up empty background, where adding ink "
        "would matter."
    ),
    "gradient_x_input": (
        "The gradient times the pixel's brightness: only ink counts. Red ink speaks for "
        "{c}, blue ink against it."
    ),
    "occlusion": (
        "How much the probability of {c} drops when a {p}x{p} square around the pixel is "
        "blacked out: red where covering hurts {c} (the network needs that part), blue "
        "where covering helps."
    ),
}


@dataclass
class Picked:
    """The image to explain, or the sentence saying why there is none."""

    image: np.ndarray | None  # (H, W) uint8, as the network sees it
    label: str = ""
    true_class: int | None = None
    problem: str | None = None


# ------------------------------------------------------------------ hook for other pages
def show_in_inside(
    image: np.ndarray, label: str, source: str, true_class: int | None = None
) -> None:
    """Send an image to the Inside page and go there.

    Call it from a page's script body, e.g. ``if st.button("Look inside"):
    show_in_inside(x, "test image #12, a 3", "Mistakes")`` (not from a widget callback,
    where Streamlit cannot switch pages).

    Parameters
    ----------
    image : ndarray of shape (H, W)
        Pixels 0..255, as the network sees them (already preprocessed).
    label : str
        What the image is, for people.
    source : str
        The page it comes from.
    true_class : int, optional
        Its label, when it has one (a test image).
    """
    ss = st.session_state
    ss[SENT_KEY] = {
        "image": np.array(image, dtype=np.uint8),
        "label": label,
        "source": source,
        "true_class": true_class,
    }
    ss[SOURCE_PREF] = "sent"
    ss.pop("inside_source", None)
    ss.pop(RESULT_KEY, None)
    st.switch_page(INSIDE_PAGE)


# ------------------------------------------------------------------------- image sources
def read_image_bytes(data: bytes, name: str, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode an uploaded PNG or JPG to (H, W) gray or (H, W, 4) RGBA uint8.

    The size comes from the header before any pixel is decoded, so a decompression bomb
    (a small file that unpacks to billions of pixels) is refused without using memory.

    Raises
    ------
    ValueError
        With one sentence for the person who uploaded the file.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # our own size check replaces Pillow's warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        raise ValueError(
            f"“{name}” is not an image this page can read: upload a PNG or JPG of one digit."
        ) from exc
    with img:
        if img.format not in ("PNG", "JPEG"):
            raise ValueError(
                f"“{name}” is a {img.format or 'non-image'} file, not a PNG or JPG: save it as "
                "PNG or JPG and upload it again."
            )
        width, height = img.size
        if width * height > max_pixels:
            raise ValueError(
                f"“{name}” is {width:,} x {height:,} pixels, over this page's limit of "
                f"{max_pixels // 10**6} megapixels: shrink it (a digit needs a few hundred "
                "pixels a side at most)."
            )
        try:
            img.load()
            alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
            return np.asarray(img.convert("RGBA" if alpha else "L"))
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise ValueError(
                f"“{name}” is damaged or cut short ({exc}); upload the image again."
            ) from exc


def picked_upload(uploaded) -> Picked:
    """The uploaded file as a 28x28 digit, or the problem with it."""
    if uploaded is None:
        return Picked(
            None, problem="Upload a PNG or JPG of one digit, dark on light or light on dark."
        )
    try:
        pixels = read_image_bytes(uploaded.getvalue(), uploaded.name)
    except ValueError as exc:
        return Picked(None, problem=str(exc))
    image = preprocess_image(pixels)
    if image is None:
        return Picked(
            None,
            problem=f"No digit stands out from the background in “{uploaded.name}”: upload an "
            "image with one clearly visible digit.",
        )
    return Picked(image, label=f"your upload “{uploaded.name}”")


def picked_drawing() -> Picked:
    image = st.session_state.get(DRAWING_KEY)
    if image is None:
        return Picked(
            None,
            problem="The drawing on the Draw page is empty: draw a digit there, then come back.",
        )
    return Picked(np.asarray(image, dtype=np.uint8), label="your drawing")


def picked_test_image(view: ModelView) -> Picked:
    dataset = view.run.dataset if view.run is not None else current_dataset()
    if dataset is None:
        return Picked(
            None, problem="No data set is loaded: pick MNIST or upload one in the sidebar."
        )
    ss = st.session_state
    n = len(dataset.y_test)
    if "inside_test_index" not in ss:
        ss["inside_test_index"] = min(int(ss.get(INDEX_PREF, 0)), n - 1)
    index = st.number_input(
        f"Test image number (0 to {n - 1:,})", 0, n - 1, step=1, key="inside_test_index"
    )
    ss[INDEX_PREF] = int(index)
    true = int(dataset.y_test[index])
    names = dataset.class_names
    return Picked(
        dataset.x_test[index],
        label=f"test image #{index} of {dataset.name} (labelled {names[true]})",
        true_class=true,
    )


def pick_image(view: ModelView) -> Picked:
    """The source choice and its input widgets; returns the chosen image or its problem."""
    ss = st.session_state
    sources = dict(SOURCES)
    sent = ss.get(SENT_KEY)
    if sent is not None:
        sources["sent"] = f"From {sent['source']}: {sent['label']}"
    if "inside_source" not in ss:
        default = ss.get(SOURCE_PREF)
        if default not in sources:
            default = "drawing" if ss.get(DRAWING_KEY) is not None else "test"
        ss["inside_source"] = default
    source = st.radio(
        "Image", list(sources), format_func=sources.get, key="inside_source", horizontal=True
    )
    ss[SOURCE_PREF] = source
    if source == "drawing":
        return picked_drawing()
    if source == "test":
        return picked_test_image(view)
    if source == "upload":
        return picked_upload(
            st.file_uploader(
                "A PNG or JPG of one digit", type=["png", "jpg", "jpeg"], key="inside_upload"
            )
        )
    return Picked(
        sent["image"],
        label=f"{sent['label']} (from {sent['source']})",
        true_class=sent.get("true_class"),
    )


def size_problem(model, image: np.ndarray) -> str | None:
    """One sentence when the model cannot read an image of this size, else None."""
    n_inputs = model.sizes[0]
    if image.size == n_inputs:
        return None
    h, w = image.shape[:2]
    side = math.isqrt(n_inputs)
    shape = f" ({side}x{side} images)" if side * side == n_inputs else ""
    return (
        f"This model takes {n_inputs:,} inputs per image{shape}, but this image has "
        f"{h}x{w} = {h * w:,} pixels: use a model trained on {h}x{w} images (train one, or "
        "upload one on the Models page)."
    )


# ---------------------------------------------------------------------------- the page
def render_page() -> None:
    """The whole Inside page (called by app_pages/inside.py)."""
    st.header("Inside")
    st.caption(
        "Pick one image and follow it through the network: what each layer does with it, "
        "which units vote for the answer, which pixels matter, and the smallest change that "
        "would make the network change its mind."
    )
    view = current_model()
    if view is None:
        no_model_message()
        return
    picked = pick_image(view)
    if picked.image is not None and picked.problem is None:
        picked.problem = size_problem(view.model, picked.image)
    if picked.problem is not None:
        st.warning(picked.problem)
        return
    live_area(lambda: render_panels(picked), every=0.5)
    how_to_read_gradients(view.model)


def render_panels(picked: Picked) -> None:
    """Every panel for ``picked.image``, on a snapshot of the current network."""
    view = current_model()
    if view is None:
        no_model_message()
        return
    model_caption(view)
    model = view.model.copy() if view.run is not None else view.model
    names = list(view.class_names)[: model.sizes[-1]]
    names += [str(i) for i in range(len(names), model.sizes[-1])]
    image = picked.image
    batch = image[None]
    acts = ex.layer_activations(model, batch)
    probs = acts.probs[0].astype(np.float64)
    order = np.argsort(-probs)
    predicted, runner_up = int(order[0]), int(order[1])
    seen_panel(image, probs, names, picked, predicted)
    layers_panel(model, acts, names)
    contributions_panel(model, batch, names, predicted)
    saliency_panel(model, batch, names, predicted)
    contrast_panel(model, batch, names, predicted, runner_up, acts.logits[0])
    counterfactual_panel(model, image, names, predicted, runner_up)
    replay_panel(view, image, names, picked.true_class)


def seen_panel(image, probs, names, picked: Picked, predicted: int) -> None:
    st.subheader("What the network sees")
    left, right = st.columns([1, 2])
    with left:
        st.image(digit_image(image, 6))
        st.caption(f"Showing {picked.label}.")
    with right:
        st.markdown(f"### Prediction: **{names[predicted]}** ({probs[predicted]:.0%})")
        st.plotly_chart(
            charts.probability_figure(probs, names, true=picked.true_class, height=220),
            key="inside_probs",
            width="stretch",
        )
    st.caption(
        f"The {image.shape[0]}x{image.shape[1]} pixels on the left are all the network gets. "
        "The bars are its probabilities for each class"
        + (
            " (green: the true class, red: a wrong answer)."
            if picked.true_class is not None
            else "."
        )
    )


def layers_panel(model, acts: ex.LayerActivations, names) -> None:
    st.subheader("Layer by layer")
    st.caption(
        "Each hidden layer turns the previous layer's numbers into new ones: a bar is one "
        "unit's activation for this image (red positive, blue negative, missing = 0). Wide "
        "layers show their strongest units; the sentence under each says what the rest do."
    )
    hidden = acts.hidden
    cols = st.columns(len(hidden) + 1)
    for i, values in enumerate(hidden):
        layer = figs.layer_view(values[0])
        with cols[i]:
            st.plotly_chart(
                figs.activation_figure(layer, f"Hidden layer {i + 1} ({model.activation})"),
                key=f"inside_layer_{i}",
                width="stretch",
            )
            st.caption(layer.summary)
    with cols[-1]:
        st.plotly_chart(
            figs.logits_figure(acts.logits[0], names), key="inside_logits", width="stretch"
        )
        st.caption("The softmax turns these scores into the probabilities above.")


def contributions_panel(model, batch, names, predicted: int) -> None:
    st.subheader(f"Which units vote for {names[predicted]}")
    contrib = ex.class_contributions(model, batch, predicted, top=TOP_UNITS)
    units = contrib.top[0]
    values = contrib.values[0][units]
    deep = model.n_layers > 2
    where = "the last hidden layer" if model.n_layers > 1 else "the input pixels"
    st.caption(
        f"The score of {names[predicted]} is a sum over {where}: each unit's activation times "
        f"its weight to {names[predicted]}. These are the {len(units)} largest terms (red adds, "
        "blue takes away)."
    )
    if model.n_layers == 1:
        st.info("This network has no hidden layer: its score is a weighted sum of the pixels.")
        return
    rest = float(contrib.values[0].sum() - values.sum())
    left, right = st.columns([2, 3])
    with left:
        st.plotly_chart(
            figs.contributions_figure(values, units, names[predicted]),
            key="inside_contrib",
            width="stretch",
        )
        st.caption(
            f"The other {contrib.values.shape[1] - len(units)} units add {rest:+.2f} and the "
            f"bias {float(contrib.bias[0]):+.2f}: score {float(contrib.logit[0]):.2f}."
        )
    with right:
        maps = ex.unit_gradient(model, batch, model.n_layers - 2, units)[0]
        unit_tiles(maps.reshape(len(units), *batch.shape[1:]), units, values)
        if deep:
            st.caption(
                "What each unit responds to in this image: the gradient of its input with "
                "respect to the pixels (red: more ink here excites it, blue: inhibits it). "
                "Units beyond the first layer have no single weight image."
            )
        else:
            st.caption(
                "Each unit's first-layer weights as an image: red pixels excite it, blue "
                "ones inhibit it."
            )


def unit_tiles(maps: np.ndarray, units: np.ndarray, values: np.ndarray, per_row: int = 4) -> None:
    """One small diverging image per unit, ``per_row`` to a row, captioned with its vote."""
    for start in range(0, len(units), per_row):
        cols = st.columns(per_row)
        for col, m, u, v in zip(cols, maps[start:], units[start:], values[start : start + per_row]):
            col.image(figs.diverging_rgb(m, 4), caption=f"u{u}: {v:+.2f}", width=112)


def saliency_panel(model, batch, names, predicted: int) -> None:
    st.subheader(f"Which pixels make it a {names[predicted]}")
    method = st.radio(
        "Method", list(METHODS), format_func=METHODS.get, key="inside_method", horizontal=True
    )
    heat = ex.saliency(model, batch, predicted, method)[0]
    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(
            figs.overlay_figure(batch[0], heat, f"{METHODS[method]}, class {names[predicted]}"),
            key="inside_saliency",
            width="stretch",
        )
    with right:
        st.caption(
            METHOD_HELP[method].format(c=names[predicted], p=ex.OCCLUSION_PATCH)
            + " The scores are the logits, before the softmax." * (method != "occlusion")
        )


def other_class(container, label: str, key: str, names, predicted: int, runner_up: int) -> int:
    """A class other than the prediction, chosen in a box; "the runner-up" by default,
    which follows the runner-up as the network changes."""
    choice = changing_choice(
        container.selectbox,
        label,
        [RUNNER_UP, *(c for c in range(len(names)) if c != predicted)],
        key=key,
        default=RUNNER_UP,
        version=predicted,
        format_func=lambda c: f"{names[runner_up]} (the runner-up)" if c == RUNNER_UP else names[c],
    )
    return runner_up if choice == RUNNER_UP else int(choice)


def contrast_panel(model, batch, names, predicted: int, runner_up: int, logits) -> None:
    st.subheader(f"Why {names[predicted]} rather than …")
    rival = other_class(st, "Rather than", "inside_rival", names, predicted, runner_up)
    heat = ex.contrast_gradient(model, batch, predicted, rival)[0]
    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(
            figs.overlay_figure(batch[0], heat, f"{names[predicted]} rather than {names[rival]}"),
            key="inside_contrast",
            width="stretch",
        )
    with right:
        st.caption(
            f"The gradient of (score {names[predicted]} − score {names[rival]}): red pixels "
            f"speak for {names[predicted]}, blue ones for {names[rival]}. The difference is "
            f"{float(logits[predicted] - logits[rival]):.2f} now."
        )


def counterfactual_panel(model, image, names, predicted: int, runner_up: int) -> None:
    ss = st.session_state
    st.subheader("Make it a …")
    left, right = st.columns([1, 2])
    target = other_class(left, "Target class", "inside_target", names, predicted, runner_up)
    key = (_digest(image), target)
    if left.button(f"Find the smallest change to make it a {names[target]}", key="inside_cf_go"):
        ss[RESULT_KEY] = (key, run_counterfactual(model, image, target))
    stored = ss.get(RESULT_KEY)
    with right:
        st.caption(
            "Small steps along the gradient change the pixels, each kept between black and "
            "white, until the network says the target; a penalty keeps the change small and "
            "on few pixels."
        )
    if stored is None or stored[0] != key:
        return
    show_counterfactual(stored[1], image, names, predicted, target)


def run_counterfactual(model, image: np.ndarray, target: int) -> ex.Counterfactual:
    bar = st.progress(0.0, text="Searching…")
    cap = 300

    def step(i: int, probs: np.ndarray) -> None:
        if i % 10 == 0:
            bar.progress(min(i / cap, 1.0), text=f"Step {i}: {float(probs[0, target]):.0%}")

    result = ex.counterfactual(model, image[None], target, max_steps=cap, on_step=step)
    bar.empty()
    return result


def show_counterfactual(result: ex.Counterfactual, image, names, predicted: int, target: int):
    after = np.rint(result.image[0] * 255).astype(np.uint8)
    change = result.change[0]
    final = result.prob_path[0, -1]
    changed = int(np.count_nonzero(np.abs(change) > 1 / 255))
    if result.reached[0]:
        st.success(
            f"Reached: the network now says {names[target]} ({final[target]:.0%}) after "
            f"{int(result.steps[0])} steps, changing {changed} pixels."
        )
    else:
        st.warning(
            f"Not reached in {int(result.steps[0])} steps: {names[target]} got to "
            f"{final[target]:.0%}. Try another target."
        )
    cols = st.columns([1, 1, 1, 3])
    side = 28 * 4
    cols[0].image(digit_image(image, 4), caption=f"before: {names[predicted]}", width=side)
    cols[1].image(figs.diverging_rgb(change, 4), caption="change (red: ink added)", width=side)
    cols[2].image(digit_image(after, 4), caption=f"after: {names[int(final.argmax())]}", width=side)
    with cols[3]:
        st.plotly_chart(
            figs.probability_path_figure(result.prob_path[0], names, predicted, target),
            key="inside_cf_path",
            width="stretch",
        )


def replay_panel(view: ModelView, image: np.ndarray, names, true_class: int | None) -> None:
    """This image through the network kept at the end of each epoch of the current run."""
    st.subheader("How the network saw it, epoch by epoch")
    run = view.run
    if run is None or run.watch is None:
        st.caption(
            "The replay comes with a network trained in this session: train one to see how "
            "it saw this image epoch by epoch (this model has only its final weights)."
        )
        return
    snapshots = run.watch.snapshots
    kept = snapshots.kept  # one reading: the training thread may thin the snapshots
    epochs, probs = snapshots.probabilities(run.model, image[None], kept)
    if len(epochs) < 2:
        st.caption("The replay starts when the first epoch ends.")
        return
    probs = probs[:, 0].astype(np.float64)
    first, last = int(probs[0].argmax()), int(probs[-1].argmax())
    # LATEST (not the newest epoch's number) keeps following the run as epochs end.
    options = [*epochs[:-1], LATEST]
    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(
            figs.probability_path_figure(
                probs,
                names,
                first,
                last,
                x=epochs,
                x_title="epoch",
                title="Probabilities at the end of each epoch",
            ),
            key="inside_replay_path",
            width="stretch",
        )
        st.caption(
            f"Each line is one class's probability for this image after that epoch (epoch 0 "
            f"is the untrained network). Bold: its answer at epoch {epochs[0]} "
            f"({names[first]}) and at epoch {epochs[-1]} ({names[last]})."
            + (f" The image is labelled {names[true_class]}." if true_class is not None else "")
        )
    with right:
        choice = changing_choice(
            st.select_slider,
            "The network at the end of epoch",
            options,
            key="inside_replay_epoch",
            default=LATEST,
            version=len(options),
            format_func=lambda e: f"{epochs[-1]} (latest)" if e == LATEST else str(e),
        )
        epoch = epochs[-1] if choice == LATEST else choice
        said = int(probs[epochs.index(epoch)].argmax())
        then = snapshots.model_at(epoch, run.model, kept)
        heat = ex.saliency(then, image[None], said, "gradient_x_input")[0]
        st.plotly_chart(
            figs.overlay_figure(image, heat, f"Epoch {epoch}: {names[said]}"),
            key="inside_replay_saliency",
            width="stretch",
        )
        st.caption(
            f"At the end of epoch {epoch} it said {names[said]} "
            f"({probs[epochs.index(epoch), said]:.0%}); red ink spoke for it, blue against "
            "(gradient × input)."
        )
    if snapshots.thinned:
        st.info(
            f"Replay is limited: to keep the weights within {mb(snapshots.budget_bytes)}, "
            f"it kept {len(epochs)} of the {run.trainer.epochs_done + 1} epoch ends (every "
            "other one is dropped when the budget fills; the first and the last are kept)."
        )


def how_to_read_gradients(model) -> None:
    with st.expander("How it works: the gradient of a score, with this network's shapes"):
        st.markdown(
            "A class's score $z_c$ (its logit) depends on the pixels $x$ through every layer. "
            "The chain rule multiplies one matrix per layer; $g'$ is the derivative of the "
            f"activation (`{model.activation}`), taken at this image's values:"
        )
        st.latex(figs.gradient_equation(model.sizes))
        st.markdown(
            "The result has one number per pixel: the saliency map. *Why A rather than B* "
            "uses $z_A - z_B$; the counterfactual follows the gradient of the cross-entropy "
            "for the target, plus a penalty on the change."
        )


def _digest(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()
