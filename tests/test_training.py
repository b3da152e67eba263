"""Training methods, schedules and the trainer (docs/method.md#training), on tiny batches of the
committed demo images."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from interp_core.attacks import PGD
from interp_core.interpret import get_explainer
from interp_core.models import build_model, load_checkpoint
from interp_core.training import (
    ADVERSARIAL,
    PRESETS,
    TRAINING_METHODS,
    MethodConfig,
    TrainConfig,
    TrainingDiverged,
    cam_discrepancy,
    config_to_args,
    make_config,
    state_path,
    train,
)
from interp_core.training.methods import INNER_OBJECTIVES, _cam_and_logits


@pytest.fixture(scope="module")
def batch():
    from interp_core.data import load_dataset

    data = load_dataset("mnist", "demo", n=16)
    return data.images, data.labels


def _warm_model(x, y, steps: int = 30):
    """A smallgap network trained a little on the batch, so losses and gradients are not flat."""
    torch.manual_seed(0)
    model = build_model("smallgap", 1, 10)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model


CFG = MethodConfig(eps=0.1, steps=3, step_size=0.04, gamma=0.01, seed=3)


def _cfg(method: str) -> MethodConfig:
    from interp_core.training import DEFAULT_GAMMA

    return MethodConfig(eps=CFG.eps, steps=CFG.steps, step_size=CFG.step_size, gamma=DEFAULT_GAMMA[method] or 0.01,
                        seed=CFG.seed)


@pytest.mark.parametrize("method", sorted(TRAINING_METHODS))
def test_one_step_lowers_loss_and_reaches_every_parameter(method, batch):
    x, y = batch
    model = _warm_model(x, y)
    loss_fn, cfg = TRAINING_METHODS[method], _cfg(method)
    loss, logs = loss_fn(model, x, y, cfg)
    assert torch.isfinite(loss) and 0 <= logs["accuracy"] <= 1
    grads = torch.autograd.grad(loss, list(model.parameters()))
    for (name, _), g in zip(model.named_parameters(), grads):
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0, name
    norm = torch.sqrt(sum((g ** 2).sum() for g in grads))
    with torch.no_grad():
        for p, g in zip(model.parameters(), grads):
            p -= 1e-3 * g / norm  # a short step along the negative gradient
    after, _ = loss_fn(model, x, y, cfg)
    assert after.item() < loss.item()


@pytest.mark.parametrize("method", ADVERSARIAL)
def test_inner_maximization_increases_its_objective(method, batch):
    x, y = batch
    model = _warm_model(x, y)
    cfg = _cfg(method)
    objective = INNER_OBJECTIVES[method](model, x, y, cfg)
    start = PGD(cfg.eps, cfg.step_size, 0, random_start=True, objective=objective, seed=cfg.seed, keep_best=False)
    ascend = PGD(cfg.eps, cfg.step_size, cfg.steps, random_start=True, objective=objective, seed=cfg.seed,
                 keep_best=False)
    value = objective if callable(objective) else (
        lambda m, xa, x0, y0, t: torch.nn.functional.cross_entropy(m(xa), y0, reduction="none"))

    def score(x_adv):
        return value(model, x_adv.requires_grad_(True), x, y, None).detach().mean().item()

    assert score(ascend(model, x, y)) > score(start(model, x, y))


def test_discrepancy_zero_at_x_and_matches_direct_cam_computation(batch):
    x, y = batch
    model = _warm_model(x, y, steps=5)
    x_adv = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    cam, logits = _cam_and_logits(model, x)
    assert torch.allclose(logits, model(x), atol=1e-5)
    assert cam_discrepancy(cam, cam, logits, y).abs().max() == 0
    cam_adv, logits_adv = _cam_and_logits(model, x_adv)
    explainer = get_explainer("cam")
    per_class = []
    for c in range(10):
        target = torch.full_like(y, c)
        diff = explainer(model, x_adv, target) - explainer(model, x, target)
        per_class.append(diff.abs().flatten(1).sum(1))
    dist = torch.stack(per_class, 1)  # (N, K)
    probs = torch.softmax(model(x_adv), 1)
    expected = []
    for i in range(len(y)):
        others = [c for c in range(10) if c != y[i]]
        p = probs[i, others] / probs[i, others].sum()
        expected.append(dist[i, y[i]] + (p * dist[i, others]).sum())
    expected = torch.stack(expected)
    assert torch.allclose(cam_discrepancy(cam, cam_adv, logits_adv, y), expected, rtol=1e-4, atol=1e-4)
    assert torch.allclose(cam_discrepancy(cam, cam_adv, logits_adv, y, one_class=True),
                          dist.gather(1, y[:, None]).squeeze(1), rtol=1e-5, atol=1e-5)


def test_schedules_follow_the_paper():
    cfg = make_config("int", "cifar10", preset="paper")
    assert cfg.lr_at(0) == 1e-3 and cfg.lr_at(40_000) == 1e-4 and cfg.lr_at(60_000) == 1e-5
    assert cfg.eps_at(4_999) == 0 and cfg.eps_at(70_000) == pytest.approx(8 / 255)
    assert cfg.eps_at(37_500) == pytest.approx(4 / 255)
    mnist = make_config("trades", "mnist")
    assert (mnist.batch_size, mnist.epochs, mnist.steps, mnist.step_size, mnist.gamma) == (50, 100, 40, 0.01, 1.0)
    with pytest.raises(ValueError, match="unknown training method"):
        make_config("bogus", "mnist")


def _tiny(method="int", **kw) -> TrainConfig:
    settings = dict(epochs=2, batch_size=8, subset=32, lr=1e-3, eps=0.1, eps_ramp=[1, 3], steps=2, step_size=0.05,
                    eval_n=8, eval_steps=2, checkpoint_every=3, train_split="demo", eval_split="demo", seed=5,
                    schedule_in="steps")
    settings.update(kw)
    return make_config(method, "mnist", preset="cpu", **settings)


def test_the_heldout_check_is_the_projects_robust_evaluation(mnist_normal):
    """The trainer's final check is the one robust evaluation (robust_accuracy, the authors' PGD),
    not an attack loop of its own: the same numbers on the same images."""
    from interp_core.data import load_dataset
    from interp_core.evaluate import robust_accuracy
    from interp_core.training.trainer import heldout_metrics

    cfg = _tiny("pgd-at", eval_n=40, eval_steps=5, eval_step_size=0.02, eps=0.1)
    data = load_dataset("mnist", "demo", n=40)
    rows = robust_accuracy(mnist_normal, data.images, data.labels, [0.0, 0.1], "paper", steps=5,
                           step_size=0.02).results
    got = heldout_metrics(mnist_normal, cfg, torch.device("cpu"))
    assert (got["heldout_clean_accuracy"], got["heldout_pgd_accuracy"]) == (rows[0]["accuracy"], rows[1]["accuracy"])


def test_train_writes_a_self_describing_checkpoint_and_reports_progress(tmp_path):
    events = []
    result = train(_tiny(), tmp_path / "m.safetensors", callbacks=(events.append,), log_every=1)
    assert result.status == "finished" and result.step == 8
    model, card = load_checkpoint(result.checkpoint)
    assert card.method == "int" and card.hyperparameters["eps"] == 0.1 and card.metrics["finished"]
    assert 0 <= card.metrics["heldout_pgd_accuracy"] <= card.metrics["heldout_clean_accuracy"] <= 1
    steps = [e for e in events if e["event"] == "step"]
    assert [e["step"] for e in steps] == list(range(1, 9))
    assert steps[0]["eps"] == 0 and steps[-1]["eps"] == pytest.approx(0.1)
    assert {"loss", "accuracy", "images_per_s", "epoch"} <= set(steps[0])
    assert torch.load(state_path(result.checkpoint), weights_only=True)["step"] == 8


def test_a_softplus_run_trains_and_ships_a_softplus_network(tmp_path):
    result = train(_tiny(activation="softplus", eval_n=0), tmp_path / "s.safetensors")
    model, card = load_checkpoint(result.checkpoint)
    assert card.activation == "softplus" and card.hyperparameters["activation"] == "softplus"
    assert model.softplus_beta == 1.0
    relu, _ = load_checkpoint(train(_tiny(eval_n=0), tmp_path / "r.safetensors").checkpoint)
    assert relu.softplus_beta is None and not torch.equal(relu.conv1.weight, model.conv1.weight)
    with pytest.raises(ValueError, match="activation must be one of"):
        _tiny(activation="tanh")


def test_stop_then_resume_equals_an_uninterrupted_run(tmp_path):
    full = train(_tiny(), tmp_path / "full.safetensors")
    calls = {"n": 0}

    def stop_after_three():
        calls["n"] += 1
        return calls["n"] >= 3

    part = tmp_path / "part.safetensors"
    stopped = train(_tiny(), part, stop=stop_after_three)
    assert stopped.status == "stopped" and stopped.step == 3
    resumed = train(_tiny(), part, resume=True)
    assert resumed.status == "finished" and resumed.step == 8
    a, b = load_file(str(full.checkpoint)), load_file(str(part))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_after_a_crash_uses_the_last_periodic_checkpoint(tmp_path):
    full = train(_tiny("pgd-at"), tmp_path / "full.safetensors")
    out = tmp_path / "crash.safetensors"

    def crash(event):
        if event["event"] == "step" and event["step"] == 5:
            raise KeyboardInterrupt  # a kill after the periodic checkpoint of step 3

    with pytest.raises(KeyboardInterrupt):
        train(_tiny("pgd-at"), out, callbacks=(crash,), log_every=1)
    assert load_checkpoint(out)[1].metrics["steps"] in (3, 4)
    train(_tiny("pgd-at"), out, resume=True)
    a, b = load_file(str(full.checkpoint)), load_file(str(out))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_different_settings(tmp_path):
    out = tmp_path / "m.safetensors"
    train(_tiny("normal", epochs=1), out)
    with pytest.raises(ValueError, match="settings differ"):
        train(_tiny("normal", epochs=2, lr=5e-3), out, resume=True)


def test_nonfinite_loss_stops_with_a_clear_error(tmp_path):
    with pytest.raises(TrainingDiverged, match="loss became"):
        train(_tiny("normal", lr=1e30, epochs=3), tmp_path / "m.safetensors")


def test_cli_train_json(tmp_path, capsys):
    import json

    from interp_core.cli import main

    code = main(["train", "--method", "trades", "--dataset", "mnist", "--preset", "cpu", "--epochs", "1",
                 "--subset", "16", "--batch-size", "8", "--steps", "1", "--train-split", "demo", "--eval-split",
                 "demo", "--eval-n", "8", "--eval-steps", "1", "--out", str(tmp_path), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["status"] == "finished" and result["steps"] == 2
    assert (tmp_path / "mnist-smallgap-trades.safetensors").is_file()


@pytest.mark.parametrize("preset,dataset", [(p, d) for p in sorted(PRESETS) for d in sorted(PRESETS[p])])
def test_train_flags_rebuild_every_config_field(preset, dataset):
    """The train command has one flag per TrainConfig field, and config_to_args (what background
    jobs run) gives back the same config through them, schedules in steps or in fractions."""
    from interp_core.cli import build_parser
    from interp_core.cli.train import config_from_args

    if PRESETS[preset][dataset].get("schedule_in") == "fraction":
        positions = dict(lr_steps=[[0.25, 1e-5], [0.5, 3e-6]], eps_ramp=[0.1, 0.6], gamma_start=0.05)
    else:
        positions = dict(lr_steps=[[10, 1e-5], [20, 3e-6]], eps_ramp=[3, 9], gamma_start=7)
    method = "pgd-at" if PRESETS[preset][dataset].get("free") else "ig-norm"  # free training: pgd-at only
    cfg = make_config(method, dataset, "pool", preset, subset=100, batch_size=10, init="authors",
                      authors_ig_weight=(preset != "paper"), activation="softplus", eval_step_size=2 / 255,
                      train_split="demo_train",
                      eval_split="demo_heldout", **positions)
    args = config_to_args(cfg)
    assert config_from_args(build_parser().parse_args(["train", *args])) == cfg
    plain = make_config("normal", dataset, "smallgap", preset)
    assert config_to_args(plain) == ["--method", "normal", "--dataset", dataset, "--arch", "smallgap",
                                     "--preset", preset]


def test_train_flags_of_a_finished_run_name_only_what_differs_from_its_preset():
    """A run's card stores its config in steps; against the preset resolved for the run's length the
    command needs no schedule flags, and a changed position comes back with its unit."""
    from interp_core.cli import build_parser
    from interp_core.cli.train import config_from_args

    cfg = make_config("int", "mnist", "smallgap", "cpu").resolve(5500)
    assert cfg.schedule_in == "steps"
    assert config_to_args(cfg, 5500)[-2:] == ["--preset", "cpu"]
    changed = replace(cfg, eps_ramp=[10, 20], eval_n=0)
    args = config_to_args(changed, 5500)
    (at, lr), = cfg.lr_steps
    assert args[8:] == ["--lr-steps", f"{at}:{lr!r}", "--eps-ramp", "10,20", "--eval-n", "0", "--gamma-start", "0",
                        "--schedule-in", "steps"]
    assert config_from_args(build_parser().parse_args(["train", *args])) == changed


def test_train_flags_parse_lists_fractions_and_switches():
    from interp_core.cli import build_parser
    from interp_core.cli.train import config_from_args

    parse = build_parser().parse_args
    cfg = config_from_args(parse(["train", "--method", "int", "--dataset", "cifar10", "--eps", "8/255",
                                  "--lr-steps", "40000:1e-4,60000:1e-5", "--eps-ramp", "5,70",
                                  "--no-authors-ig-weight", "--init", "torch", "--gamma-start", "3"]))
    assert cfg.eps == 8 / 255 and cfg.lr_steps == [[40000, 1e-4], [60000, 1e-5]] and cfg.eps_ramp == [5, 70]
    assert (cfg.authors_ig_weight, cfg.init, cfg.gamma_start, cfg.preset) == (False, "torch", 3, "paper")
    fractions = config_from_args(parse(["train", "--method", "int", "--dataset", "mnist", "--schedule-in", "fraction",
                                        "--lr-steps", "0.75:3e-4", "--eps-ramp", "0.1,0.5", "--gamma-start", "0.2"]))
    assert (fractions.schedule_in, fractions.lr_steps, fractions.eps_ramp, fractions.gamma_start) == (
        "fraction", [[0.75, 3e-4]], [0.1, 0.5], 0.2)
    assert fractions.resolve(100).eps_ramp == [10, 50]
    no_switches = parse(["train", "--method", "int", "--dataset", "cifar10", "--lr-steps", "none"])
    assert config_from_args(no_switches).lr_steps == []
    for bad in (["--eps-ramp", "9,5"], ["--lr-steps", "40000"], ["--eps", "x"], ["--init", "xavier"]):
        with pytest.raises(SystemExit):
            parse(["train", "--method", "int", "--dataset", "mnist", *bad])


def test_fast_preset_takes_one_inner_step_of_1_25_eps_from_a_random_start(tmp_path):
    """Fast adversarial training: the inner step follows the ramped eps (1.25 eps), one step."""
    from interp_core.training import PRESETS

    for dataset in PRESETS["fast"]:
        cfg = make_config("pgd-at", dataset, preset="fast")
        assert cfg.steps == 1 and cfg.inner_step_size(cfg.eps) == pytest.approx(1.25 * cfg.eps)
        assert cfg.overfit_check > 0
    cfg = _tiny("pgd-at", steps=1, step_size_eps=1.25)
    assert cfg.inner_step_size(0.08) == pytest.approx(0.1) and _tiny("pgd-at").inner_step_size(0.08) == 0.05
    result = train(cfg, tmp_path / "fast.safetensors")
    assert result.status == "finished"
    with pytest.raises(ValueError, match="step_size_eps must be"):
        _tiny("pgd-at", step_size_eps=-1)


def test_the_overfitting_probe_stops_on_a_collapse_and_keeps_its_best(mnist_demo):
    """Real networks, no stand-ins: the authors' PGD-AT network passes the probe at eps 0.3; the
    normally trained one (no robustness) after it is a fall of more than 0.2."""
    from interp_core.models import load_model
    from interp_core.training import CatastrophicOverfitting, OverfitProbe

    x, y = mnist_demo.images[:40], mnist_demo.labels[:40]
    probe = OverfitProbe(x, y, 0.3)
    robust = probe.check(load_model("mnist-smallgap-pgd-at-paper")[0], step=100)
    assert robust > 0.5 and probe.best == robust
    with pytest.raises(CatastrophicOverfitting, match=r"catastrophic overfitting at step 200: .* fell from"):
        probe.check(load_model("mnist-smallgap-normal-paper")[0], step=200)
    assert probe.best == robust


def test_a_run_with_the_probe_records_it_and_resumes_with_its_best(tmp_path):
    events = []
    out = tmp_path / "m.safetensors"
    cfg = _tiny("pgd-at", steps=1, step_size_eps=1.25, overfit_check=16)
    calls = {"n": 0}

    def stop_after_five():
        calls["n"] += 1
        return calls["n"] >= 5

    train(cfg, out, callbacks=(events.append,), stop=stop_after_five)
    checks = [e for e in events if e["event"] == "overfit_check"]
    assert checks and all(0 <= e["accuracy"] <= e["best"] <= 1 for e in checks)
    assert checks[0]["step"] >= 3  # only once eps is reached (the ramp ends at step 3)
    saved = torch.load(state_path(out), weights_only=True)["probe_best"]
    assert saved == checks[-1]["best"]
    resumed = train(cfg, out, resume=True, callbacks=(events.append,))
    assert resumed.status == "finished"


def test_fine_tuning_starts_from_the_named_checkpoint(tmp_path):
    """init_from: the run starts at the shipped weights (a tiny lr keeps them); a network of other
    classes or channels is refused in one sentence."""
    from interp_core.models import load_model

    shipped = load_model("mnist-smallgap-normal-paper")[0].state_dict()
    result = train(_tiny("pgd-at", epochs=1, lr=1e-12, lr_steps=[], init_from="mnist-smallgap-normal-paper"),
                   tmp_path / "ft.safetensors")
    tuned = load_file(str(result.checkpoint))
    assert all(torch.allclose(tuned[k], shipped[k], atol=1e-6) for k in shipped)
    fresh = load_file(str(train(_tiny("pgd-at", epochs=1, lr=1e-12, lr_steps=[]), tmp_path / "fresh.safetensors").checkpoint))
    assert not all(torch.allclose(fresh[k], shipped[k], atol=1e-6) for k in shipped)
    with pytest.raises(ValueError, match="3 input channel.*cannot start a smallgap run on mnist"):
        train(_tiny("pgd-at", init_from="cifar10-smallgap-normal-paper"), tmp_path / "bad.safetensors")


# --- free adversarial training (Shafahi et al. 2019) --------------------------------------------


def test_free_perturbation_takes_signed_steps_inside_the_ball_and_the_box(batch):
    """delta starts at 0, moves one signed step of the input gradient per backward pass, stays in
    the eps ball with x + delta in [0, 1], is carried to the next batch and restarts on a new shape."""
    from interp_core.training import FreePerturbation

    x, y = batch
    model, free = _warm_model(x, y), FreePerturbation()
    x_adv = free.perturb(x, 0.1)
    assert torch.equal(x_adv, x) and x_adv.requires_grad
    with pytest.raises(ValueError, match="no gradient"):
        free.ascend(x, x_adv, 0.1, 0.1)
    torch.nn.functional.cross_entropy(model(x_adv), y).backward()
    free.ascend(x, x_adv, 0.1, 0.1)
    expected = ((x + 0.1 * x_adv.grad.sign()).clamp(0, 1) - x)
    assert torch.equal(free.delta, expected) and free.delta.abs().max() <= 0.1 + 1e-7
    assert (free.delta != 0).float().mean() > 0.5  # most pixels moved (those at the box's edge may not)
    second = free.perturb(x.flip(0), 0.05)  # the next batch starts from the carried delta, re-projected
    assert torch.equal(second, x.flip(0) + ((x.flip(0) + expected.clamp(-0.05, 0.05)).clamp(0, 1) - x.flip(0)))
    assert 0 <= second.min() and second.max() <= 1
    assert torch.equal(free.perturb(x[:4], 0.1), x[:4])  # another batch shape: delta restarts at 0


def test_free_training_replays_each_batch_and_matches_the_algorithm(tmp_path):
    """The trainer's free run equals Shafahi et al.'s Algorithm 1 written out here: every batch m
    times in a row, one Adam step per replay on x + delta, delta += eps sign(input gradient),
    clipped; E epochs make E/m passes over the images."""
    import torch.nn.functional as F
    from torch.utils.data.distributed import DistributedSampler

    from interp_core.data import load_dataset

    m, eps = 2, 0.1
    cfg = _tiny("pgd-at", free=True, steps=m, step_size_eps=1.0, eps=eps, eps_ramp=[0, 0], lr_steps=[], epochs=4,
                eval_n=0)
    result = train(cfg, tmp_path / "free.safetensors")
    assert result.step == 16 and result.metrics["passes_over_images"] == 2.0  # 4 epochs of 4 batches, m = 2

    data = load_dataset("mnist", "demo", n=32)
    torch.manual_seed(cfg.seed)
    model = build_model("smallgap", 1, 10, cfg.init)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sampler = DistributedSampler(range(32), num_replicas=1, rank=0, shuffle=True, seed=cfg.seed, drop_last=True)
    delta = torch.zeros(8, 1, 28, 28)
    for data_pass in range(2):
        sampler.set_epoch(data_pass)
        order = list(sampler)
        for b in range(4):
            x, y = data.images[order[8 * b:8 * b + 8]], data.labels[order[8 * b:8 * b + 8]]
            for _ in range(m):
                delta = (x + delta.clamp(-eps, eps)).clamp(0, 1) - x  # this batch's ball and box
                x_adv = (x + delta).requires_grad_(True)
                loss = F.cross_entropy(model(x_adv), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                delta = (x + (delta + eps * x_adv.grad.sign()).clamp(-eps, eps)).clamp(0, 1) - x
    trained = load_file(str(result.checkpoint))
    assert all(torch.equal(trained[k], v) for k, v in model.state_dict().items())


def test_a_killed_free_run_resumes_bit_for_bit(tmp_path):
    """A kill after the periodic checkpoint of step 3 (between a batch's two replays) and a stop
    after step 5 (the same): both resume to the uninterrupted run's weights, delta restored from the state."""
    cfg = _tiny("pgd-at", free=True, steps=2, step_size_eps=1.0, eval_n=0)
    full = train(cfg, tmp_path / "full.safetensors")
    crashed = tmp_path / "crash.safetensors"

    def crash(event):
        if event["event"] == "step" and event["step"] == 4:
            raise KeyboardInterrupt  # a kill before the epoch end's checkpoint

    with pytest.raises(KeyboardInterrupt):
        train(cfg, crashed, callbacks=(crash,), log_every=1)
    state = torch.load(state_path(crashed), weights_only=True)
    assert state["step"] == 3 and state["free_delta"].shape == (8, 1, 28, 28) and state["free_delta"].abs().max() > 0
    train(cfg, crashed, resume=True)
    calls = {"n": 0}

    def stop_at_five():
        calls["n"] += 1
        return calls["n"] >= 5

    stopped = tmp_path / "stop.safetensors"
    assert train(cfg, stopped, stop=stop_at_five).step == 5
    train(cfg, stopped, resume=True)
    a = load_file(str(full.checkpoint))
    for out in (crashed, stopped):
        b = load_file(str(out))
        assert all(torch.equal(a[k], b[k]) for k in a), out.name


def test_free_training_settings_are_checked():
    assert _tiny("normal", free=True).replays == 1  # normal ignores the inner attack, free training too
    assert _tiny("pgd-at", free=True, steps=3).replays == 3 and _tiny("pgd-at", steps=3).replays == 1
    with pytest.raises(ValueError, match=r"free adversarial training replays each batch `steps` times \(m >= 1\), "
                                         r"got steps=0"):
        _tiny("pgd-at", free=True, steps=0)
    with pytest.raises(ValueError, match="free adversarial training trains on CE.*'int' has another: use pgd-at"):
        _tiny("int", free=True)
    for dataset in PRESETS["free"]:
        cfg = make_config("pgd-at", dataset, preset="free")
        assert cfg.free and cfg.replays == 4 and cfg.inner_step_size(cfg.eps) == cfg.eps and cfg.overfit_check > 0
