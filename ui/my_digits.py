"""My digits: collect your own handwriting, measure a network on it, teach it your digits.

The set lives in this session only (``st.session_state``), capped in number
(``Limits.max_personal_samples``); it downloads as an ``.npz`` that the data loaders and
the command line read (``nn_core.personal_set``). Fine-tuning (``nn_core.finetune``)
always works on a copy: the network a page shows changes only when the person keeps the
fine-tuned one, and an uploaded model is replaced only after they confirm.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass

import numpy as np
import streamlit as st

from nn_core.data import DataError
from nn_core.finetune import (
    FinetuneError,
    FinetuneSettings,
    Outcome,
    check_fits,
    finetune_record,
    per_digit_split,
    split_mode,
    teach,
    with_replay,
)
from nn_core.io import save_model
from nn_core.metrics import evaluate, misclassified
from nn_core.personal_set import (
    N_DIGITS,
    PersonalSet,
    add_sample,
    empty_set,
    load_personal_set,
    raw_from_canvas,
    relabel_sample,
    remove_sample,
    to_npz_bytes,
)
from ui import charts, runs_view
from ui import state as keys
from ui.current_model import starter_model
from ui.data import mnist
from ui.drawing import keep_toolbar_off_the_canvas
from ui.limits import get_limits
from ui.models import MODEL_NAME
from ui.run_history import history_budget, session_history
from ui.views import digit_image

# Session-state keys (all "my_digits_*")
SET = "my_digits_set"  # PersonalSet
VERSION = "my_digits_version"  # bumped on every change of the set (fresh widget keys)
CANVAS_N = "my_digits_canvas_n"  # bumping it clears this page's canvas
UPLOAD_N = "my_digits_upload_n"  # bumping it empties the uploader
UPLOAD_ERROR = "my_digits_upload_error"
FLASH = "my_digits_flash"  # (kind, text) shown once
RESULTS = "my_digits_results"  # TeachResults or None
CONFIRM = "my_digits_confirm"  # index of the outcome waiting for "replace the upload?"
MODEL_CHOICE = "my_digits_model"
MNIST_CACHE = "my_digits_mnist_acc"
FINETUNED_NAME = "fine-tuning on your digits"

DIGITS = list(range(N_DIGITS))
TEST_FRACTION = 0.3
GALLERY_PAGE = 24
GALLERY_COLUMNS = 8
MISREADS_SHOWN = 12
LEARNING_RATES = (1e-4, 3e-4, 1e-3, 3e-3)


@dataclass
class Candidate:
    """A network the page can measure and teach."""

    kind: str  # "run" | "uploaded" | "starter" | "history"
    model: object  # nn_core.MLP
    class_names: tuple[str, ...]
    label: str
    short: str  # for the name of a run made from it, e.g. "run 2"


@dataclass
class TeachResults:
    """The last fine-tuning of this session: what it started from and what came out."""

    source: str  # the starting network, as the page names it
    source_name: str  # short, for the kept run's name
    source_key: tuple
    version: int  # the set's version it used
    outcomes: list[Outcome]
    class_names: tuple[str, ...]
    images: np.ndarray  # the held-out images, in Outcome.held_out order (for the changes)
    kept: int | None = None


# ------------------------------------------------------------------------ state
def init() -> PersonalSet:
    """Write this page's defaults once per session; return the set."""
    ss = st.session_state
    ss.setdefault(SET, empty_set())
    for key in (VERSION, CANVAS_N, UPLOAD_N):
        ss.setdefault(key, 0)
    for key in (UPLOAD_ERROR, FLASH, RESULTS, CONFIRM):
        ss.setdefault(key, None)
    return ss[SET]


def personal_set() -> PersonalSet:
    current = st.session_state.get(SET)
    return empty_set() if current is None else current


def _replace_set(new: PersonalSet) -> None:
    ss = st.session_state
    ss[SET] = new
    ss[VERSION] = ss.get(VERSION, 0) + 1


def _flash(kind: str, text: str) -> None:
    st.session_state[FLASH] = (kind, text)


def show_flash() -> None:
    """The message of the last action (added, deleted, kept...), once."""
    message = st.session_state.pop(FLASH, None)
    if message:
        getattr(st, message[0])(message[1])


def cap() -> int:
    return get_limits().max_personal_samples


def add_sample_to_set(image: np.ndarray, label: int, rgba: np.ndarray | None = None) -> bool:
    """Add a drawing (its 28x28 image, label and canvas) to this session's set.

    Returns False, with a message, when the set is full (``cap()``).
    """
    current = personal_set()
    if len(current) >= cap():
        _flash(
            "error",
            f"Your set is full: this server keeps at most {_digits(cap())} per session "
            "(DIGITLAB_MAX_PERSONAL_SAMPLES). Download it and delete some to add more.",
        )
        return False
    raw = raw_from_canvas(rgba) if rgba is not None else None
    _replace_set(add_sample(current, np.asarray(image, np.uint8), int(label), raw))
    _flash("success", f"Added a {int(label)}. Your set has {_digits(len(current) + 1)}.")
    return True


def _digits(n: int) -> str:
    return f"{n} digit" if n == 1 else f"{n} digits"


def next_digit(personal: PersonalSet) -> int:
    """The digit to ask for: the one with the fewest samples (the smallest on ties)."""
    return int(np.argmin(personal.counts()[:N_DIGITS]))


# ------------------------------------------------------------------------ collect
def collect_section() -> None:
    """Ask for a digit, let the person draw it, correct the label and add it."""
    from streamlit_drawable_canvas import st_canvas  # needs the Streamlit runtime

    ss = st.session_state
    personal = personal_set()
    asked = next_digit(personal)
    n = ss[CANVAS_N]
    st.markdown(f"### Draw a **{asked}**")
    left, middle, right = st.columns([3, 2, 3])
    with left:
        st.space("medium")  # room for the canvas's floating toolbar
        canvas = st_canvas(
            stroke_width=18,
            stroke_color="#FFFFFF",
            background_color="#000000",
            height=280,
            width=280,
            drawing_mode="freedraw",
            update_streamlit=True,
            return_image_data=True,
            key=f"my_digits_canvas_{n}",
        )
        keep_toolbar_off_the_canvas()  # its hidden toolbar swallowed strokes (ui/drawing.py)
        st.button("Clear", key="my_digits_clear", on_click=_clear_canvas)
    rgba = canvas.image_data if canvas is not None else None
    image = _preprocess(rgba)
    with middle:
        st.markdown("**What the network sees** (28x28)")
        st.image(digit_image(image if image is not None else np.zeros((28, 28), np.uint8), 5))
        label = st.selectbox(
            "This is a", DIGITS, index=asked, key=f"my_digits_label_{n}_{asked}",
            help="Change it if you drew another digit than the one asked for.",
        )  # fmt: skip
        st.button(
            "Add to my digits",
            key="my_digits_add",
            type="primary",
            disabled=image is None,
            on_click=_add_drawing,
            args=(image, label, rgba),
        )
        if image is None:
            st.caption("Draw on the black canvas first.")
    with right:
        counts_chart(personal, asked)


def _preprocess(rgba) -> np.ndarray | None:
    from nn_core.preprocess import preprocess_drawing

    if rgba is None:
        return None
    return preprocess_drawing(np.asarray(rgba, dtype=np.uint8))


def _clear_canvas() -> None:
    st.session_state[CANVAS_N] += 1


def _add_drawing(image: np.ndarray | None, label: int, rgba) -> None:
    if image is None:
        return
    rgba = None if rgba is None else np.asarray(rgba, dtype=np.uint8)
    if add_sample_to_set(image, label, rgba):
        _clear_canvas()


def counts_chart(personal: PersonalSet, asked: int | None = None) -> None:
    counts = personal.counts()[:N_DIGITS]
    figure = charts.bar_figure(
        counts, [str(d) for d in DIGITS], title=f"Your digits: {len(personal)}",
        y_title="samples", highlight=asked, height=240,
    )  # fmt: skip
    figure.update_yaxes(rangemode="tozero", dtick=max(1, int(counts.max(initial=0)) // 5 or 1))
    st.plotly_chart(figure, key="my_digits_counts", width="stretch")
    missing = [str(d) for d in DIGITS if counts[d] == 0]
    if len(personal) and missing:
        st.caption(f"No {', '.join(missing)} yet.")


# ------------------------------------------------------------------------ the set
def set_section() -> None:
    """Download, upload, delete all, and the gallery."""
    personal = personal_set()
    st.subheader(f"Your set ({_digits(len(personal))})")
    st.caption(
        f"Kept in this session only (up to {cap()} digits), never shown to other visitors. "
        "Download it to keep it: the .npz works here again and on the command line "
        "(`python -m nn_core evaluate --model M.npz --data my_digits.npz`, "
        "`python -m nn_core finetune --model M.npz --data my_digits.npz`)."
    )
    down, up = st.columns(2)
    with down:
        download_set_button(personal)
        if len(personal):
            st.button("Delete all", key="my_digits_delete_all", on_click=_delete_all)
    with up:
        upload_set_widget()
    if len(personal):
        # A fixed label: a label that changes makes a new expander, closed, after each delete.
        with st.expander("Gallery: look at your digits, correct a label, delete"):
            gallery(personal)


def download_set_button(personal: PersonalSet) -> None:
    try:
        data = to_npz_bytes(personal)
    except ValueError as exc:
        st.button("Download my digits (.npz)", key="my_digits_download_off", disabled=True)
        st.caption(str(exc) if len(personal) else "Nothing to download yet.")
        return
    st.download_button(
        "Download my digits (.npz)",
        data=data,
        file_name="my_digits.npz",
        mime="application/octet-stream",
        key="my_digits_download",
    )


def _delete_all() -> None:
    _replace_set(empty_set())
    _flash("info", "Deleted every digit of your set.")


def upload_set_widget() -> None:
    ss = st.session_state
    st.file_uploader(
        "Upload a set (.npz saved here, or any data set of 28x28 digits)",
        type=["npz"],
        key=f"my_digits_upload_{ss[UPLOAD_N]}",
        on_change=_on_upload,
    )
    if ss.get(UPLOAD_ERROR):
        st.error(ss[UPLOAD_ERROR])


def _on_upload() -> None:
    """Read the uploaded set through the data loaders and add its digits, or say why not."""
    ss = st.session_state
    file = ss.get(f"my_digits_upload_{ss[UPLOAD_N]}")
    ss[UPLOAD_ERROR] = None
    if file is None:
        return
    ss[UPLOAD_N] += 1  # an empty uploader for the next file (or the same one again)
    try:
        uploaded = load_personal_set(file, max_bytes=get_limits().max_upload_bytes)
        problem = upload_problem(uploaded, getattr(file, "name", "the file"), personal_set())
    except DataError as exc:
        problem = str(exc)
    except Exception as exc:  # last line of defence: an unforeseen file must not break the page
        problem = (
            f"{getattr(file, 'name', 'This file')} could not be read as a set of digits "
            f"({type(exc).__name__}: {exc}). Upload an .npz saved from this page."
        )
    if problem:
        ss[UPLOAD_ERROR] = problem
        return
    merged = personal_set()
    for image, label, raw in zip(uploaded.images, uploaded.labels, uploaded.raws, strict=True):
        merged = add_sample(merged, image, int(label), raw)
    _replace_set(merged)
    _flash("success", f"Added {len(uploaded)} digits from {file.name}: your set has {len(merged)}.")


def upload_problem(uploaded: PersonalSet, name: str, current: PersonalSet) -> str:
    """Why an uploaded set cannot join this session's set, or ""."""
    if uploaded.image_shape != current.image_shape:
        h, w = uploaded.image_shape
        return (
            f"{name} holds {h}x{w} images, but My digits holds 28x28 drawings (MNIST's size), "
            "so a network could not read both. Upload a set saved from this page; measure "
            f"other sizes with the command line (`python -m nn_core evaluate --data {name}`)."
        )
    if int(uploaded.labels.max(initial=0)) >= N_DIGITS:
        return (
            f"{name} has labels up to {int(uploaded.labels.max())}, but My digits are 0 to 9. "
            "Upload a set of digits."
        )
    if len(current) + len(uploaded) > cap():
        return (
            f"{name} holds {len(uploaded)} digits; with your {len(current)} this session would "
            f"hold more than its cap of {cap()} (DIGITLAB_MAX_PERSONAL_SAMPLES). Delete some "
            "first, or upload a smaller set."
        )
    return ""


def gallery(personal: PersonalSet) -> None:
    """The set's images, a digit at a time or all, with a label box and Delete on each."""
    ss = st.session_state
    version = ss[VERSION]
    a, b, c = st.columns(3)
    which = a.selectbox(
        "Show", ["all", *DIGITS], key="my_digits_show",
        format_func=lambda d: "every digit" if d == "all" else f"{d}s",
    )  # fmt: skip
    as_drawn = c.toggle("As drawn", key="my_digits_as_drawn", help="the canvas, not the 28x28")
    chosen = (
        np.arange(len(personal)) if which == "all" else np.flatnonzero(personal.labels == which)
    )
    pages = max(1, -(-len(chosen) // GALLERY_PAGE))
    page = b.number_input("Page", 1, pages, 1, key="my_digits_gallery_page") if pages > 1 else 1
    shown = chosen[(page - 1) * GALLERY_PAGE : page * GALLERY_PAGE]
    if not shown.size:
        st.caption("None of those yet.")
    for start in range(0, shown.size, GALLERY_COLUMNS):
        columns = st.columns(GALLERY_COLUMNS)
        for column, i in zip(columns, shown[start : start + GALLERY_COLUMNS], strict=False):
            with column, st.container(border=True, key=f"my_digits_tile_{i}"):
                _tile(personal, int(i), version, as_drawn)


def _tile(personal: PersonalSet, i: int, version: int, as_drawn: bool) -> None:
    if as_drawn and personal.raws[i].any():
        st.image(personal.raws[i], width=84)
    else:
        st.image(digit_image(personal.images[i], 3))
    st.selectbox(
        f"#{i + 1} is a", DIGITS, index=int(personal.labels[i]),
        key=f"my_digits_relabel_{version}_{i}", on_change=_relabel, args=(i, version),
    )  # fmt: skip
    st.button("Delete", key=f"my_digits_del_{version}_{i}", on_click=_delete, args=(i,))


def _relabel(i: int, version: int) -> None:
    label = st.session_state[f"my_digits_relabel_{version}_{i}"]
    _replace_set(relabel_sample(personal_set(), i, int(label)))
    _flash("success", f"Digit #{i + 1} is now labelled {label}.")


def _delete(i: int) -> None:
    personal = personal_set()
    _replace_set(remove_sample(personal, i))
    _flash("info", f"Deleted digit #{i + 1} (a {int(personal.labels[i])}).")


# ------------------------------------------------------------------------ measure
def candidates() -> dict[str, Candidate]:
    """The networks of this session, in the order pages prefer them, then the run
    history's other runs."""
    ss = st.session_state
    out = {}
    run = ss.get(keys.RUN)
    if run is not None:
        names = tuple(run.dataset.class_names)
        entry = session_history().entry_of(run)
        short = entry.name if entry is not None else "the session's run"
        out["run"] = Candidate(
            "run", run.model, names, "the network trained in this session", short
        )
    loaded = ss.get(keys.UPLOADED_MODEL)
    if loaded is not None:
        finetuned = str(ss.get(MODEL_NAME, "")).startswith(FINETUNED_NAME)
        label = "the fine-tuned model you kept" if finetuned else "the uploaded model"
        short = "the fine-tuned model" if finetuned else "the uploaded model"
        out["uploaded"] = Candidate(
            "uploaded", loaded.model, tuple(loaded.class_names), label, short
        )
    starter = starter_model()
    if starter is not None:
        out["starter"] = Candidate(
            "starter", starter.model, tuple(starter.class_names), "the starter model",
            "the starter model",
        )  # fmt: skip
    shown = [c.model for c in out.values()]
    for entry in session_history().entries:
        record = entry.record
        if entry.run is not None or record is None or record.model is None:
            continue
        if any(_same_weights(record.model, model) for model in shown):
            continue  # already offered (e.g. the run made current on the Runs page)
        names = tuple(record.class_names) or tuple(str(d) for d in DIGITS)
        out[f"history_{entry.id}"] = Candidate(
            "history", record.model, names, f"{entry.name} from the run history", entry.name
        )
    return out


def _same_weights(a, b) -> bool:
    return a.sizes == b.sizes and np.array_equal(a.params, b.params)


def choose_model() -> Candidate | None:
    """A radio of this session's networks (the pages' current one first); the chosen one."""
    choices = candidates()
    if not choices:
        st.info("No network yet: train one from the sidebar, or upload a model on the Models page.")
        return None
    ss = st.session_state
    if ss.get(MODEL_CHOICE) not in choices:
        ss[MODEL_CHOICE] = next(iter(choices))
    labels = {
        k: c.label + f" ({keys.architecture_label(c.model.sizes)})" for k, c in choices.items()
    }
    kind = st.radio("Network", list(choices), format_func=labels.get, key=MODEL_CHOICE)
    st.caption(
        "This session's networks and the runs of its history (Runs page). Fine-tuning works "
        "on a copy: the network you pick is never changed, and a fine-tuned one you keep "
        "becomes a new run."
    )
    return choices[kind]


def _model_key(model) -> tuple:
    """Identifies a network's weights at this moment (a run's change as it trains)."""
    return (id(model), zlib.crc32(np.ascontiguousarray(model.params).view(np.uint8)))


def mnist_accuracy(model) -> float | None:
    """The network's accuracy on MNIST's test set (cached per weights), or None when it
    cannot read MNIST (another image size or fewer than 10 classes)."""
    if model.sizes[0] != 784 or model.sizes[-1] < N_DIGITS:
        return None
    ss = st.session_state
    cache = ss.setdefault(MNIST_CACHE, {})
    key = _model_key(model)
    if key not in cache:
        if len(cache) > 8:
            cache.clear()
        data = mnist()
        cache[key] = float(evaluate(model, data.x_test, data.y_test)["accuracy"])
    return cache[key]


def measure_section(candidate: Candidate | None) -> None:
    """Accuracy on your digits next to MNIST's, the confusion matrix, the misreads."""
    st.subheader("Measure: how well does it read your digits?")
    personal = personal_set()
    if candidate is None:
        return
    if not len(personal):
        st.info("Your set is empty: draw some digits above, or upload a set, to measure it.")
        return
    model = candidate.model
    try:
        check_fits(model, personal.images, personal.labels)
    except FinetuneError as exc:
        st.warning(str(exc))
        return
    result = evaluate(model, personal.images, personal.labels, n_classes=N_DIGITS)
    on_mnist = mnist_accuracy(model)
    a, b = st.columns(2)
    a.metric("MNIST test set", _pct(on_mnist), help="the official 10,000 test images")
    b.metric(f"Your digits ({len(personal)})", _pct(result["accuracy"]))
    st.markdown(f"**{_pct(on_mnist)} on MNIST, {_pct(result['accuracy'])} on my digits.**")
    missing = [str(d) for d in DIGITS if not personal.counts()[d]]
    if missing:
        st.caption(
            f"Your set has no {', '.join(missing)}: their rows of the matrix are empty, and "
            "the figure says nothing about them."
        )
    names = list(candidate.class_names)[:N_DIGITS]
    left, right = st.columns([1, 1])
    with left:
        figure = charts.confusion_figure(result["confusion"][:N_DIGITS, :N_DIGITS], names)
        figure.update_layout(title="Your digits: true (rows) against read (columns)", height=440)
        st.plotly_chart(figure, key="my_digits_confusion", width="stretch")
    with right:
        misreads(personal, result, names)


def misreads(personal: PersonalSet, result: dict, names: list[str]) -> None:
    order = misclassified(personal.labels, result["probs"])
    st.markdown(f"**Misreads: {len(order)}** (the most confident first)")
    if not order.size:
        st.success("The network reads every one of your digits right.")
        return
    shown = order[:MISREADS_SHOWN]
    for start in range(0, shown.size, 4):
        columns = st.columns(4)
        for column, i in zip(columns, shown[start : start + 4], strict=False):
            t, p = int(personal.labels[i]), int(result["y_pred"][i])
            probs = result["probs"][i]
            with column, st.container(border=True):
                st.image(digit_image(personal.images[i], 2))
                st.markdown(f"a **{t}** read as **{p}** ({probs[p]:.0%})")
                st.caption(f"{t}: {probs[t]:.0%}")
    if order.size > shown.size:
        st.caption(f"and {order.size - shown.size} more.")


def _pct(value: float | None) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{100 * value:.1f}%"


# ------------------------------------------------------------------------ teach
def teach_section(candidate: Candidate | None) -> None:
    """Settings, the split, the Fine-tune button and the results."""
    st.subheader("Teach: fine-tune the network on your digits")
    personal = personal_set()
    results = st.session_state.get(RESULTS)
    if candidate is None:
        return
    problem = teach_problem(candidate, personal)
    if problem:
        st.info(problem)
    else:
        settings, compare = teach_settings()
        split_note(personal)
        if st.button("Fine-tune", key="my_digits_teach", type="primary"):
            results = run_teach(candidate, personal, settings, compare)
    if results is not None:
        show_results(results, candidate)


def teach_problem(candidate: Candidate, personal: PersonalSet) -> str:
    """Why this network cannot be taught this set, in one sentence, or ""."""
    if len(personal) < 2:
        return (
            "Add at least two digits (better: a few of each) to fine-tune: some teach the "
            "network, the others are kept aside to test it."
        )
    try:
        check_fits(candidate.model, personal.images, personal.labels)
    except FinetuneError as exc:
        return str(exc)
    if mnist_accuracy(candidate.model) is None:
        return (
            "This network was not made for MNIST's 28x28 digits 0-9, so MNIST images cannot be "
            "replayed to it. Pick a network trained on MNIST."
        )
    return ""


def teach_settings() -> tuple[FinetuneSettings, float | None]:
    """The widgets; the settings and the replay share to compare with (or None)."""
    d = FinetuneSettings()
    a, b, c = st.columns(3)
    steps = a.slider("Steps (batches of 32)", 10, 1000, d.steps, 10, key="my_digits_steps")
    replay = b.slider(
        "Replay: MNIST share of each batch", 0, 90, int(d.replay * 100), 10, format="%d%%",
        key="my_digits_replay",
        help="Old digits mixed into every batch so the network does not forget them.",
    )  # fmt: skip
    lr = c.select_slider(
        "Learning rate", LEARNING_RATES, d.lr, key="my_digits_lr", format_func=lambda v: f"{v:g}"
    )
    e, f = st.columns(2)
    augment = e.checkbox(
        f"Augment your digits (shifts up to {d.augment_shift} px, rotations up to "
        f"{d.augment_rotation:g} degrees)",
        value=True,
        key="my_digits_augment",
    )
    other = 0 if replay else 50
    compare = f.checkbox(
        f"Also fine-tune with replay {other}% to compare (forgetting)",
        value=True,
        key="my_digits_compare",
    )
    settings = FinetuneSettings(
        steps=int(steps), lr=float(lr), replay=replay / 100,
        augment_shift=d.augment_shift if augment else 0,
        augment_rotation=d.augment_rotation if augment else 0.0,
    )  # fmt: skip
    return settings, (other / 100 if compare else None)


def split_note(personal: PersonalSet) -> None:
    n = len(personal)
    counts = personal.counts()[:N_DIGITS]
    if split_mode(n) == "leave-one-out":
        text = (
            f"With {n} digits, each is tested by leave-one-out: {n} fine-tunes, each tested on "
            "the digit it did not learn from; the network you can keep learns from all of them."
        )
    else:
        _, held = per_digit_split(personal.labels, TEST_FRACTION, np.random.default_rng(0))
        text = (
            f"{held.size} of your {n} digits ({TEST_FRACTION:.0%} of each digit) are kept aside "
            f"to test on; the other {n - held.size} teach the network."
        )
        singles = [str(d) for d in DIGITS if counts[d] == 1]
        if singles:
            text += f" Digits with one sample ({', '.join(singles)}) only teach."
    missing = [str(d) for d in DIGITS if counts[d] == 0]
    if missing:
        text += (
            f" Your set has no {', '.join(missing)}: the network is not taught those, and only "
            "replay keeps it from forgetting them."
        )
    st.caption(text)


def run_teach(
    candidate: Candidate,
    personal: PersonalSet,
    settings: FinetuneSettings,
    compare: float | None,
) -> TeachResults | None:
    """Fine-tune (once, or twice to compare replay shares); keep the results in the
    session. Returns None, with a message, when it cannot run."""
    data = mnist()
    ratios = [settings.replay] + ([] if compare is None else [compare])
    outcomes = []
    try:
        with st.spinner("Fine-tuning…"), runs_view.training_slot():
            for ratio in ratios:
                outcomes.append(
                    teach(
                        candidate.model,
                        personal.images,
                        personal.labels,
                        with_replay(settings, ratio),
                        replay_set=(data.x_train, data.y_train),
                        test_set=(data.x_test, data.y_test),
                        test_fraction=TEST_FRACTION,
                    )
                )
    except (FinetuneError, runs_view.ServerBusyError) as exc:
        st.error(f"{exc} Your network is unchanged.")
        return None
    held = outcomes[0].held_out
    results = TeachResults(
        source=candidate.label,
        source_name=candidate.short,
        source_key=_model_key(candidate.model),
        version=st.session_state[VERSION],
        outcomes=outcomes,
        class_names=tuple(candidate.class_names),
        images=personal.images[held].copy(),
    )
    st.session_state[RESULTS] = results
    st.session_state[CONFIRM] = None
    return results


def show_results(results: TeachResults, candidate: Candidate) -> None:
    """Before and after side by side, what changed, and keep / discard."""
    ss = st.session_state
    changed_network = results.source != candidate.label or results.source_key != _model_key(
        candidate.model
    )
    stale = results.version != ss[VERSION] or (results.kept is None and changed_network)
    first = results.outcomes[0]
    split = (
        "leave-one-out over all your digits"
        if first.mode == "leave-one-out"
        else f"{first.held_out.size} held-out digits"
    )
    st.markdown(f"#### Before and after ({split}), starting from {results.source}")
    if stale:
        st.caption("Your set or the network changed since: these figures are for the earlier one.")
    columns = st.columns(1 + len(results.outcomes))
    with columns[0], st.container(border=True, key="my_digits_before"):
        st.markdown("**Before**")
        st.metric("Your held-out digits", _pct(first.before.personal_accuracy))
        st.metric("MNIST test set", _pct(first.before.test_accuracy))
    for i, (column, outcome) in enumerate(zip(columns[1:], results.outcomes, strict=True)):
        with column, st.container(border=True, key=f"my_digits_after_{i}"):
            _after_column(results, outcome, i)
    forgetting_sentence(results)
    changed_digits(results)
    confirm_replace()
    if results.kept is None:
        st.button("Discard these results", key="my_digits_discard", on_click=_discard)


def _after_column(results: TeachResults, outcome: Outcome, i: int) -> None:
    before, after = outcome.before, outcome.after
    st.markdown(f"**After, replay {outcome.settings.replay:.0%}**")
    _change_metric("Your held-out digits", after.personal_accuracy, before.personal_accuracy)
    _change_metric("MNIST test set", after.test_accuracy, before.test_accuracy)
    st.caption(f"{outcome.settings.steps} steps, {outcome.seconds:.1f} s")
    if results.kept == i:
        st.success("Kept: this session's model now.")
    elif results.kept is None:
        st.button("Keep this model", key=f"my_digits_keep_{i}", on_click=_keep, args=(i,))
    st.download_button(
        "Download (.npz)",
        data=_model_bytes(outcome, results.class_names),
        file_name=f"digitlab-finetuned-replay{round(outcome.settings.replay * 100)}.npz",
        mime="application/octet-stream",
        key=f"my_digits_download_model_{i}",
    )


def _change_metric(label: str, after: float | None, before: float | None) -> None:
    """A figure after fine-tuning, with its change in points (grey when there is none)."""
    if after is None or before is None or not (np.isfinite(after) and np.isfinite(before)):
        st.metric(label, _pct(after))
        return
    change = 100 * (after - before)
    if abs(change) < 0.05:
        st.metric(label, _pct(after), "±0 points", delta_color="off")
        return
    st.metric(label, _pct(after), f"{change:+.1f} points")


def forgetting_sentence(results: TeachResults) -> None:
    parts = []
    for outcome in results.outcomes:
        b, a = outcome.before.test_accuracy, outcome.after.test_accuracy
        if a is None or b is None:
            continue
        change = 100 * (a - b)
        verb = "fell" if change < 0 else "rose"
        parts.append(
            f"with replay {outcome.settings.replay:.0%}, MNIST accuracy {verb} by "
            f"{abs(change):.1f} points"
        )
    if parts:
        st.markdown("Forgetting: " + "; ".join(parts) + ".")


def changed_digits(results: TeachResults) -> None:
    """The held-out digits whose prediction changed, per result."""
    for i, outcome in enumerate(results.outcomes):
        changed = outcome.changed
        title = f"Predictions that changed (replay {outcome.settings.replay:.0%}): {changed.size}"
        with st.expander(title, expanded=i == 0 and changed.size > 0):
            if not changed.size:
                st.caption("None of your held-out digits is read differently.")
            for start in range(0, changed.size, 6):
                columns = st.columns(6)
                for column, j in zip(columns, changed[start : start + 6], strict=False):
                    label = int(outcome.labels[j])
                    was = int(outcome.before.personal_pred[j])
                    now = int(outcome.after.personal_pred[j])
                    mark = (
                        "✓ now right" if now == label else ("✗ now wrong" if was == label else "")
                    )
                    with column, st.container(border=True):
                        st.image(digit_image(results.images[j], 2))
                        st.markdown(f"a **{label}**: {was} → **{now}**")
                        st.caption(mark)


def _model_bytes(outcome: Outcome, class_names: tuple[str, ...]) -> bytes:
    buffer = io.BytesIO()
    save_model(
        buffer, outcome.model, class_names=list(class_names),
        training={"finetuned": _summary(outcome)}, image_shape=(28, 28),
    )  # fmt: skip
    return buffer.getvalue()


def _summary(outcome: Outcome) -> dict:
    summary = outcome.summary()
    summary.pop("changed")
    return summary


def _keep(i: int) -> None:
    """Keep fine-tuned result ``i``: a new run in the run history, and this session's model;
    ask first when that would replace an uploaded model kept nowhere else."""
    ss = st.session_state
    loaded = ss.get(keys.UPLOADED_MODEL)
    kept_elsewhere = loaded is not None and any(
        e.record is not None and e.record.model is not None
        and _same_weights(e.record.model, loaded.model)
        for e in session_history().entries
    )  # fmt: skip
    if loaded is not None and not kept_elsewhere:
        ss[CONFIRM] = i
        return
    _store_kept(i)


def _store_kept(i: int) -> None:
    """Add result ``i`` to the run history and make it the model the pages show (as the
    Runs page's Make current does: the session's run, if any, is kept in the history)."""
    ss = st.session_state
    results: TeachResults = ss[RESULTS]
    outcome = results.outcomes[i]
    replay = f"replay {outcome.settings.replay:.0%}"
    held = outcome.held_out.size if outcome.mode == "per-digit" else 0
    n_train = len(personal_set()) - held
    record = finetune_record(
        outcome, name=f"{results.source_name} fine-tuned on my digits ({replay})",
        class_names=results.class_names, n_train=n_train,
    )  # fmt: skip
    history = session_history()
    entry = history.add_record(record)
    history.enforce_budget(history_budget(get_limits()))
    ss[CONFIRM] = None
    results.kept = i
    run = ss.get(keys.RUN)
    if run is not None and run.active:
        _flash(
            "success",
            f"Kept as {entry.name!r} in the run history. The session's training is still "
            "running, so the pages show it: stop it, then press Make current on the Runs page.",
        )
        return
    runs_view.on_make_current(entry.id)
    ss.pop(runs_view.MESSAGE, None)  # said here instead, not later on the Runs page
    ss[MODEL_NAME] = f"{FINETUNED_NAME} ({replay})"
    ss[keys.MODEL_ERROR] = None
    ss[MODEL_CHOICE] = "uploaded"
    earlier = " Your earlier run stays in the run history." if run is not None else ""
    _flash(
        "success",
        f"Kept the fine-tuned model ({replay}) as {entry.name!r} in the run history; every "
        f"page now shows it.{earlier}",
    )


def confirm_replace() -> None:
    ss = st.session_state
    i = ss.get(CONFIRM)
    if i is None:
        return
    name = ss.get(MODEL_NAME, "the uploaded file")
    st.warning(
        f"Keeping it replaces this session's uploaded model (from {name}). Download that one "
        "first on the Models page if you want it back later."
    )
    a, b = st.columns(2)
    a.button("Replace it", key="my_digits_confirm_yes", on_click=_store_kept, args=(i,))
    b.button("Cancel", key="my_digits_confirm_no", on_click=_cancel_confirm)


def _cancel_confirm() -> None:
    st.session_state[CONFIRM] = None


def _discard() -> None:
    ss = st.session_state
    ss[RESULTS] = None
    ss[CONFIRM] = None
    _flash("info", "Discarded the fine-tuned networks; the original is unchanged.")


# ------------------------------------------------------------------------ the Draw page
def this_was_widget(image: np.ndarray | None, rgba, predicted: int | None) -> None:
    """On the Draw page: "This was a …" adds the drawing to My digits with its right label."""
    if image is None:
        return
    init()
    left, right = st.columns([1, 1])
    label = left.selectbox(
        "This was a", DIGITS, index=predicted if predicted in DIGITS else 0,
        key=f"draw_this_was_{predicted}",
    )  # fmt: skip
    right.button(
        "Add to My digits",
        key="draw_add_to_my_digits",
        on_click=add_sample_to_set,
        args=(image, label, None if rgba is None else np.asarray(rgba, np.uint8)),
    )
    show_flash()
