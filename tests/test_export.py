"""ONNX + TorchScript export of all four generators, checked against PyTorch at two sizes; the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from torch import nn

from _support import default_dataset, tiny_variant_params, train_and_register
from transfigure.cli import main
from transfigure.export import export_generator, sample_inputs
from transfigure.inference import Translator
from transfigure.models import VARIANTS
from transfigure.models.io import save_generators

TINY = {
    "cyclegan": {"ngf": 4, "ndf": 4, "netG": "resnet_6blocks"},
    "pix2pix": {"ngf": 4, "ndf": 4, "netG": "unet", "num_downs": 5},
    "unit": {"dim": 4, "dis_dim": 4},
    "spade": {
        "ngf": 4,
        "ndf": 4,
        "label_nc": 8,
        "contain_dontcare_label": True,
        "use_instance": True,
        "crop_size": 32,
        "spade_hidden": 8,
    },
}


def lively(generator: nn.Module, config: dict) -> nn.Module:
    """Give an untrained tiny generator outputs spread over (-1, 1), so that the numeric check is not
    vacuous: batch-norm statistics from a few forward passes, then the last conv scaled to std ~0.5."""
    inputs = sample_inputs(config, (64, 64), seed=7)

    def call() -> torch.Tensor:
        return generator(inputs[0], inputs[1]) if "label_nc" in config else generator(inputs[0])

    generator.train()
    with torch.no_grad():
        for _ in range(3):
            call()
        generator.eval()
        last = [m for m in generator.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))][-1]
        for _ in range(3):
            std = float(torch.atanh(call().clamp(-0.999, 0.999)).std())
            last.weight.mul_(0.5 / max(std, 1e-6))
            if last.bias is not None:
                last.bias.mul_(0.5 / max(std, 1e-6))
    return generator


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(TINY))
def test_export_matches_pytorch_at_two_sizes(variant, tmp_path):
    import onnx  # heavy: imported where used, not when the fast loop collects this module
    import onnxruntime as ort

    torch.manual_seed(0)
    model = VARIANTS[variant](VARIANTS[variant].config_class(**TINY[variant]))
    gens = {d: lively(g, g.config) for d, g in model.generators().items()}
    folder = save_generators(tmp_path / "generator", gens, variant=variant)
    report = export_generator(folder, tmp_path / "export")
    assert report["ok"] and report["max_abs_diff"] <= 1e-4
    assert json.loads((tmp_path / "export" / "export_report.json").read_text()) == report
    translator = Translator.from_folder(folder, device="cpu")
    for direction, entry in report["directions"].items():
        for fmt in ("onnx", "torchscript"):
            checks = entry[fmt]["checks"]
            assert len({(c["height"], c["width"]) for c in checks}) == 2 and all(c["batch"] == 2 for c in checks)
            assert all(c["max_abs_diff"] <= 1e-4 for c in checks)
            # the outputs being compared are not saturated or constant: the check means something
            assert all(c["unsaturated_fraction"] > 0.5 and c["output_abs_max"] > 0.1 for c in checks)
        onnx_path = tmp_path / "export" / entry["onnx"]["file"]
        graph = onnx.load(str(onnx_path)).graph
        dims = [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input]
        assert all(isinstance(dim[2], str) and isinstance(dim[3], str) for dim in dims if len(dim) == 4)  # dynamic H, W
        assert [i.name for i in graph.input] == entry["inputs"]
        if not entry["takes_label_maps"]:
            # a third size, batch 1, against what users get from transfigure's own Translator
            m = entry["size_multiple"]
            x = torch.rand(1, 3, 5 * m if m > 4 else 44, 3 * m if m > 4 else 28) * 2 - 1
            session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
            out = session.run(None, {"input": x.numpy()})[0]
            ref = translator.translate_tensor(x, direction).numpy()
            assert np.abs(out - ref).max() <= 1e-4
            scripted = torch.jit.load(str(tmp_path / "export" / entry["torchscript"]["file"]))
            assert np.abs(scripted(x).detach().numpy() - ref).max() <= 1e-4
    if variant == "spade":
        assert report["directions"]["AtoB"]["inputs"] == ["label", "instance"]


@pytest.mark.slow
def test_export_cli_for_a_registered_version(mlflow_uri, tmp_path, capsys):
    registered = train_and_register(
        tiny_variant_params("cyclegan", tmp_path / "models"), default_dataset(tmp_path / "data")
    )
    out = tmp_path / "exported"
    code = main(
        [
            "export",
            "cyclegan",
            "--version",
            registered["version"],
            "--format",
            "onnx",
            "--out",
            str(out),
            "--log-artifacts",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0 and "AtoB.onnx" in printed and "max abs diff vs PyTorch" in printed
    assert sorted(p.name for p in out.iterdir()) == ["AtoB.onnx", "BtoA.onnx", "export_report.json"]
    report = json.loads((out / "export_report.json").read_text())
    assert report["source"] == f"models:/cyclegan/{registered['version']}" and report["ok"]
    assert report["metadata"]["mlflow_run_id"] == registered["run_id"]
    logged = {a.path for a in MlflowClient(mlflow_uri).list_artifacts(registered["run_id"], "export")}
    assert logged == {"export/AtoB.onnx", "export/BtoA.onnx", "export/export_report.json"}
    # a numeric check that cannot pass (tolerance 0 against float rounding) fails the command with 1
    code = main(
        [
            "export",
            "cyclegan",
            "--alias",
            "latest",
            "--format",
            "onnx",
            "--direction",
            "AtoB",
            "--out",
            str(tmp_path / "strict"),
            "--tolerance",
            "0",
        ]
    )
    captured = capsys.readouterr()
    assert code == 1 and "FAIL" in captured.out and "FAILED the numeric check" in captured.err
    # usage errors: exit 2 with a message
    assert main(["export", "cyclegan", "--version", "9"]) == 2
    assert "no model 'cyclegan' '9'" in capsys.readouterr().err
    assert main(["export", "cyclegan"]) == 2
    assert main(["export", "--from-dir", str(tmp_path)]) == 2
    assert "not an exported generator folder" in capsys.readouterr().err
