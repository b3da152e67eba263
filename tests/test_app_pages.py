"""One Streamlit AppTest per page, driving its main interaction on MNIST and CIFAR-10."""

from __future__ import annotations

import io
import json
import math
import re
import sys

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from interp_core import paths
from interp_core.attacks import ATTACKS

pytestmark = pytest.mark.integration
ROOT = paths.PROJECT_ROOT
sys.path.insert(0, str(ROOT))  # the app imports app_support, as `streamlit run app.py` allows
TIMEOUT = 120


@pytest.fixture(autouse=True)
def arrow_clean_tables():
    """Every table a page shows converts to Arrow as it is: Streamlit logs a traceback (and repairs
    the column) when a column mixes types."""
    import logging

    logger = logging.getLogger("streamlit.dataframe_util")
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield
    logger.removeHandler(handler)
    logger.setLevel(level)
    assert not [r for r in records if r.exc_info], [r.getMessage() + f" {r.exc_info[1]}" for r in records]


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.run()
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def numbers(table) -> list[float]:
    frame = table.value
    return [float(v) for col in frame.columns if col not in ("model", "explainer") for v in frame[col]]


def test_home_lists_what_is_available():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "MNIST" in text and "CIFAR-10" in text and "device" in text
    assert len(at.table[0].value) >= 1  # the model list


def test_about_defines_every_measure():
    at = open_page("about")
    from interp_core.services.explore import METRIC_DEFINITIONS

    shown = set(at.table[0].value["measure"])
    assert shown == set(METRIC_DEFINITIONS)


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_explore_runs_an_attack(dataset):
    at = open_page("explore")
    at.radio(key="explore_dataset").set_value(dataset).run()
    at.multiselect(key="explore_explainers").set_value(["cam", "saliency"]).run()
    at.button(key="explore_random").click().run()
    at.button(key="explore_run").click().run()
    assert not at.exception, at.exception
    table = at.table[0].value
    assert list(table["explainer"]) == ["CAM", "Saliency"]
    assert all(math.isfinite(v) for v in numbers(at.table[0]))
    assert any("bound ½(Z_y − Z_t)" in m.value for m in at.markdown)
    assert at.slider(key="explore_step").value == at.slider(key="explore_step").max  # trajectory, last step
    at.slider(key="explore_step").set_value(0).run()
    assert not at.exception, at.exception
    assert [b.proto.label for b in at.get("download_button")] == ["CSV metrics", "JSON metrics", ".npz tensors",
                                                                  "PNG figure", "HTML slides"]


def test_explore_opens_each_dataset_at_its_default_image():
    """Every shipped model classifies the default image correctly (tests/test_explore.py); switching
    the dataset opens the new gallery at its own default, not at the previous gallery's number."""
    from interp_core.datasets import DATASETS

    at = open_page("explore")
    assert at.selectbox(key="explore_index").value == DATASETS["mnist"].default_image
    at.radio(key="explore_dataset").set_value("cifar10").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="explore_index").value == DATASETS["cifar10"].default_image == 2


def test_explore_rejects_bad_uploads_and_keeps_working():
    at = open_page("explore")
    hostile = b"\x00" * 64 + b"not json"
    at.file_uploader(key="explore_ckpt").set_value(("evil.safetensors", hostile, "application/octet-stream")).run()
    assert not at.exception, at.exception
    assert any("Checkpoint evil.safetensors not used" in e.value for e in at.sidebar.error)
    at.radio(key="explore_source").set_value("upload").run()
    at.file_uploader(key="explore_image").set_value(("x.png", b"garbage", "image/png")).run()
    assert any("Image not used" in e.value and "x.png" in e.value for e in at.error)
    assert not any("UploadedFile" in e.value for e in [*at.error, *at.sidebar.error])
    wrong = io.BytesIO()
    Image.fromarray(np.zeros((40, 30), np.uint8)).save(wrong, format="PNG")
    at.file_uploader(key="explore_image").set_value(("x.png", wrong.getvalue(), "image/png")).run()
    assert not at.exception and not any("Image not used" in e.value for e in at.error)
    assert any("padded from 30×40 to 40×40 with its background; resized from 40×40 to 28×28" in c.value
               for c in at.caption)  # the default fit keeps the aspect ratio
    at.radio(key="explore_fit").set_value("stretch").run()
    assert any("resized from 30×40 to 28×28 (aspect ratio not kept)" in c.value for c in at.caption)
    ink = io.BytesIO()  # a dark stroke on white paper: inverted by default, flagged when kept as is
    paper = np.full((28, 28), 255, np.uint8)
    paper[7:21, 12:16] = 0
    Image.fromarray(paper).save(ink, format="PNG")
    at.file_uploader(key="explore_image").set_value(("ink.png", ink.getvalue(), "image/png")).run()
    assert any("inverted (dark on light" in c.value for c in at.caption)
    assert not any("looks unlike" in w.value for w in at.warning)
    at.radio(key="explore_invert").set_value(False).run()
    assert any("looks unlike MNIST's: its border is not dark" in w.value for w in at.warning)
    good = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((28, 28)) * 255).astype(np.uint8)).save(good, format="PNG")
    at.file_uploader(key="explore_image").set_value(("x.png", good.getvalue(), "image/png")).run()
    at.multiselect(key="explore_explainers").set_value(["cam"]).run()
    at.button(key="explore_run").click().run()
    assert not at.exception, at.exception
    assert len(at.table[0].value) == 1
    at.file_uploader(key="explore_image").set_value(("empty.png", b"", "image/png")).run()
    assert any("empty.png" in e.value for e in at.error)
    assert not at.table and "explore_request" not in at.session_state  # the previous image's results went


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_train_starts_shows_progress_and_stops(dataset, tmp_path, monkeypatch):
    import time

    from interp_core.services import jobs

    monkeypatch.setenv("INTERP_CORE_RUNS_DIR", str(tmp_path))
    at = open_page("train")
    at.selectbox(key="train_dataset").set_value(dataset).run()
    at.selectbox(key="train_method").set_value("pgd-at").run()
    at.radio(key="train_split").set_value("demo_train").run()
    assert any("held out for the evaluation" in c.value for c in at.caption)
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    job_id = at.session_state["train_view"]
    assert jobs.job_status(job_id)["config"]["dataset"] == dataset
    assert jobs.job_status(job_id)["config"]["train_split"] == "demo_train"
    deadline = time.monotonic() + 90
    while not jobs.job_status(job_id)["history"]:
        assert jobs.job_status(job_id)["state"] != "failed", jobs.job_status(job_id)["message"]
        assert time.monotonic() < deadline, "no progress within 90 s"
        time.sleep(1)
    before = jobs.job_status(job_id)["history"][-1]["step"]
    at.run()
    after = jobs.job_status(job_id)
    (bar,) = at.get("progress")  # the run's progress: "training: step D of T" at D / T
    done, total = map(int, re.fullmatch(r"training: step (\d+) of (\d+)", bar.proto.text).groups())
    assert total == after["total_steps"] and before <= done <= after["history"][-1]["step"]
    assert bar.proto.value == int(100 * done / total)
    assert len(at.get("plotly_chart")) == 3  # loss, accuracy, eps curves
    if jobs.job_status(job_id)["state"] in jobs.ACTIVE:
        at.button(key=f"stop_{job_id}").click().run()
    deadline = time.monotonic() + 60
    while jobs.job_status(job_id)["state"] in jobs.ACTIVE:
        assert time.monotonic() < deadline, "the run did not stop"
        time.sleep(0.5)
    at.run()
    assert not at.exception, at.exception
    assert jobs.job_status(job_id)["state"] in ("stopped", "finished")
    assert any(s in m.value for m in at.markdown for s in ("stopped", "finished"))


def test_train_fast_preset_fine_tunes_a_shipped_network(tmp_path, monkeypatch):
    """The fast preset (one inner step of 1.25 eps, the overfitting check) started from a shipped
    normal network: the job gets those settings and trains."""
    import time

    from interp_core.services import jobs

    monkeypatch.setenv("INTERP_CORE_RUNS_DIR", str(tmp_path))
    at = open_page("train")
    at.selectbox(key="train_method").set_value("pgd-at").run()
    at.radio(key="train_preset").set_value("fast").run()
    at.radio(key="train_split").set_value("demo_train").run()
    assert at.number_input(key="train_steps_fast").value == 1
    import json

    rows = {r["method"]: r["x normal step"] for r in json.loads((ROOT / "benchmarks" / "results.json").read_text())
            ["sections"]["training"]["tables"]["One training step (loss, backward, Adam)"]}
    cost = f"a pgd-at step costs {rows['pgd-at (1 inner step, fast preset)']:.3g} normal steps instead of " \
           f"{rows['pgd-at']:.3g}, an int step {rows['int (1 inner step, fast preset)']:.3g} instead of {rows['int']:.3g}"
    assert any(cost in c.value for c in at.caption)  # the cost it states is the benchmark's
    at.radio(key="train_preset").set_value("classroom").run()
    normal, intr = json.loads((ROOT / "benchmarks" / "results.json").read_text())["sections"]["classroom"][
        "tables"]["Two runs started together, as the Compare button does"][:2]
    measured = (f"ended in {normal['wall s (both, evaluation included)']:.0f} s, evaluation included, at "
                f"{normal['clean (test set, 10,000)']:.3f} and {intr['clean (test set, 10,000)']:.3f} clean",
                f"int kept {intr['eps 0.1 re-tested']:.3f} accuracy at ε = 0.1 under the re-test against "
                f"{normal['eps 0.1 re-tested']:.3f} for normal", f"was {intr['AAI tau 0.1']:.3f} against "
                f"{normal['AAI tau 0.1']:.3f}")
    assert all(any(m in c.value for c in at.caption) for m in measured)  # the classroom note is the benchmark's
    at.radio(key="train_preset").set_value("fast").run()
    at.selectbox(key="train_init_mnist_smallgap").set_value("mnist-smallgap-normal-paper").run()
    at.button(key="train_start").click().run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    job_id = at.session_state["train_view"]
    config = jobs.job_status(job_id)["config"]
    assert (config["preset"], config["init_from"], config["steps"]) == ("fast", "mnist-smallgap-normal-paper", 1)
    deadline = time.monotonic() + 90
    while not jobs.job_status(job_id)["history"]:
        assert jobs.job_status(job_id)["state"] != "failed", jobs.job_status(job_id)["message"]
        assert time.monotonic() < deadline, "no progress within 90 s"
        time.sleep(1)
    jobs.stop_job(job_id)  # the trainer's own test checks that the weights start as the named network's
    deadline = time.monotonic() + 60
    while jobs.job_status(job_id)["state"] in jobs.ACTIVE:
        assert time.monotonic() < deadline, "the run did not stop"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory):
    """Real jobs, ended: a compare (normal vs int) and then a single pgd-at run, each evaluated on 2 images."""
    import os
    import time

    from interp_core.services import jobs

    runs = tmp_path_factory.mktemp("runs")
    previous = os.environ.get("INTERP_CORE_RUNS_DIR")
    os.environ["INTERP_CORE_RUNS_DIR"] = str(runs)
    tiny = {"dataset": "mnist", "preset": "classroom", "epochs": 1, "subset": 32, "batch_size": 16, "eval_n": 0,
            "train_split": "demo_train", "evaluate_n": 2, "steps": 2}

    def wait(ids):
        deadline = time.monotonic() + 300
        while any(jobs.job_status(j)["state"] in jobs.ACTIVE for j in ids):
            assert time.monotonic() < deadline, [jobs.job_status(j) for j in ids]
            time.sleep(0.5)
        assert all(jobs.job_status(j)["evaluation"] for j in ids), [jobs.job_status(j) for j in ids]

    try:
        compare = jobs.start_compare(tiny, ("normal", "int"))
        wait(compare)
        single = jobs.start_job({**tiny, "method": "pgd-at"})
        wait([single])
        yield {"runs": runs, "compare": compare, "single": single}
    finally:
        if previous is None:
            os.environ.pop("INTERP_CORE_RUNS_DIR", None)
        else:
            os.environ["INTERP_CORE_RUNS_DIR"] = previous


def _evaluation_frame(at):
    frame = next(d.value for d in at.dataframe if "model" in d.value.columns)
    numeric = frame.drop(columns=["model", "source"])
    assert numeric.map(lambda v: isinstance(v, float)).all().all()  # one type per column
    return frame


def test_train_free_preset_states_its_cost_and_replays(tmp_path, monkeypatch):
    """The free preset is offered for pgd-at only; its m is the replays input, the run's caption
    counts its passes, and the cost it states is the step-cost benchmark's."""
    import json

    from benchmarks.bench_training import FREE_ROW

    monkeypatch.setenv("INTERP_CORE_RUNS_DIR", str(tmp_path))
    at = open_page("train")
    assert "free" not in at.radio(key="train_preset").options  # the default method, int: not offered
    at.selectbox(key="train_method").set_value("pgd-at").run()
    at.radio(key="train_preset").set_value("free").run()
    at.radio(key="train_split").set_value("demo_train").run()
    replays = at.number_input(key="train_steps_free")
    assert replays.value == 4 and replays.label == "Replays m"
    at.number_input(key="train_epochs_free_mnist_demo_train").set_value(8).run()
    assert any("each batch replayed 4 times: 2 passes over the images" in c.value for c in at.caption)
    rows = {r["method"]: r["x normal step"] for r in json.loads((ROOT / "benchmarks" / "results.json").read_text())
            ["sections"]["training"]["tables"]["One training step (loss, backward, Adam)"]}
    cost = f"a replay costs {rows[FREE_ROW]:.3g} normal steps (a pgd-at step with 10 inner steps: {rows['pgd-at']:.3g})"
    assert any(cost in c.value for c in at.caption)
    assert not at.exception and not at.error
    at.selectbox(key="train_method").set_value("int").run()  # free training is pgd-at's: another preset is chosen
    assert not at.exception and at.radio(key="train_preset").value != "free"


def test_train_finished_run_shows_its_evaluation_and_opens_explore(finished_runs):
    import json

    from interp_core.models import available_models

    at = open_page("train")
    assert at.session_state["train_view"] == finished_runs["single"]  # the newest run
    frame = _evaluation_frame(at)
    assert list(frame["model"])[0] == "pgd-at (your run)"
    assert {"clean", "ε=0.1 reported", "ε=0.1 re-tested", "ε=0.4 reported", "ε=0.4 re-tested", "AAI τ ε=0.1",
            "AAI τ ε=0.3"} <= set(frame.columns)
    for eps in ("0.05", "0.1", "0.2", "0.3", "0.35", "0.4"):  # the re-test never gives back what PGD took
        assert all(0 <= r <= a <= 1 for r, a in zip(frame[f"ε={eps} re-tested"], frame[f"ε={eps} reported"]))
    charts = at.get("plotly_chart")
    assert len(charts) == 5  # loss, accuracy, eps; accuracy vs eps, tau vs eps
    traces = json.loads(charts[3].proto.spec)["data"]
    assert traces[0]["name"] == "pgd-at (your run)" and len(traces[0]["x"]) == 7  # the re-tested curve
    assert traces[0]["y"][1:] == list(frame.iloc[0][[f"ε={e} re-tested" for e in ("0.05", "0.1", "0.2", "0.3",
                                                                                     "0.35", "0.4")]])
    dashed = [t for t in traces if t.get("line", {}).get("dash") == "dash"]
    assert [t["name"] for t in dashed][0] == "pgd-at (your run) (reported)"
    assert any("re-tested (solid)" in c.value for c in at.caption)
    assert any("2 images" in c.value and "No paper-network references for 2 images" in c.value for c in at.caption)
    at.button(key=f"explore_{finished_runs['single']}").click().run()
    assert not at.exception, at.exception
    name = next(e.name for e in available_models() if e.name.endswith(finished_runs["single"]))
    assert at.query_params["models"] == name and at.query_params["dataset"] == "mnist"


def test_train_compare_shows_both_runs_side_by_side(finished_runs):
    import json

    _, robust = finished_runs["compare"]
    at = open_page("train")
    at.selectbox(key="train_view").set_value(robust).run()
    assert not at.exception, at.exception
    frame = _evaluation_frame(at)
    assert list(frame["model"])[:2] == ["normal (your run)", "int (your run)"]
    assert sum(":material/check_circle:" in m.value for m in at.markdown) == 2  # both runs' states
    charts = at.get("plotly_chart")
    loss = json.loads(charts[0].proto.spec)["data"]
    assert [t["name"] for t in loss] == ["normal", "int"]
    curves = json.loads(charts[3].proto.spec)["data"]
    assert [t["name"] for t in curves][:2] == ["normal (your run)", "int (your run)"]


def test_train_evaluation_shows_the_stored_references_of_its_image_count(finished_runs, tmp_path, monkeypatch):
    import json

    from interp_core.services import jobs

    stored = jobs.job_status(finished_runs["single"])["evaluation"]  # stands in for a reference's numbers
    references = {name: {**stored, "model": name, "method": name.split("-smallgap-")[1].rsplit("-", 1)[0]}
                  for name in jobs.REFERENCE_MODELS["mnist"]}
    path = tmp_path / "references.json"
    path.write_text(json.dumps({"evaluations": {"mnist": {"2": references}}}))
    monkeypatch.setattr(jobs, "REFERENCES", path)
    at = open_page("train")
    frame = _evaluation_frame(at)
    assert list(frame["model"]) == ["pgd-at (your run)", "normal (paper network)", "pgd-at (paper network)",
                                    "int (paper network)"]
    assert list(frame["source"]) == ["your run"] + ["paper network"] * 3


def test_train_start_switches_the_view_and_pickers_list_user_runs_first(finished_runs):
    from interp_core.services import jobs

    at = open_page("train")
    at.selectbox(key="train_view").set_value(finished_runs["compare"][0]).run()
    at.radio(key="train_split").set_value("demo_train").run()
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    new = at.session_state["train_view"]
    try:
        assert new not in (finished_runs["single"], *finished_runs["compare"])
        assert at.selectbox(key="train_view").value == new
    finally:
        jobs.stop_job(new)
    explore = open_page("explore")
    options = explore.multiselect(key="explore_models_mnist").options
    user = [o for o in options if "your run" in o]
    assert options[:len(user)] == user and len(user) == 3  # user runs first; the stopped one is not a model
    assert finished_runs["single"] in user[0] and "pgd-at (your run, evaluated)" in user[0]  # newest first


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_robustness_curves(dataset):
    at = open_page("robustness")
    at.radio(key="rob_dataset").set_value(dataset).run()
    from interp_core.datasets import DATASETS

    at.multiselect(key=f"rob_eps_{dataset}").set_value([DATASETS[dataset].paper_eps[0], DATASETS[dataset].paper_eps[4]]).run()
    at.slider(key="rob_n").set_value(5).run()
    at.number_input(key="rob_steps_paper").set_value(5).run()
    at.number_input(key="rob_aai_steps").set_value(5).run()
    estimate = next(c.value for c in at.caption if c.value.startswith("Estimated time: at most about"))
    assert re.search(r"about \d+ s plus Square \(1000 queries .+\(measured per attack step on these 5 images: "
                     r".+ ms \(PGD\)", estimate)
    at.button(key="rob_run").click().run()
    assert not at.exception, at.exception
    rows = at.table[0].value
    assert len(rows) == 2 * len(at.session_state["rob_request"])  # two eps per model
    reported, retested = ([float(v) for v in rows[c]] for c in ("reported (authors' PGD)", "re-tested"))
    assert all(0 <= r <= a <= 1 for r, a in zip(retested, reported))
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # accuracy and AAI tau curves
    import json

    traces = json.loads(charts[0].proto.spec)["data"]
    models = len(at.session_state["rob_request"])
    assert [t["y"] for t in traces[:models]] == [pytest.approx(retested[2 * i:2 * i + 2], abs=1e-6)
                                               for i in range(models)]  # drawn: re-tested (float32)
    assert all(t["name"].endswith("(reported)") and t["line"]["dash"] == "dash" for t in traces[models:])
    colours = [t["line"]["color"] for t in traces[:models]]
    assert len(set(colours)) == models  # one colour per model, none shared
    assert len(at.get("download_button")) == 2 + 2  # CSV/JSON of the results, then the paper tables' CSVs


def test_robustness_shows_the_paper_tables_of_a_reproduce_run(tmp_path):
    from interp_core.evaluate.reproduce import load_reproduce_tables

    at = open_page("robustness")
    committed = load_reproduce_tables(ROOT / "results" / "reproduce-quick")
    frames = [d.value for d in at.dataframe]
    assert len(frames) == sum(len(t["wide"]) for t in committed["tables"].values())
    assert list(frames[0]["method"]) == [r["method"] for r in next(iter(committed["tables"]["pgd"]["wide"].values()))]
    cells = [v for v in frames[0].drop(columns="method").to_numpy().ravel()]
    assert cells and all(" / " in v for v in cells)  # every PGD cell: reported / re-tested
    assert committed["command"] in [c.value for c in at.code]
    assert any("--quick" in m.value and "mode" in m.value for m in at.markdown)
    at.text_input(key="rob_paper_dir").set_value(str(tmp_path)).run()
    assert not at.exception, at.exception
    assert any("No tables read" in e.value for e in at.error)
    assert not at.dataframe


def _image_folder(root, classes, n=2, size=32):
    rng = np.random.default_rng(0)
    for cls in classes:
        (root / cls).mkdir(parents=True)
        for i in range(n):
            Image.fromarray((rng.random((size, size, 3)) * 255).astype(np.uint8)).save(root / cls / f"{i}.png")
    return root


def _run_folder_attack(monkeypatch, root) -> AppTest:
    monkeypatch.setenv("INTERP_CORE_IMAGE_FOLDER", str(root))
    at = open_page("explore")
    at.radio(key="explore_dataset").set_value("cifar10").run()
    at.radio(key="explore_source").set_value("folder").run()
    assert not at.exception, at.exception
    at.multiselect(key="explore_explainers").set_value(["cam", "saliency"]).run()
    at.button(key="explore_run").click().run()
    assert not at.exception, at.exception
    return at


def test_explore_attacks_an_image_of_a_folder_with_its_own_classes(tmp_path, monkeypatch):
    root = _image_folder(tmp_path / "folder", ["alpha", "beta", "gamma"])
    (root / "beta" / "notes.png").write_text("not an image")
    Image.new("RGBA", (40, 20)).save(root / "gamma" / "wide.png")
    at = _run_folder_attack(monkeypatch, root)
    assert not at.error, [e.value for e in at.error]
    assert any("7 images in 3 classes" in i.value for i in at.info)
    assert at.expander[0].label.startswith("Intake notes: 2 files")
    notes = " ".join(m.value for m in at.expander[0].markdown)
    assert "notes.png" in notes and "wide.png: " in notes and "resized from 40×20" in notes
    assert any("clean prediction" in i.value for i in at.info)
    assert list(at.table[0].value["explainer"]) == ["CAM", "Saliency"]
    assert all(math.isfinite(v) for v in numbers(at.table[0]))
    caption = next(c.value for c in at.caption if c.value.startswith("Results for"))
    assert "true alpha" in caption and "(y = clean prediction)" in caption
    assert any("bound ½(Z_y − Z_t)" in m.value for m in at.markdown)


def test_explore_folder_with_model_class_names_uses_them_and_bad_folders_are_errors(tmp_path, monkeypatch):
    at = _run_folder_attack(monkeypatch, _image_folder(tmp_path / "folder", ["dog", "Cat"]))
    caption = next(c.value for c in at.caption if c.value.startswith("Results for"))
    assert "true Cat" in caption and "clean prediction" not in caption
    assert any(m.value.startswith("y = **cat**") for m in at.markdown)  # the first image is in Cat/
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("INTERP_CORE_IMAGE_FOLDER", str(tmp_path / "empty"))
    at.run()
    assert not at.exception, at.exception
    assert any("Image folder not used" in e.value for e in at.error)


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_isa_tradeoff_and_bound(dataset):
    at = open_page("isa_tradeoff")
    at.radio(key="isa_dataset").set_value(dataset).run()
    at.multiselect(key="isa_measures").set_value(["1class", "2class"]).run()
    at.multiselect(key="isa_mult").set_value([1.0, 2.0]).run()
    at.slider(key="isa_rounds").set_value(3).run()
    at.slider(key="isa_n").set_value(5).run()
    at.radio(key="isa_source").set_value("split").run()  # the demo sample (the only source without ../shared)
    at.number_input(key="isa_index").set_value(2).run()  # classified correctly by both shipped normal models
    at.button(key="isa_run").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    at.button(key="isa_bound_run").click().run()
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) == 2
    violations = at.metric[0]
    assert int(violations.value) == 0  # docs/method.md#bound: no point below the diagonal


def test_isa_refuses_an_image_the_model_misclassifies():
    """CIFAR-10 demo image 5 is misclassified by both shipped normal networks: ISA (as in the paper)
    needs a correctly classified image, so the page says so, with the prediction, and draws no curve."""
    at = open_page("isa_tradeoff")
    at.radio(key="isa_dataset").set_value("cifar10").run()
    at.radio(key="isa_source").set_value("split").run()
    at.number_input(key="isa_index").set_value(5).run()
    at.button(key="isa_run").click().run()
    assert not at.exception, at.exception
    assert any("classifies this image" in e.value and "choose another image" in e.value for e in at.error)
    assert not at.get("plotly_chart")


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_explore_offers_every_registered_attack(attack):
    at = open_page("explore")
    at.selectbox(key="explore_attack").set_value(attack).run()
    at.multiselect(key="explore_explainers").set_value(["cam"]).run()
    at.button(key="explore_run").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert len(at.table[0].value) == 1


def test_explore_isa_searches_gamma_unless_a_fixed_one_is_asked_for():
    """ISA's default on Explore is the authors' γ search, with the γ it found beside the results;
    unchecking it asks for a fixed γ, which the run then uses."""
    at = open_page("explore")
    at.selectbox(key="explore_attack").set_value("isa").run()
    at.multiselect(key="explore_explainers").set_value(["cam"]).run()
    search, gamma = "explore_isa_mnist_search_gamma", "explore_isa_mnist_gamma"
    assert at.checkbox(key=search).value and not [n for n in at.number_input if n.key == gamma]
    at.button(key="explore_run").click().run()
    assert not at.exception, at.exception
    found = [m for m in at.metric if m.label == "γ found"]
    assert len(found) == 1 and (found[0].value == "none" or 0 < float(found[0].value) <= 1)
    caption = next(c.value for c in at.caption if c.value.startswith("Results for"))
    assert "search_gamma=True" in caption and "gamma=" not in caption.replace("search_gamma=", "")
    at.checkbox(key=search).uncheck().run()
    at.number_input(key=gamma).set_value(0.002).run()
    at.button(key="explore_run").click().run()
    assert not at.exception, at.exception
    assert not [m for m in at.metric if m.label == "γ found"]
    caption = next(c.value for c in at.caption if c.value.startswith("Results for"))
    assert "search_gamma=False" in caption and "gamma=0.002" in caption


def test_explore_keeps_a_new_setting_when_the_browser_sends_back_an_older_url():
    """On a busy server the user can act before the page's newest URL reached the browser; the
    rerun then carries the page's own older URL. That echo must not undo the new setting (it did:
    the load benchmark's sessions got results of the attack they had left)."""
    at = open_page("explore")
    before = dict(at.query_params)
    assert before["attack"] == "pgd"
    at.sidebar.selectbox(key="explore_attack").set_value("fgsm").run()
    assert not at.exception, at.exception
    assert at.query_params["attack"] == "fgsm"
    at.query_params.clear()
    at.query_params.update(before)  # the browser still showed the first URL when the user clicked
    at.run()
    assert at.session_state["explore_attack"] == "fgsm" and at.query_params["attack"] == "fgsm"


def test_lesson_steps_through_the_guided_demos_predict_then_reveal():
    from app_support.lessons import GUIDED

    at = open_page("lesson")
    assert at.progress[0].proto.text == f"Step 1 of {len(GUIDED.steps)}"
    assert GUIDED.steps[0].predict in at.info[0].value and not at.success  # the answer waits for Reveal
    at.toggle(key="lesson_reveal").set_value(True).run()
    assert GUIDED.steps[0].answer in at.success[0].value
    at.button(key="lesson_next").click().run()
    assert not at.exception, at.exception
    assert at.subheader[0].value == GUIDED.steps[1].title and not at.success  # a new step starts unrevealed
    assert at.query_params["step"] == "2" and at.query_params["reveal"] == "0"


def test_a_lesson_step_is_built_from_a_share_link():
    from app_support.lessons import Lesson

    at = open_page("lesson")
    at.text_input(key="lesson_add_url").input("http://localhost:8501/explore?dataset=mnist&image=3&attack=pgd&eps=0.2")
    at.text_input(key="lesson_add_title").input("My step")
    at.text_input(key="lesson_add_predict").input("Will the 3 survive?")
    at.text_input(key="lesson_add_answer").input("It flips")
    submit = "FormSubmitter:lesson_add-Add the step"
    at.button(key=submit).click().run()
    assert not at.exception, at.exception
    assert at.subheader[0].value == "My step" and at.radio(key="lesson_key").value == "own"
    saved = Lesson.from_json(at.session_state["lesson_own"])
    assert saved.steps[-1].params == {"dataset": "mnist", "image": "3", "attack": "pgd", "eps": "0.2", "run": "1"}
    assert saved.steps[-1].page == "pages/explore.py" and len(saved.steps) == 7
    at.text_input(key="lesson_add_url").input("http://localhost:8501/train?method=int")
    at.button(key=submit).click().run()
    assert "is not a link of the Explore or Random start page" in at.error[0].value


def test_a_student_follows_the_class_and_can_branch_off():
    """The follow component asks the browser to open the teacher's view at every poll until the page
    runs with that view's URL: a poll cut short by the next one (a busy server) loses nothing."""
    from app_support.classroom import VIEW_PARAM, classes

    teacher = open_page("lesson")
    teacher.button(key="class_open").click().run()
    code = teacher.session_state["class_teach"]
    assert len(code) == 4 and any(code in m.value for m in teacher.sidebar.markdown)
    teacher.button(key="lesson_next").click().run()
    view = classes().view(code)
    assert view.page == "pages/lesson.py" and view.params["step"] == "2"
    student = open_page("lesson")
    student.text_input(key="class_code_input").input(code.lower())
    student.button(key="class_follow_button").click().run()
    assert student.session_state["class_follow"] == code
    for _ in range(2):  # drawn again at the next run while the page has not opened the view
        opened = student.get("bidi_component")
        assert len(opened) == 1 and json.loads(opened[0].proto.json)["version"] == view.version
        assert "class_seen" not in student.session_state
        student.run()
    student.query_params[VIEW_PARAM] = str(view.version)  # what the browser does: it opens the view's URL
    student.run()
    assert student.session_state["class_seen"] == view.version and not student.get("bidi_component")
    student.button(key="class_branch").click().run()
    assert student.session_state["class_branched"] and not student.exception


def test_the_explore_page_and_a_lesson_read_a_link_alike():
    """One reader (explore_runs.read_link) for the page and for lessons, slides and the precompute:
    the same link leaves out the same settings, for the same reasons."""
    from app_support.explore_runs import link_request

    params = {"dataset": "mnist", "image": "9999", "attack": "pgd", "eps": "abc", "explainers": "cam",
              "trajectory": "ig", "maps": "z"}
    _, _, ignored = link_request(params)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/explore.py")
    at.query_params.update(params)
    at.run()
    shown = [w.value for w in at.warning if w.value.startswith("Some settings of the link were not used")]
    assert len(ignored) == 4 and shown == ["Some settings of the link were not used: " + "; ".join(ignored)]
    assert any(i.startswith("trajectory=ig") for i in ignored) and any(i.startswith("image=9999") for i in ignored)
