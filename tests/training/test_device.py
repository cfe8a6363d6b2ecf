"""Where training runs and in which precision (rnnkit.training.device): [training] device/precision, --device.

On a machine without CUDA the CUDA tests skip and say so; the CPU tests show that ``auto`` falls back
to the CPU with the very same results, that ``cuda`` without a GPU is one line and exit code 2, and
that bf16 autocast trains on a CPU while fp16 is refused there.
"""

from __future__ import annotations

import json

import pytest
import torch

import rnnkit as rk
from helpers import one_line_error, write_jena_csv
from rnnkit.cli import main
from rnnkit.errors import RnnkitError
from rnnkit.training import Trainer
from rnnkit.training.device import autocast, check_precision, resolve_device, to_device
from rnnkit.training.distributed import backend_for

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA GPU here (torch.cuda.is_available() is False)")
without_cuda = pytest.mark.skipif(CUDA, reason="shows the CPU-only fallback; this machine has a CUDA GPU")


def sine_data(n: int = 160, length: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n + length, dtype=torch.float32)
    s = torch.sin(t / 4) + 0.05 * torch.randn(n + length, generator=g)
    idx = torch.arange(n)[:, None] + torch.arange(length)[None, :]
    return s[idx][:, :, None], s[length:][:, None]  # (n, length, 1), (n, 1)


def gru_model(seed: int = 3):
    torch.manual_seed(seed)
    return rk.Sequential(rk.layers.GRU(8), rk.layers.Dense(1), input_shape=(12, 1))


def fit(device="auto", precision="fp32", epochs=3, **kw):
    model = gru_model()
    history = Trainer(epochs=epochs, batch_size=32, progress=False, device=device, precision=precision, **kw).fit(
        model, sine_data(), sine_data(48, seed=1)
    )
    return model, history


# --- choosing the device ----------------------------------------------------------------------------


def test_cpu_is_the_cpu_and_auto_is_cuda_where_present():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if CUDA else "cpu")


def test_an_unknown_device_or_precision_names_the_choices():
    with pytest.raises(RnnkitError, match=r"device must be one of auto, cpu, cuda, got 'gpu'"):
        resolve_device("gpu")
    with pytest.raises(RnnkitError, match=r"precision must be one of fp32, bf16, fp16, got 'fp8'"):
        check_precision("fp8", torch.device("cpu"))


@without_cuda
def test_cuda_without_a_gpu_is_refused_by_name_where_the_trainer_is_made():
    with pytest.raises(RnnkitError, match=r"device = 'cuda' but torch sees no CUDA GPU.*use device = 'auto' or 'cpu'"):
        Trainer(device="cuda")


@without_cuda
def test_auto_without_a_gpu_trains_on_the_cpu_with_identical_results():
    auto, h_auto = fit("auto")
    cpu, h_cpu = fit("cpu")
    assert h_auto["loss"] == h_cpu["loss"] and h_auto["val_loss"] == h_cpu["val_loss"]
    for (name, a), b in zip(auto.state_dict().items(), cpu.state_dict().values()):
        assert a.device.type == "cpu" and torch.equal(a, b), name


def test_a_host_batch_stays_itself_on_the_cpu():
    x = torch.arange(6.0)
    assert to_device(x, torch.device("cpu")) is x


def test_torchrun_uses_gloo_for_cpus_and_nccl_for_gpus():
    assert backend_for("cpu") == "gloo"
    assert backend_for("auto") == ("nccl" if CUDA else "gloo")
    assert backend_for("cuda") == ("nccl" if CUDA else "gloo")


# --- precision ------------------------------------------------------------------------------------


def test_bf16_autocast_runs_the_forward_pass_in_bfloat16_on_a_cpu():
    model = gru_model()
    x, _ = sine_data(4)
    with autocast(torch.device("cpu"), "bf16"):
        out = model(x)
    assert out.dtype == torch.bfloat16
    assert torch.allclose(out.float(), model(x), atol=0.05)  # bf16 keeps ~3 significant digits
    assert model(x).dtype == torch.float32  # outside the block: float32 again


def test_bf16_training_on_a_cpu_learns_like_fp32_and_keeps_float32_weights():
    fp32, h32 = fit("cpu", "fp32", epochs=4)
    bf16, h16 = fit("cpu", "bf16", epochs=4)
    assert h16["loss"] != h32["loss"]  # autocast did run: the rounding differs
    assert h16["loss"][-1] < h16["loss"][0]  # and it learns
    assert h16["val_loss"][-1] == pytest.approx(h32["val_loss"][-1], rel=0.1)
    assert all(p.dtype == torch.float32 for p in bf16.parameters())


def test_fp16_on_a_cpu_is_refused_with_what_to_use():
    with pytest.raises(RnnkitError, match=r"precision = 'fp16' needs device = 'cuda'.*use 'bf16' or 'fp32'"):
        Trainer(device="cpu", precision="fp16")


def test_a_bf16_checkpoint_resumes_only_in_bf16(tmp_path):
    model = gru_model()
    Trainer(epochs=1, progress=False, device="cpu", precision="bf16", checkpoint_dir=tmp_path).fit(model, sine_data())
    with pytest.raises(RnnkitError, match=r"precision: checkpoint 'bf16', now None"):
        Trainer(epochs=2, progress=False, device="cpu", checkpoint_dir=tmp_path).fit(model, sine_data(), resume=True)


def test_keras_compile_takes_device_and_precision():
    model = gru_model()
    model.compile(optimizer="adam", loss="mse", device="cpu", precision="bf16")
    x, y = sine_data(64)
    history = model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    assert len(history.history["loss"]) == 2


# --- the command line -------------------------------------------------------------------------------


@pytest.fixture
def config_file(tmp_path):
    csv = write_jena_csv(tmp_path / "hourly.csv")

    def write(**training):
        settings = {"epochs": 1, "batch_size": 64, "seed": 0, **training}
        lines = [
            'name = "tiny"',
            "[data]",
            f"paths = [{json.dumps(str(csv))}]",
            "split = [0.6, 0.2, 0.2]",
            "[windows]",
            "sequence_length = 24",
            "horizon = 6",
            "[training]",
            *(f"{k} = {json.dumps(v)}" for k, v in settings.items()),
            "[[models]]",
            'name = "GRU(4)"',
            'layers = [{type = "GRU", units = 4}, {type = "Dense", units = 1}]',
        ]
        path = tmp_path / f"tiny-{len(list(tmp_path.glob('tiny-*.toml')))}.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    return write


@without_cuda
@pytest.mark.parametrize("where", ["--device", "config"])
def test_cuda_without_a_gpu_is_one_line_and_exit_2_before_the_run_folder(config_file, tmp_path, capsys, where):
    config = config_file(device="cuda") if where == "config" else config_file()
    argv = ["train", str(config), "--output", str(tmp_path / "run"), "--quiet"]
    one_line_error(
        capsys,
        argv + (["--device", "cuda"] if where == "--device" else []),
        "device = 'cuda' but torch sees no CUDA GPU",
        "use device = 'auto' or 'cpu'",
    )
    assert not (tmp_path / "run").exists()


def test_fp16_on_the_cpu_at_the_command_line_is_one_line_and_exit_2(config_file, tmp_path, capsys):
    one_line_error(
        capsys,
        ["train", str(config_file(precision="fp16")), "--output", str(tmp_path / "run"), "--device", "cpu", "--quiet"],
        "precision = 'fp16' needs device = 'cuda'",
    )


def test_a_bad_device_name_in_the_config_is_one_line_and_exit_2(config_file, tmp_path, capsys):
    one_line_error(
        capsys, ["train", str(config_file(device="gpu")), "--output", str(tmp_path / "run"), "--quiet"], "device"
    )


@without_cuda
def test_device_auto_at_the_command_line_gives_the_cpu_runs_numbers(config_file, tmp_path, capsys):
    config = config_file()
    metrics = {}
    for device in ("auto", "cpu"):
        assert main(["train", str(config), "--output", str(tmp_path / device), "--device", device, "--quiet"]) == 0
        metrics[device] = json.loads((tmp_path / device / "metrics.json").read_text())["models"]["GRU(4)"]
    capsys.readouterr()
    assert metrics["auto"]["mae_val"] == metrics["cpu"]["mae_val"]
    assert metrics["auto"]["mae_test"] == metrics["cpu"]["mae_test"]


def test_a_run_resumes_with_another_device_given(config_file, tmp_path, capsys):
    # --device is not a setting of the run: the run's identity stays, so --resume takes it
    run = tmp_path / "run"
    assert main(["train", str(config_file()), "--output", str(run), "--device", "auto", "--quiet"]) == 0
    assert main(["train", "--resume", str(run), "--device", "cpu", "--epochs", "2", "--quiet"]) == 0
    assert json.loads((run / "models" / "gru_4" / "result.json").read_text())["epochs_run"] == 1  # read back


# --- on a GPU -------------------------------------------------------------------------------------


@needs_cuda
def test_cuda_training_leaves_the_model_on_the_gpu_and_matches_the_cpu_closely():
    gpu, h_gpu = fit("cuda")
    cpu, h_cpu = fit("cpu")
    assert all(p.device.type == "cuda" for p in gpu.parameters())
    assert h_gpu["val_loss"][-1] == pytest.approx(h_cpu["val_loss"][-1], rel=1e-3)
    x, _ = sine_data(8)
    assert torch.allclose(rk.training.predict(gpu, x), rk.training.predict(cpu, x), atol=1e-3)


@needs_cuda
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_on_cuda_learns(precision):
    _, history = fit("cuda", precision, epochs=4)
    assert history["loss"][-1] < history["loss"][0]


@needs_cuda
@pytest.mark.parametrize(("first", "then"), [("cpu", "cuda"), ("cuda", "cpu")])
def test_a_checkpoint_resumes_across_devices_to_the_same_run(tmp_path, first, then):
    whole, _ = fit(first, epochs=4)
    model = gru_model()
    Trainer(epochs=2, batch_size=32, progress=False, device=first, checkpoint_dir=tmp_path).fit(
        model, sine_data(), sine_data(48, seed=1)
    )
    Trainer(epochs=4, batch_size=32, progress=False, device=then, checkpoint_dir=tmp_path).fit(
        model, sine_data(), sine_data(48, seed=1), resume=True
    )
    for a, b in zip(model.state_dict().values(), whole.state_dict().values()):
        assert torch.allclose(a.cpu(), b.cpu(), atol=1e-4)
