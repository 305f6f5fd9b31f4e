"""train_<variant> end to end for every variant: the project's real catalog and parameters, Kedro's runner, real
MLflow (sqlite), tiny data of the variant's format. What every variant shares is one parametrised test; what
only one variant has (the metric gate on a second training, both decoders, label maps) follows it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from kedro.config import OmegaConfigLoader
from kedro.framework.project import configure_project, pipelines
from kedro.runner import SequentialRunner
from mlflow import MlflowClient
from PIL import Image

import transfigure
from _support import (
    git_checkout,
    make_aligned,
    make_labelmap,
    make_unaligned,
    project_catalog,
    project_params,
    tiny_variant_params,
)
from transfigure.data.datasets import LabelIdError
from transfigure.models import VARIANTS
from transfigure.pipelines.training.nodes import build_dataset, model_config
from transfigure.training import TrainingConfig
from transfigure.validation import DataValidationError

PROJECT = Path(__file__).resolve().parents[2]
#: classes of the tiny label maps
LABEL_NC = 4


@dataclass(frozen=True)
class Case:
    """What one variant's tiny run looks like and what its logged run and registered model must show."""

    make_data: object
    params: dict = field(default_factory=dict)  # logged MLflow params the variant's reference fixes
    losses: tuple[str, ...] = ("loss_G",)  # per-step metrics
    lr: tuple[float, float] = (2e-4, 2e-4)  # lr_G, lr_D
    directions: tuple[str, ...] = ("AtoB", "BtoA")
    size_multiple: int = 4


CASES = {
    "cyclegan": Case(
        make_unaligned,
        params={"model.ngf": "4", "model.lambda_A": "10.0"},
        losses=("loss_G", "loss_D_A", "loss_cycle_A"),
    ),
    "pix2pix": Case(
        make_aligned,
        params={
            "model.netG": "unet",
            "model.num_downs": "5",
            "model.lambda_L1": "100.0",
            "model.gan_mode": "vanilla",
            "data.direction": "AtoB",
        },
        losses=("loss_G_GAN", "loss_G_L1", "loss_G", "loss_D_real", "loss_D_fake", "loss_D"),
        directions=("AtoB",),
        size_multiple=32,
    ),
    "unit": Case(
        make_unaligned,
        params={
            "model.dim": "4",
            "model.n_shared": "1",
            "model.recon_kl_w": "0.01",
            "model.weight_decay": "0.0001",
            "training.lr_policy": "step",
        },
        losses=("loss_G", "loss_D_A", "loss_D_B", "loss_recon_x_A", "loss_kl_B", "loss_cyc_x_A", "loss_adv_B"),
        lr=(1e-4, 1e-4),
    ),
    # TTUR: lr_G = lr / 2, lr_D = lr * 2
    "spade": Case(
        make_labelmap,
        params={"model.label_nc": str(LABEL_NC), "model.gan_mode": "hinge", "model.use_instance": "True"},
        losses=("loss_GAN_Feat",),
        lr=(1e-4, 4e-4),
        directions=("AtoB",),
        size_multiple=32,
    ),
}


@pytest.fixture(scope="module", autouse=True)
def _project():
    configure_project("transfigure")  # the registry `kedro run` uses


def test_every_variant_has_a_case_and_a_pipeline():
    assert set(CASES) == set(VARIANTS)
    assert {f"train_{v}" for v in VARIANTS} <= set(pipelines)


def tiny_params(variant: str, data_path: Path, output_dir: Path, **training) -> dict:
    p = tiny_variant_params(variant, output_dir, max_steps=4)
    p["data"]["path"] = str(data_path)
    if variant == "spade":
        p["data"]["label_nc"] = p["validation"]["label_nc"] = LABEL_NC
    p["training"].update({"sample_every": 2, "checkpoint_every": 2, **training})
    return p


def run_pipeline(variant: str, params: dict) -> dict:
    """Run ``train_<variant>`` with the project's real catalog.yml (relative paths: the test's working directory)."""
    catalog = project_catalog()
    for key, value in params.items():
        catalog[f"params:{variant}.{key}"] = value
    SequentialRunner().run(pipelines[f"train_{variant}"], catalog)
    names = ("validation_report", "training_summary", "registered_model", "promotion")
    return {n: catalog[f"{variant}.{n}"].load() for n in names}


def train_tiny(variant: str, tmp_path: Path, **training) -> dict:
    data = tmp_path / f"tiny_{variant}"
    if not data.exists():
        CASES[variant].make_data(data)
    return run_pipeline(variant, tiny_params(variant, data, tmp_path / "models", **training))


class Trained:
    """One MLflow store (sqlite) in a git checkout for this module; each variant trained there once, on first use,
    and shared by the tests that read its run and registered model."""

    def __init__(self, root: Path) -> None:
        self.root, self.uri = root, f"sqlite:///{root / 'mlruns.db'}"
        self.commit = git_checkout(root)
        self._runs: dict[str, dict] = {}

    def __call__(self, variant: str) -> dict:
        if variant not in self._runs:
            self._runs[variant] = train_tiny(variant, self.root / variant)
        return self._runs[variant]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as mp:
        store = Trained(root)
        mp.setenv("MLFLOW_TRACKING_URI", store.uri)
        mp.chdir(root)  # artifacts land beside the store
        yield store


@pytest.fixture
def in_store(trained, monkeypatch) -> Trained:
    """The module's store for one test (a test's own mlflow_uri fixture would point elsewhere)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained.uri)
    monkeypatch.chdir(trained.root)
    return trained


# -- what every variant does -------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(CASES))
def test_pipeline_validates_trains_logs_registers_promotes_and_reloads(variant, in_store):
    case = CASES[variant]
    commit, mlflow_uri = in_store.commit, in_store.uri
    out = in_store(variant)
    registered, report = out["registered_model"], out["validation_report"]
    assert registered["registered"] and registered["name"] == variant and registered["version"] == "1"
    assert report["success"] is True
    assert out["training_summary"]["variant"] == variant and out["training_summary"]["step"] == 4

    client = MlflowClient(mlflow_uri)
    run = client.get_run(registered["run_id"])
    # every parameter, flattened, with the reference's values; the code and data versions as tags
    assert {k: run.data.params.get(k) for k in case.params} == case.params
    assert run.data.params["data.crop_size"] == "32" and run.data.params["training.max_steps"] == "4"
    assert run.data.tags["variant"] == variant and run.data.tags["git_commit"] == commit
    assert run.data.tags["dataset_fingerprint"] == report["fingerprints"]["all"]
    # what precision/channels_last "auto" resolved to on this machine, and why
    summary = out["training_summary"]
    assert run.data.tags["resolved_precision"] == summary["precision"] in ("fp32", "bf16")
    assert run.data.tags["precision_reason"] and run.data.tags["resolved_channels_last"] in ("true", "false")
    # per-step losses of every term, the learning rates, throughput and the validation summary
    for metric in case.losses:
        history = client.get_metric_history(run.info.run_id, metric)
        assert [m.step for m in history] == [1, 2, 3, 4] and all(np.isfinite(m.value) for m in history), metric
    assert client.get_metric_history(run.info.run_id, "lr_G")[0].value == pytest.approx(case.lr[0])
    assert client.get_metric_history(run.info.run_id, "lr_D")[0].value == pytest.approx(case.lr[1])
    assert run.data.metrics["images_per_second"] > 0 and run.data.metrics["data_bad_files"] == 0
    samples = {a.path for a in client.list_artifacts(run.info.run_id, "samples")}
    assert {"samples/step_00000002.png", "samples/step_00000004.png", "samples/final.png"} <= samples
    assert "validation/validation_report.json" in {a.path for a in client.list_artifacts(run.info.run_id, "validation")}
    mv = client.get_model_version(variant, "1")
    assert mv.run_id == run.info.run_id and mv.tags["dataset_fingerprint"] == report["fingerprints"]["all"]
    # the pipeline ends with the metric gate: with no champion yet, the first version becomes champion
    assert out["promotion"]["promoted"] is True and "no champion" in out["promotion"]["reason"]
    assert str(client.get_model_version_by_alias(variant, "champion").version) == "1"

    # the registered version reloads (no pickles): the trained network, deterministic, at any size
    translator = transfigure.load_translator(variant, 1)
    assert translator.variant == variant and translator.directions == list(case.directions)
    assert translator.size_multiple == case.size_multiple
    assert translator.metadata["step"] == 4 and translator.metadata["mlflow_run_id"] == run.info.run_id
    if variant == "spade":
        image = Image.fromarray(np.repeat(np.arange(LABEL_NC, dtype=np.uint8), 25)[None].repeat(60, 0), mode="L")
    else:
        image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 100, 3), dtype=np.uint8))
    for direction in case.directions:
        result = translator.translate(image, direction)
        assert result.size == (100, 60) and result.mode == "RGB"
        assert np.array_equal(np.asarray(result), np.asarray(translator.translate(image, direction)))


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["cyclegan", "unit"])
def test_resumed_pipeline_continues_the_same_mlflow_run(variant, tmp_path, mlflow_uri):
    first = train_tiny(variant, tmp_path, max_steps=2)
    second = train_tiny(variant, tmp_path, max_steps=3, resume=True)
    run_id = first["registered_model"]["run_id"]
    assert second["registered_model"]["run_id"] == run_id
    assert second["training_summary"]["resumed_from_step"] == 2 and second["training_summary"]["step"] == 3
    assert [m.step for m in MlflowClient(mlflow_uri).get_metric_history(run_id, "loss_G")] == [1, 2, 3]


# -- what one variant adds --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cyclegan_second_training_is_version_2_and_the_gate_records_its_decision(in_store, tmp_path):
    in_store("cyclegan")
    out2 = run_pipeline("cyclegan", tiny_params("cyclegan", in_store.root / "cyclegan" / "tiny_cyclegan", tmp_path))
    assert out2["registered_model"]["version"] == "2"
    assert (
        transfigure.load_translator("cyclegan", "latest").metadata["mlflow_run_id"]
        == out2["registered_model"]["run_id"]
    )
    # promoted or refused, the decision and its reason are on record
    client = MlflowClient(in_store.uri)
    decision = out2["promotion"]
    assert str(client.get_model_version_by_alias("cyclegan", "champion").version) == (
        "2" if decision["promoted"] else "1"
    )
    assert (
        decision["reason"] and client.get_model_version("cyclegan", "2").tags["promotion.reason"] == decision["reason"]
    )


@pytest.mark.slow
def test_unit_decoders_differ_and_pix2pix_has_one_direction(in_store):
    in_store("unit")
    translator = transfigure.load_translator("unit", 1)
    assert translator.config["generators"]["AtoB"]["type"] == "unit"
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 100, 3), dtype=np.uint8))
    assert not np.array_equal(
        np.asarray(translator.translate(img, "AtoB")), np.asarray(translator.translate(img, "BtoA"))
    )

    in_store("pix2pix")
    with pytest.raises(
        ValueError, match="unknown direction .BtoA.*AtoB"
    ):  # one mapping only (the dataset did the swap)
        transfigure.load_translator("pix2pix", 1).translate(img, "BtoA")


@pytest.mark.slow
def test_spade_validates_label_ids_and_its_model_refuses_ids_it_cannot_represent(in_store):
    out = in_store("spade")
    report = out["validation_report"]
    assert report["summary"]["label_max"] == 3
    assert "label_ids" in {r["expectation_config"]["meta"]["check"] for r in report["gx_result"]["results"]}
    translator = transfigure.load_translator("spade", 1)
    assert translator.takes_label_maps("AtoB")
    ids = np.zeros((60, 100), np.uint8)
    ids[30:] = 1
    ids[10:25, 20:40] = 3
    label = Image.fromarray(ids, mode="L")
    inst = Image.fromarray((ids == 3).astype(np.uint8), mode="L")
    assert translator.translate(label, instance=inst).size == (100, 60)
    bad = ids.copy()
    bad[0, :3] = [9, 4, 200]
    with pytest.raises(LabelIdError, match=r"\[4, 9, 200\].*label_nc=4"):
        translator.translate(Image.fromarray(bad, mode="L"))
    with pytest.raises(ValueError, match="mode 'RGB'"):
        translator.translate(label.convert("RGB"))


# -- bad data stops before training, naming the file --------------------------------------------------------------
def _truncate(data: Path) -> None:
    file = data / "trainA" / "trainA_001.png"
    file.write_bytes(file.read_bytes()[:100])


def _odd_width(data: Path) -> None:
    file = data / "train" / "001.png"
    Image.open(file).crop((0, 0, 63, 32)).save(file)  # 63 px: no equal A|B halves


def _bad_label_ids(data: Path) -> None:
    file = data / "train_label" / "train_001.png"
    ids = np.asarray(Image.open(file)).copy()
    ids[0, 0], ids[0, 1] = 7, 12
    Image.fromarray(ids, mode="L").save(file)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("variant", "damage", "message"),
    [
        ("cyclegan", _truncate, r"trainA_001\.png"),
        ("pix2pix", _odd_width, r"(?s)train/001\.png.*odd width 63"),
        ("spade", _bad_label_ids, r"(?s)train_label/train_001\.png: class ids \[7, 12\]"),
    ],
)
def test_bad_data_stops_before_training_and_names_the_file(variant, damage, message, tmp_path, mlflow_uri):
    data = CASES[variant].make_data(tmp_path / "data")
    damage(data)
    with pytest.raises(DataValidationError, match=message):
        run_pipeline(variant, tiny_params(variant, data, tmp_path / "models"))
    assert not (tmp_path / "models").exists()  # nothing was trained
    assert MlflowClient(mlflow_uri).search_experiments(filter_string=f"name = 'transfigure-{variant}'") == []


@pytest.mark.slow
def test_paired_folders_with_a_missing_partner_fail_validation(tmp_path, mlflow_uri):
    root = make_unaligned(tmp_path / "paired")
    (root / "trainB" / "trainB_002.png").unlink()
    for split in ("train", "test"):  # paired: matched by name
        for file in (root / f"{split}B").iterdir():
            file.rename(file.with_name(file.name.replace(f"{split}B_", f"{split}A_")))
    params = tiny_params("pix2pix", root, tmp_path / "models")
    params["data"]["format"] = "paired"  # trainA/ + trainB/ matched by name (auto would read them as unaligned)
    with pytest.raises(DataValidationError, match=r"(?s)trainA/trainA_002\.png.*no B file"):
        run_pipeline("pix2pix", params)
    assert not (tmp_path / "models").exists()


@pytest.mark.slow
def test_too_small_crop_for_the_unit_discriminator_names_the_fix(tmp_path, mlflow_uri):
    data = make_unaligned(tmp_path / "data")
    params = tiny_params("unit", data, tmp_path / "models")
    params["model"]["dis_n_layer"] = 4  # the reference's 4 layers x 3 scales need >= 61 px
    with pytest.raises(Exception, match="too small .* crop_size"):
        run_pipeline("unit", params)


# -- parameters and datasets, without training --------------------------------------------------------------------
def test_base_parameters_are_valid_and_tiny():
    p = project_params("pix2pix")
    assert p["data"]["default_subset"] == "edges2photo" and p["data"]["path"] is None
    assert p["data"]["format"] == "aligned"  # never auto: trainA/ + trainB/ would be taken as unpaired
    assert p["data"]["crop_size"] % 2 ** p["model"]["num_downs"] == 0  # the U-Net needs multiples of 2**num_downs
    config = model_config("pix2pix", p["data"], p["model"])
    assert config.generator_config()["num_downs"] == 6 and TrainingConfig(**p["training"]).total_epochs == 20
    spade = project_params("spade")  # the model follows the data section
    assert spade["validation"]["label_nc"] == spade["data"]["label_nc"] == 8
    assert spade["model"]["use_instance"] is spade["data"]["use_instance"] is True
    assert spade["model"]["crop_size"] == spade["data"]["crop_size"] == 64 and spade["model"]["use_vgg_loss"] is False


def test_default_runs_draw_a_cheap_fid_curve():
    """plots/fid.csv has points after a default run: FID on a few held-out images every few epochs."""
    for variant in VARIANTS:
        p = project_params(variant)
        epochs = TrainingConfig(**p["training"]).total_epochs
        assert p["training"]["eval_every"] and epochs // p["training"]["eval_every"] >= 2, variant
        assert p["evaluation"]["curve_images"] <= 16 and p["evaluation"]["size"] is None  # = the 64 px crop


def test_paper_environment_merges_into_the_paper_setup():
    loader = OmegaConfigLoader(
        conf_source=str(PROJECT / "conf"),
        base_env="base",
        default_run_env="paper",
        merge_strategy={"parameters": "soft"},
    )  # as settings.py configures Kedro
    paper = loader["parameters"]["pix2pix"]
    config = model_config("pix2pix", paper["data"], paper["model"])
    assert config.generator_config() == {
        "type": "unet",
        "num_downs": 8,
        "input_nc": 3,
        "output_nc": 3,
        "ngf": 64,
        "norm": "batch",
        "use_dropout": True,
    }
    assert (config.ndf, config.netD, config.gan_mode, config.lambda_L1) == (64, "basic", "vanilla", 100.0)
    assert (paper["data"]["load_size"], paper["data"]["crop_size"]) == (286, 256)
    training = TrainingConfig(**paper["training"])
    assert (training.batch_size, training.n_epochs, training.n_epochs_decay, training.lr_policy) == (
        1,
        100,
        100,
        "linear",
    )
    # the paper's 256 px images load in 4 worker processes; conf/base (tests, CPU smoke runs) loads in-process
    assert (training.num_workers, training.persistent_workers) == (4, True)
    assert TrainingConfig(**loader["parameters"]["cyclegan"]["training"]).num_workers == 4


def test_direction_btoa_swaps_input_and_target(tmp_path):
    root = make_aligned(tmp_path / "aligned")
    data = {**project_params("pix2pix")["data"], "load_size": 32, "crop_size": 32, "flip": False, "preprocess": "none"}
    dataset = {"root": str(root), "format": "aligned"}
    a2b = build_dataset(dataset, {**data, "direction": "AtoB"})[0]
    b2a = build_dataset(dataset, {**data, "direction": "BtoA"})[0]
    assert a2b["A"].shape == (3, 32, 32)
    assert np.allclose(b2a["A"], a2b["B"]) and np.allclose(b2a["B"], a2b["A"])
    assert np.allclose(a2b["B"], -a2b["A"], atol=1e-2)  # the right half is the left's negative


def test_paired_images_of_different_sizes_fail_clearly_without_resizing(tmp_path):
    root = tmp_path / "paired"
    (root / "trainA").mkdir(parents=True)
    (root / "trainB").mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(root / "trainA" / "x.png")
    Image.new("RGB", (40, 32)).save(root / "trainB" / "x.png")
    data = {**project_params("pix2pix")["data"], "preprocess": "crop", "crop_size": 32}
    dataset = build_dataset({"root": str(root), "format": "paired"}, data)
    with pytest.raises(
        ValueError, match=r"paired images differ in size: '.*trainA/x\.png' is 32x32, '.*trainB/x\.png' is 40x32"
    ):
        dataset[0]
