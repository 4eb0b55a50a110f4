""" "Show me" lessons: a network set up to show one classic failure, trained briefly.

A lesson is a set of settings like any other (a ``TrainConfig`` and a number of training
images, all within what the dashboard offers, so a share link carries it) plus what to
look at. The failure it shows is the ``nn_core.health`` warning named by ``shows``.
Figures below are seed 0 on the shipped MNIST.
"""

from __future__ import annotations

from dataclasses import dataclass

from nn_core.config import TrainConfig


@dataclass(frozen=True)
class Lesson:
    """One failure to show.

    Attributes
    ----------
    name : str
        Its key in links (``lesson=<name>``).
    title : str
    button : str
        The label of the button that runs it.
    setup : str
        What the settings are and why they fail, in plain words.
    look_at : str
        Where the evidence shows.
    config : TrainConfig
    train_images : int
        Training images (a stratified subset; 0 = all).
    shows : tuple of str
        The ``nn_core.health.HealthWarning`` kinds the run is expected to raise.
    """

    name: str
    title: str
    button: str
    setup: str
    look_at: str
    config: TrainConfig
    train_images: int
    shows: tuple[str, ...]


LESSONS: dict[str, Lesson] = {
    lesson.name: lesson
    for lesson in (
        # The loss stays at ln(10) = 2.30 for all 3 epochs: layer 1's gradient, relative to
        # its weights, is 0.5-3% of the output layer's.
        Lesson(
            name="vanishing",
            title="Vanishing gradients",
            button="Deep sigmoid: vanishing gradients",
            setup=(
                "Four hidden layers of 64 sigmoid units, trained with SGD. A sigmoid's slope "
                "is at most 0.25, so the error signal shrinks at every layer it goes back "
                "through: the first layers hardly learn and the loss stays at chance."
            ),
            look_at=(
                "Gradient size per layer: layer 1's line lies far below layer 5's, and the "
                "loss does not fall."
            ),
            config=TrainConfig(
                hidden=(64, 64, 64, 64),
                activation="sigmoid",
                init="glorot",
                optimizer="sgd",
                lr=0.1,
                momentum=0.9,
                batch_size=64,
                epochs=3,
            ),
            train_images=5000,
            shows=("vanishing",),
        ),
        # Diverges in epoch 1, batch 10; by batch 8, 80% of layer 1's and 95% of layer
        # 2's units are dead; at batch 4 one step changed layer 3 by its own size.
        Lesson(
            name="dead",
            title="Dead ReLUs and divergence",
            button="ReLU, huge learning rate: dead units",
            setup=(
                "A ReLU network trained with SGD at a learning rate of 1, ten to a hundred "
                "times too large. The first steps throw the weights so far that most units "
                "output 0 for every image (dead: no gradient flows through them again), "
                "and the loss explodes."
            ),
            look_at=(
                "Dead units per layer climbing past half, the update/weight ratio reaching "
                "1 where the divergence started, and the divergence message."
            ),
            config=TrainConfig(
                hidden=(128, 64),
                activation="relu",
                optimizer="sgd",
                lr=1.0,
                momentum=0.9,
                batch_size=64,
                epochs=2,
            ),
            train_images=5000,
            shows=("diverged", "dead"),
        ),
        # The validation loss is lowest near epoch 3-8 (about 0.40) and rises to 0.43 by
        # epoch 20 while the training loss falls to 0.000.
        Lesson(
            name="overfitting",
            title="Overfitting",
            button="No regularisation, 1,000 images: overfitting",
            setup=(
                "A 256-128 ReLU network, no dropout, no L2, no augmentation, trained for 20 "
                "epochs on only 1,000 images (800 to train on, 200 to validate). It learns "
                "the 800 by heart: the training loss goes to zero while the validation "
                "loss turns and rises."
            ),
            look_at=(
                "Training and validation loss: the training loss goes to zero while the "
                "validation loss passes its lowest point and rises; the gap between them is "
                "what the network learned by heart."
            ),
            config=TrainConfig(
                hidden=(256, 128),
                activation="relu",
                optimizer="adam",
                lr=3e-3,
                batch_size=32,
                epochs=20,
                val_fraction=0.2,
            ),
            train_images=1000,
            shows=("overfitting",),
        ),
    )
}
