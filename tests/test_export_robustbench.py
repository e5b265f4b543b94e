"""`iseat export robustbench RUN`: RobustBench's own architecture classes load the exported state dict with
strict=True and give the model's logits; the model-info JSON has the leaderboard's fields; runs that cannot
be listed are refused in one line, with nothing written.

RobustBench is an optional test dependency (`pip install --no-deps robustbench==1.1.1`): only its
architecture files are loaded, by path, so none of its heavy dependencies are needed.
"""

import copy
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from iseat.cli import main
from iseat.evaluation import EvaluationSpec, IndexedTensors, evaluate_model
from iseat.methods.models import build_model
from iseat.training.checkpoint import model_checkpoint, save_atomic, sha256_of
from iseat.training.config import DEFAULTS

pytestmark = pytest.mark.usefixtures("one_thread")

LEADERBOARD_FIELDS = [
    "link",
    "name",
    "authors",
    "additional_data",
    "number_forward_passes",
    "dataset",
    "venue",
    "architecture",
    "eps",
    "clean_acc",
    "reported",
    "autoattack_acc",
]


def robustbench_module(name: str):
    """robustbench/model_zoo/architectures/<name>.py, loaded by path (importing robustbench needs pandas, timm...)."""
    spec = importlib.util.find_spec("robustbench")
    if spec is None:
        pytest.skip("robustbench is not installed (pip install --no-deps robustbench==1.1.1)")
    path = Path(spec.origin).parent / "model_zoo" / "architectures" / f"{name}.py"
    module_spec = importlib.util.spec_from_file_location(f"robustbench_arch_{name}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def robustbench_model(architecture: dict):
    if architecture["arch"] == "wide_resnet":
        return robustbench_module("wide_resnet").WideResNet(
            depth=architecture["depth"], num_classes=architecture["num_classes"], widen_factor=architecture["width"]
        )
    resnet = robustbench_module("resnet")
    return resnet.PreActResNet(
        resnet.PreActBlock, [2, 2, 2, 2], num_classes=architecture["num_classes"], bn_before_fc=True, out_shortcut=True
    )


def randomised(model):
    """Random weights and BatchNorm statistics, so that every tensor's place matters."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                values = torch.randn(tensor.shape, generator=generator) * 0.1
                tensor.copy_(values.abs() + 0.5 if name.endswith("running_var") else values)
    return model.eval()


def make_run(
    folder: Path, arch: str, depth=34, width=10, num_classes=10, dataset="cifar10", extra=None, attack="autoattack"
):
    """A run folder: best.pt and an aa.json of it (2 mislabelled images, so the attack itself has nothing to do)."""
    cfg = copy.deepcopy(DEFAULTS)
    cfg["data"].update(dataset=dataset, extra=extra)
    cfg["model"].update(arch=arch, depth=depth, width=width)
    architecture = {"arch": arch, "num_classes": num_classes, "activation": "relu", "depth": depth, "width": width}
    torch.manual_seed(0)
    model = randomised(build_model(**architecture))
    folder.mkdir(parents=True)
    save_atomic(model_checkpoint(model, architecture, 3, {}, cfg), folder / "best.pt")
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        y = (model(x).argmax(1) + 1) % num_classes
    source = {
        "checkpoint": {
            "path": "elsewhere/best.pt",
            "sha256": sha256_of(folder / "best.pt"),
            "format": "x",
            "epoch": 3,
            "architecture": architecture,
        },
        "training_config": cfg,
    }
    evaluate_model(
        model,
        IndexedTensors(x, y),
        folder / "aa.json",
        EvaluationSpec(attacks=(attack,)),
        num_classes=num_classes,
        source=source,
        data={"dataset": dataset},
        progress=False,
    )
    return model, architecture


def export(capsys, *args):
    rc = main(["export", "robustbench", *map(str, args)])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def assert_same_logits(model, architecture, state_dict_path):
    reference = robustbench_model(architecture)
    reference.load_state_dict(torch.load(state_dict_path, weights_only=True), strict=True)
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(reference.eval()(x), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "arch, depth, width", [("wide_resnet", 10, 1), ("wide_resnet", 16, 2), ("preact_resnet18", 34, 10)]
)
def test_robustbench_architecture_loads_the_export_strictly_with_the_same_logits(tmp_path, capsys, arch, depth, width):
    robustbench_module("wide_resnet")  # skip early without the package
    model, architecture = make_run(tmp_path / "run", arch, depth, width)
    rc, out, err = export(capsys, tmp_path / "run", "--name", "model")
    assert rc == 0 and err == "" and "-> " in out
    assert_same_logits(model, architecture, tmp_path / "run" / "robustbench" / "model.pt")


@pytest.mark.slow
@pytest.mark.parametrize("depth", [34, 28])
def test_full_size_wide_resnets(tmp_path, capsys, depth):
    """WRN-34-10 and WRN-28-10 as the paper trains them."""
    robustbench_module("wide_resnet")
    model, architecture = make_run(tmp_path / "run", "wide_resnet", depth, 10)
    assert export(capsys, tmp_path / "run", "--out", tmp_path / "rb", "--name", "m")[0] == 0
    assert_same_logits(model, architecture, tmp_path / "rb" / "m.pt")
    assert json.loads((tmp_path / "rb" / "m.json").read_text())["architecture"] == f"WideResNet-{depth}-10"


def test_model_info_has_the_leaderboard_fields(tmp_path, capsys):
    make_run(tmp_path / "run", "wide_resnet", 10, 1, extra="data/ti500k")
    rc, _, _ = export(capsys, tmp_path / "run")
    assert rc == 0
    written = tmp_path / "run" / "robustbench" / "iseat_cifar10_WideResNet-10-1.json"
    info = json.loads(written.read_text())
    report = json.loads((tmp_path / "run" / "aa.json").read_text())
    assert list(info)[: len(LEADERBOARD_FIELDS)] == LEADERBOARD_FIELDS  # robustbench's own order
    assert info["eps"] == "8/255" and info["threat_model"] == "Linf" and info["dataset"] == "cifar10"
    assert info["additional_data"] is True and info["number_forward_passes"] == 1
    assert info["clean_acc"] == f"{100 * report['clean_accuracy']:.2f}"
    assert info["autoattack_acc"] == info["reported"] == f"{100 * report['robust_accuracy']:.2f}"
    assert info["evaluation"]["protocol"] == "autoattack-standard" and info["evaluation"]["n_examples"] == 2
    assert info["robustbench_model"] == "WideResNet(depth=10, num_classes=10, widen_factor=1)"
    assert info["evaluation"]["stamp"] == report["stamp"] and report["stamp"]["threat_model"]["eps"] == 8 / 255


def before_the_stamp(tmp_path):
    """A report of the format before protocol stamps (iseat-robustness-v1)."""
    make_run(tmp_path, "wide_resnet", 10, 1)
    report = json.loads((tmp_path / "aa.json").read_text())
    report.pop("stamp")
    (tmp_path / "aa.json").write_text(json.dumps({**report, "format": "iseat-robustness-v1"}))


def non_standard(tmp_path):
    make_run(tmp_path, "wide_resnet", 10, 1, attack="autoattack-paper-protocol")


def changed_checkpoint(tmp_path):
    make_run(tmp_path, "wide_resnet", 10, 1)
    ckpt = torch.load(tmp_path / "best.pt", weights_only=True)
    ckpt["epoch"] = 4
    save_atomic(ckpt, tmp_path / "best.pt")


REFUSED = {
    "non-standard AutoAttack": (non_standard, "RobustBench lists standard AutoAttack only"),
    "PGD only": (lambda t: make_run(t, "wide_resnet", 10, 1, attack="pgd"), "not a standard AutoAttack"),
    "no leaderboard for svhn": (lambda t: make_run(t, "wide_resnet", 10, 1, dataset="svhn"), "no l-inf leaderboard"),
    "small CNN": (lambda t: make_run(t, "small_cnn"), "no architecture for 'small_cnn'"),
    "checkpoint changed": (changed_checkpoint, "changed after"),
    "no report": (lambda t: t.mkdir(), "not a readable evaluation report"),
    "report before protocol stamps": (before_the_stamp, "rerun its evaluation"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_runs_that_cannot_be_listed_are_refused(tmp_path, capsys, case):
    make, message = REFUSED[case]
    make(tmp_path / "run")
    rc, out, err = export(capsys, tmp_path / "run", "--out", tmp_path / "out")
    assert rc == 2 and out == "" and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "out").exists()
