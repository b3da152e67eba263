"""The random-start comparison on the authors' shipped Int network: their attack (start at x) leaves
MNIST demo image #8 a 1 at eps 0.35, one random start flips it, and the trace shows why: from x
most signed steps point out of the [0, 1] box and are cancelled, from the random start few are."""

from __future__ import annotations

import numpy as np
import torch

from interp_core.data import load_dataset
from interp_core.models import load_model
from interp_core.services.explore import ExploreImages
from interp_core.services.random_start import STARTS, start_comparison, step_trace

INT = "mnist-smallgap-int-paper"


def test_the_authors_start_keeps_the_label_and_a_random_start_flips_it():
    data = load_dataset("mnist", "demo")
    runs = start_comparison(load_model(INT)[0], ExploreImages(data.images[8:9], data.labels[8:9], data.class_names),
                            0.35, name=INT)
    authors, random = (runs[label] for label in STARTS)
    assert not authors.result.models[0].goal_reached[0] and authors.result.models[0].adv_pred[0] == 1
    assert random.result.models[0].goal_reached[0]
    assert authors.trace.loss.shape == random.trace.loss.shape == (201, 1)
    assert authors.trace.step_mean("box_blocked")[0] > 0.7 > 0.3 > random.trace.step_mean("box_blocked")[0]
    assert authors.trace.loss[-1, 0] < 1 < 10 < random.trace.loss[-1, 0]
    assert (authors.trace.zero_grad == 0).all()  # no dead gradient: the box cancels the steps


def test_step_trace_counts_a_step_out_of_the_box_as_blocked():
    model = load_model(INT)[0]
    x = torch.zeros(1, 1, 28, 28)
    trace = step_trace(model, torch.stack([x, x]), x, torch.tensor([1]), 0.35)
    # at x = 0 every pixel whose gradient is negative is blocked; nothing moved between equal iterates
    assert 0 < trace.box_blocked[0, 0] <= 1 and np.all(trace.moved == 0) and trace.ball_blocked.max() == 0
