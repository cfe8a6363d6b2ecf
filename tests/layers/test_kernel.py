"""The compiled CPU kernel (layers/kernel.py, layers/csrc/rnn_kernel.cpp): gradient parity with
PyTorch's modules and with the step loop, gradcheck, dropout given the masks, threads, and the
switch (use_kernel, RNNKIT_KERNEL) with its fallback."""

from __future__ import annotations

import platform

import numpy as np
import pytest
import torch
from torch import nn

from rnnkit.layers import kernel, use_kernel
from rnnkit.layers.bidirectional import Bidirectional
from rnnkit.layers.recurrent import GRU, LSTM, SimpleRNN

pytestmark = pytest.mark.skipif(
    not kernel.compiler_available(), reason="no C++ compiler on PATH: the compiled kernel cannot be built here"
)

# (layer class, options, PyTorch module, its options)
CELLS = {
    "gru": (GRU, {}, nn.GRU, {}),
    "lstm": (LSTM, {}, nn.LSTM, {}),
    "rnn_tanh": (SimpleRNN, {}, nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (SimpleRNN, {"activation": "relu"}, nn.RNN, {"nonlinearity": "relu"}),
}
# every cell the kernel runs: PyTorch's four, and GRU reset_after=False (no PyTorch module)
ALL_CELLS = {**CELLS, "gru_reset_before": (GRU, {"reset_after": False}, None, None)}
# float64 to 1e-10, float32 to 1e-5, both relative to the largest value of the tensor compared
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}


@pytest.fixture
def compiled(monkeypatch):
    """Force the kernel (an error if it cannot be built) and count its calls."""
    calls = []
    original = kernel.run
    monkeypatch.setattr(kernel, "run", lambda *a: calls.append(a[0]) or original(*a))
    with use_kernel("compiled"):
        yield calls


def assert_relative(got, want, dtype):
    for a, b in zip(got, want):
        scale = b.abs().max().item() or 1.0
        error = (a - b).abs().max().item() / scale
        assert error <= TOLERANCE[dtype], f"relative error {error:.3g} > {TOLERANCE[dtype]}"


def _torch_module(name, layer):
    """PyTorch's module with the layer's weights (Keras's one bias goes to bias_ih, bias_hh = 0)."""
    _, _, module_cls, module_kw = CELLS[name]
    cell = layer.cell
    module = module_cls(cell.input_size, cell.units, batch_first=True, **module_kw).to(cell.weight_ih.dtype)
    with torch.no_grad():
        module.weight_ih_l0.copy_(cell.weight_ih)
        module.weight_hh_l0.copy_(cell.weight_hh)
        if name == "gru":
            module.bias_ih_l0.copy_(cell.bias_ih)
            module.bias_hh_l0.copy_(cell.bias_hh)
        else:
            module.bias_ih_l0.copy_(cell.bias)
            module.bias_hh_l0.zero_()
    return module


def _randomize(layer, seed):
    """Random weights and biases (not Keras's zero bias), so that every gradient is exercised."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=generator, dtype=p.dtype))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("go_backwards", [False, True], ids=["forwards", "backwards"])
@pytest.mark.parametrize("name", list(CELLS))
def test_gradients_equal_pytorch_modules(compiled, name, go_backwards, dtype):
    cls, kw, _, _ = ALL_CELLS[name]
    layer = cls(16, return_sequences=True, return_state=True, go_backwards=go_backwards, input_size=5, **kw).to(dtype)
    _randomize(layer, 1)
    module = _torch_module(name, layer)
    torch.manual_seed(2)
    x = torch.randn(33, 9, 5, dtype=dtype, requires_grad=True)
    states = [torch.randn(33, 16, dtype=dtype, requires_grad=True) for _ in range(layer.state_count)]
    y, *final = layer(x, initial_state=states if name == "lstm" else states[0])
    assert compiled == [name]
    hx = tuple(s.unsqueeze(0) for s in states) if name == "lstm" else states[0].unsqueeze(0)
    y_ref, final_ref = module(x.flip(1) if go_backwards else x, hx)
    final_ref = [s[0] for s in (final_ref if name == "lstm" else (final_ref,))]
    assert_relative([y, *final], [y_ref, *final_ref], dtype)
    # a loss on every output and every final state
    weights = [torch.randn_like(t) for t in (y, *final)]
    inputs = [x, *states]
    ours = torch.autograd.grad(
        sum((w * t).sum() for w, t in zip(weights, (y, *final))), inputs + list(layer.parameters())
    )
    theirs = torch.autograd.grad(
        sum((w * t).sum() for w, t in zip(weights, (y_ref, *final_ref))), inputs + list(module.parameters())
    )
    n_in = len(inputs)
    assert_relative(ours[:n_in], theirs[:n_in], dtype)
    if name == "gru":
        assert_relative(ours[n_in:], theirs[n_in:], dtype)  # weight_ih, weight_hh, bias_ih, bias_hh
    else:
        w_ih, w_hh, bias = ours[n_in:]
        assert_relative([w_ih, w_hh, bias, bias], theirs[n_in:], dtype)


OPTIONS = [
    {"return_sequences": True},
    {"return_state": True},
    {"go_backwards": True, "return_sequences": True, "return_state": True},
    {"use_bias": False, "return_sequences": True},
]
OPTION_IDS = ["sequences", "state", "backwards", "no_bias"]


def _loss_and_grads(layer, x, initial):
    out = layer(x, initial_state=initial)
    outputs = list(out) if isinstance(out, tuple) else [out]
    torch.manual_seed(5)
    loss = sum((torch.randn_like(t) * t).sum() for t in outputs)
    inputs = [x] + ([] if initial is None else list(initial))
    grads = torch.autograd.grad(loss, inputs + list(layer.parameters()))
    return [t.detach() for t in outputs] + list(grads)


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
@pytest.mark.parametrize("name", list(ALL_CELLS))
def test_kernel_equals_step_loop_float64(compiled, name, options):
    cls, kw, _, _ = ALL_CELLS[name]
    layer = cls(7, input_size=4, **kw, **options).double()
    _randomize(layer, 3)
    x = torch.randn(6, 8, 4, dtype=torch.float64, requires_grad=True)
    initial = tuple(torch.randn(6, 7, dtype=torch.float64, requires_grad=True) for _ in range(layer.state_count))
    fast = _loss_and_grads(layer, x, initial)
    assert compiled == [name]
    layer._force_loop = True
    reference = _loss_and_grads(layer, x, initial)
    assert len(compiled) == 1
    assert_relative(fast, reference, torch.float64)


@pytest.mark.parametrize("mode", ["sample", "batch"])
@pytest.mark.parametrize("name", list(ALL_CELLS))
def test_recurrent_dropout_equals_masked_step_loop(compiled, name, mode):
    cls, kw, _, _ = ALL_CELLS[name]
    layer = cls(6, recurrent_dropout=0.4, recurrent_dropout_mode=mode, dropout=0.2, return_sequences=True,
                input_size=3, **kw).double().train()  # fmt: skip
    _randomize(layer, 4)
    generator = torch.Generator().manual_seed(0)
    in_mask = (torch.rand(5, 3, generator=generator) > 0.2).double() / 0.8
    shape = (6,) if mode == "batch" else (5, 6)
    rec_mask = (torch.rand(shape, generator=generator) > 0.4).double() / 0.6
    layer._draw_masks = lambda batch, like: (in_mask, rec_mask)
    x = torch.randn(5, 7, 3, dtype=torch.float64, requires_grad=True)
    fast = _loss_and_grads(layer, x, None)
    assert compiled == [name]
    layer._force_loop = True
    assert_relative(fast, _loss_and_grads(layer, x, None), torch.float64)


MASKS = {
    "right_padded": [[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]],
    "left_padded": [[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 1]],
    "holes_and_empty_row": [[1, 0, 1, 1, 0, 1], [0, 0, 0, 0, 0, 0], [0, 1, 0, 1, 1, 0]],
}


@pytest.mark.parametrize("go_backwards", [False, True], ids=["forwards", "backwards"])
@pytest.mark.parametrize("mask_name", list(MASKS))
@pytest.mark.parametrize("name", list(ALL_CELLS))
def test_masked_kernel_equals_masked_step_loop(compiled, name, mask_name, go_backwards):
    cls, kw, _, _ = ALL_CELLS[name]
    layer = cls(5, return_sequences=True, return_state=True, go_backwards=go_backwards, input_size=3, **kw).double()
    _randomize(layer, 8)
    mask = torch.tensor(MASKS[mask_name], dtype=torch.bool)
    x = torch.randn(3, 6, 3, dtype=torch.float64, requires_grad=True)
    initial = tuple(torch.randn(3, 5, dtype=torch.float64, requires_grad=True) for _ in range(layer.state_count))

    def run(x):
        out = layer(x, initial_state=initial, mask=mask)
        torch.manual_seed(5)
        loss = sum((torch.randn_like(t) * t).sum() for t in out)
        return [t.detach() for t in out] + list(torch.autograd.grad(loss, [x, *initial, *layer.parameters()]))

    fast = run(x)
    # what a padded step holds never matters, not even NaN
    x_nan = x.detach().masked_fill(~mask.unsqueeze(-1), float("nan")).requires_grad_()
    assert_relative(run(x_nan), fast, torch.float64)
    assert compiled == [name, name]
    layer._force_loop = True
    assert_relative(fast, run(x), torch.float64)


GRADCHECK_OPTIONS = [
    {},
    {"return_sequences": True, "go_backwards": True},
    {"recurrent_dropout": 0.5, "recurrent_dropout_mode": "sample"},
    {"recurrent_dropout": 0.5, "recurrent_dropout_mode": "batch", "use_bias": False},
]


@pytest.mark.parametrize("options", GRADCHECK_OPTIONS, ids=["last", "backwards", "sample", "batch_no_bias"])
@pytest.mark.parametrize("name", list(ALL_CELLS))
def test_gradcheck_through_the_kernel(compiled, name, options):
    cls, kw, _, _ = ALL_CELLS[name]
    layer = cls(3, input_size=2, **kw, **options).double().train()
    _randomize(layer, 6)
    if "recurrent_dropout" in options:
        shape = (3,) if options["recurrent_dropout_mode"] == "batch" else (2, 3)
        mask = torch.tensor([2.0, 0.0, 2.0, 0.0, 2.0, 2.0][: int(np.prod(shape))], dtype=torch.float64).reshape(shape)
        layer._draw_masks = lambda batch, like: (None, mask)
    params = dict(layer.named_parameters())
    x = torch.randn(2, 4, 2, dtype=torch.float64, requires_grad=True)
    h0 = tuple(0.5 * torch.randn(2, 3, dtype=torch.float64) for _ in range(layer.state_count))

    def run(x, *values):
        states, weights = values[: len(h0)], values[len(h0) :]
        return torch.func.functional_call(layer, dict(zip(params, weights)), (x, states))

    h0 = tuple(h.requires_grad_() for h in h0)
    weights = [p.detach().requires_grad_() for p in params.values()]
    assert torch.autograd.gradcheck(run, (x, *h0, *weights))
    assert compiled and set(compiled) == {name}


@pytest.mark.parametrize("name", ["gru", "lstm"])
def test_stateful_halves_and_bidirectional_run_the_kernel(compiled, name):
    cls, kw, _, _ = ALL_CELLS[name]
    whole = cls(5, return_sequences=True, input_size=3, **kw).double()
    halves = cls(5, return_sequences=True, stateful=True, input_size=3, **kw).double()
    halves.load_state_dict(whole.state_dict())
    x = torch.randn(4, 10, 3, dtype=torch.float64)
    y = torch.cat([halves(x[:, :6]), halves(x[:, 6:])], 1)
    assert_relative([y], [whole(x)], torch.float64)
    both = Bidirectional(cls(4, return_sequences=True, input_size=3, **kw)).double()
    y = both(x)
    with use_kernel("torch"):
        expected = both(x)
    assert_relative([y], [expected], torch.float64)
    assert compiled == [name] * 5  # two halves, the whole, then forward and backward layers


def test_two_threads_equal_one_thread(compiled):
    layer = GRU(12, return_sequences=True, input_size=4, recurrent_dropout=0.3).double().train()
    _randomize(layer, 7)
    # 150 rows: two chunks of 75 (a chunk has at least 64 rows)
    mask = (torch.rand(150, 12, generator=torch.Generator().manual_seed(1)) > 0.3).double() / 0.7
    layer._draw_masks = lambda batch, like: (None, mask)
    x = torch.randn(150, 6, 4, dtype=torch.float64, requires_grad=True)
    one = _loss_and_grads(layer, x, None)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        two = _loss_and_grads(layer, x, None)
    finally:
        torch.set_num_threads(threads)
    # the rows are split between the threads: only the weight gradients' summation order differs
    assert_relative(two, one, torch.float64)
    assert len(compiled) == 2


def test_float32_training_step_equals_torch_path():
    torch.manual_seed(0)
    layer = GRU(32, recurrent_dropout=0.25, input_size=14).train()
    reference = GRU(32, recurrent_dropout=0.25, input_size=14).train()
    reference.load_state_dict(layer.state_dict())
    mask = (torch.rand(64, 32) > 0.25).float() / 0.75
    layer._draw_masks = reference._draw_masks = lambda batch, like: (None, mask)
    x = torch.randn(64, 120, 14)
    with use_kernel("compiled"):
        ours = _loss_and_grads(layer, x.requires_grad_(), None)
    with use_kernel("torch"):
        theirs = _loss_and_grads(reference, x, None)
    assert_relative(ours, theirs, torch.float32)


# --- the switch -------------------------------------------------------------------------------
def test_use_kernel_plain_call_and_context_manager(monkeypatch):
    monkeypatch.setattr(kernel, "_mode", None)
    monkeypatch.delenv("RNNKIT_KERNEL", raising=False)
    assert kernel.kernel_mode() == "auto"
    monkeypatch.setenv("RNNKIT_KERNEL", "torch")
    assert kernel.kernel_mode() == "torch"
    with use_kernel("compiled"):
        assert kernel.kernel_mode() == "compiled"
        with use_kernel("auto"):
            assert kernel.kernel_mode() == "auto"
        assert kernel.kernel_mode() == "compiled"
    assert kernel.kernel_mode() == "torch"
    use_kernel("auto")  # a plain call holds from then on, over the environment variable
    assert kernel.kernel_mode() == "auto"


def test_torch_mode_runs_no_kernel(monkeypatch):
    calls = []
    monkeypatch.setattr(kernel, "run", lambda *a: calls.append(a) or pytest.fail("kernel ran in torch mode"))
    with use_kernel("torch"):
        GRU(4, input_size=3)(torch.randn(2, 5, 3))
    monkeypatch.setenv("RNNKIT_KERNEL", "torch")
    monkeypatch.setattr(kernel, "_mode", None)
    LSTM(4, input_size=3)(torch.randn(2, 5, 3))
    assert calls == []


def test_invalid_mode():
    with pytest.raises(ValueError, match=r"use_kernel mode must be one of \['auto', 'compiled', 'torch'\], got 'fast'"):
        use_kernel("fast")


def test_invalid_environment_variable(monkeypatch):
    monkeypatch.setattr(kernel, "_mode", None)
    monkeypatch.setenv("RNNKIT_KERNEL", "on")
    with pytest.raises(ValueError, match=r"RNNKIT_KERNEL must be one of \['auto', 'compiled', 'torch'\], got 'on'"):
        GRU(4, input_size=3)(torch.randn(2, 5, 3))


def test_failed_build_falls_back_with_one_notice(monkeypatch, capsys):
    def broken_build():
        raise RuntimeError("Error building extension 'rnnkit_kernel'")

    monkeypatch.setattr(kernel, "_extension", None)
    monkeypatch.setattr(kernel, "_failure", None)
    monkeypatch.setattr(kernel, "_build", broken_build)
    layer = GRU(4, return_sequences=True, input_size=3)
    x = torch.randn(2, 5, 3)
    with use_kernel("auto"):
        y = layer(x)
        layer(x)
    with use_kernel("torch"):
        expected = layer(x)
    torch.testing.assert_close(y, expected, rtol=0, atol=0)
    err = capsys.readouterr().err
    assert err == (
        "rnnkit: the compiled CPU kernel is not available (Error building extension 'rnnkit_kernel'); "
        "using PyTorch's operators\n"
    )
    with (
        use_kernel("compiled"),
        pytest.raises(RuntimeError, match=r"use_kernel\('compiled'\): the CPU kernel could not be built"),
    ):
        layer(x)


def test_cold_build_prints_a_notice_and_uses_the_named_cache(monkeypatch, tmp_path, capsys):
    from torch.utils import cpp_extension

    loads = []
    monkeypatch.setattr(cpp_extension, "_get_build_directory", lambda name, verbose: str(tmp_path / name))
    monkeypatch.setattr(cpp_extension, "load", lambda name, sources, **kw: loads.append((name, kw)) or "module")
    assert kernel._build() == "module"
    name, options = loads[0]
    assert name == kernel.build_name() and "-fno-math-errno" in options["extra_cflags"]
    assert (
        capsys.readouterr().err
        == f"rnnkit: compiling the CPU kernel once (about half a minute), cached in {tmp_path}\n"
    )
    # a build under way elsewhere (its lock file): wait for it through cpp_extension, no notice
    (tmp_path / name).mkdir()
    (tmp_path / name / f"{name}.so").write_bytes(b"")
    (tmp_path / name / "lock").write_bytes(b"")
    assert kernel._build() == "module" and len(loads) == 2
    assert capsys.readouterr().err == ""


def test_finished_build_is_imported_without_ninja(compiled, monkeypatch, capsys):
    from torch.utils import cpp_extension

    kernel.extension()  # built (or loaded) once
    monkeypatch.setattr(cpp_extension, "load", lambda *a, **kw: pytest.fail("cpp_extension.load called"))
    module = kernel._build()
    assert kernel.load_seconds["warm"] < 5.0
    assert capsys.readouterr().err == ""
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    h0 = torch.zeros(2, 5, dtype=torch.float64)
    w_ih, w_hh = torch.randn(5, 4, dtype=torch.float64), torch.zeros(5, 5, dtype=torch.float64)
    empty = x.new_empty(0)
    H = module.forward(1, False, x, h0, empty, w_ih, w_hh, empty, empty, empty, empty)[0]
    torch.testing.assert_close(H, torch.relu(x @ w_ih.t()), rtol=1e-12, atol=1e-12)  # relu RNN, no recurrence


# level: (vector bytes, registers, rows of a 3-vector tile, of a 2-vector tile, A copied broadcast)
X86_BUILDS = {
    "generic": (16, 16, 3, 6, 1),  # no FMA: a register for the product's temporary, 3 × 3 tiles
    "sse4": (16, 16, 3, 6, 1),
    "avx": (32, 16, 4, 6, 0),
    "avx2": (32, 16, 4, 6, 0),
    "avx512": (64, 32, 8, 8, 0),
}


@pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64") or kernel.isa_level() not in X86_BUILDS,
    reason="the x86 levels' builds (not native, whose build follows the CPU)",
)
def test_the_build_has_its_levels_vectors_and_tiles(compiled):
    info = kernel.extension().info()
    got = (info["vector_bytes"], info["vector_registers"], info["tile_rows_3"], info["tile_rows_2"],
           info["a_broadcast_copy"])  # fmt: skip
    want = X86_BUILDS[kernel.isa_level()]
    if kernel.isa_level() == "avx" and "-mfma" not in kernel.isa_flags():  # AVX without FMA (Sandy Bridge)
        want = (32, 16, 3, 6, 0)
    assert got == want


def test_build_name_follows_the_cpu_and_the_source(monkeypatch):
    name = kernel.build_name()
    assert name.startswith("rnnkit_kernel_") and name == kernel.build_name()
    monkeypatch.setattr(kernel, "_cpu_key", lambda: "vendor_id: OtherCPU\nflags: sse2")
    assert kernel.build_name() != name


@pytest.mark.parametrize("name", list(ALL_CELLS))
def test_gradcheck_with_a_mask(compiled, name):
    cls, kw, _, _ = ALL_CELLS[name]
    layer = cls(3, return_sequences=True, go_backwards=True, input_size=2, **kw).double()
    _randomize(layer, 9)
    mask = torch.tensor([[1, 0, 1, 1], [0, 0, 1, 0]], dtype=torch.bool)
    params = dict(layer.named_parameters())
    x = torch.randn(2, 4, 2, dtype=torch.float64, requires_grad=True)

    def run(x, *weights):
        return torch.func.functional_call(layer, dict(zip(params, weights)), (x,), {"mask": mask})

    assert torch.autograd.gradcheck(run, (x, *[p.detach().requires_grad_() for p in params.values()]))
    assert compiled and set(compiled) == {name}


def test_no_compiler_loads_a_cached_build_or_says_why(compiled, monkeypatch, tmp_path):
    from torch.utils import cpp_extension

    kernel.extension()  # a finished build exists
    monkeypatch.setattr(kernel, "_compiler", lambda: None)
    assert kernel._build().forward is not None  # the cached build needs no compiler
    monkeypatch.setattr(cpp_extension, "_get_build_directory", lambda name, verbose: str(tmp_path / name))
    with pytest.raises(RuntimeError, match=r"^no C\+\+ compiler \(.*\) on PATH$"):
        kernel._build()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("go_backwards", [False, True], ids=["forwards", "backwards"])
@pytest.mark.parametrize("name", list(ALL_CELLS))
def test_inference_keeps_two_steps_and_equals_the_training_forward_bit_for_bit(compiled, name, go_backwards, dtype):
    """Without a gradient the kernel keeps the backward's values for two steps only (a ring): the
    outputs and final states equal those of the forward that keeps every step, to the bit, with
    padding too (an LSTM's padded step carries its cell state through the ring)."""
    layer_cls, options, _, _ = ALL_CELLS[name]
    layer = layer_cls(6, return_sequences=True, return_state=True, go_backwards=go_backwards, input_size=4, **options)
    layer = layer.to(dtype)
    _randomize(layer, 3)
    generator = torch.Generator().manual_seed(4)
    for steps in (1, 2, 5):
        x = torch.randn(5, steps, 4, generator=generator, dtype=dtype)
        for mask in (None, torch.rand(5, steps, generator=generator) > 0.3):
            training = layer(x, mask=mask)
            with torch.no_grad():
                inference = layer(x, mask=mask)
            for a, b in zip(training, inference):
                assert torch.equal(a.detach(), b)
    assert len(compiled) == 2 * 3 * 2
