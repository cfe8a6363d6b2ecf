"""ONNX export: a trained model as a standard ONNX graph with dynamic batch and sequence length.

Each layer is written as ONNX's own operators rather than traced: ``SimpleRNN``, ``LSTM`` and
``GRU`` become ONNX's ``RNN``, ``LSTM`` and ``GRU`` nodes (whose gate equations are Keras's),
``Dense`` a ``MatMul`` + ``Add``, the baselines a few slices. So a step-loop layer (GRU with
``reset_after=False``, non-standard activations) exports like a fused one, and the time axis
stays symbolic: the graph reads any window length, not only the one it was traced with.

Gate orders: Keras's GRU gates z, r, h are ONNX's z, r, h; Keras's LSTM gates i, f, c, o
become ONNX's i, o, f, c. ONNX's ``B`` holds the input bias and the recurrent bias
(``Wb``, ``Rb``); Keras's single bias is ``Wb`` with ``Rb = 0``, and GRU ``reset_after=True``
(``linear_before_reset = 1``) has both.

What the graph computes is inference: dropout is the identity and a stateful layer starts
every call from zeros (the carried state of a training run is not part of the model).
A model that flattens the window (``Flatten``, ``LinearBaseline``, the naive dense network)
reads a fixed sequence length, the one it was built for; batch stays dynamic.

Example::

    import rnnkit as rk
    model = rk.Sequential(rk.layers.GRU(32), rk.layers.Dense(1), input_shape=(120, 14))
    rk.export.onnx(model, "model.onnx")          # input "x" (batch, time, 14), output "y"
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import torch
from torch import nn

from rnnkit import baselines as bl
from rnnkit.errors import RnnkitError
from rnnkit.layers import GRU, LSTM, Bidirectional, Dense, Dropout, Flatten, SimpleRNN
from rnnkit.layers.recurrent import RNN
from rnnkit.baselines import (
    MultiStepResidualTarget,
    RepeatLastDay,
    RepeatLastPeriod,
    StepMean,
    StepPersistence,
    StepResidualTarget,
)
from rnnkit.models import Sequential
from rnnkit.models.ensemble import Ensemble

OPSET = 17
INT64_MAX = np.iinfo(np.int64).max


def _onnx():
    try:
        import onnx
    except ImportError:  # an optional extra: the library runs without it
        raise RnnkitError("ONNX export needs the 'onnx' package: pip install 'rnnkit[onnx]'") from None
    return onnx


class Graph:
    """The nodes and weights of an ONNX graph under construction; names are made unique here."""

    def __init__(self) -> None:
        self.onnx = _onnx()
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.fixed_time: int | None = None  # set by a layer that flattens the window
        self.steps: int | None = None  # the sequence length the model was built for, where it says
        self._count = 0

    def name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def const(self, value: Any, stem: str = "const", dtype: Any = np.float32) -> str:
        """A weight or constant as an initializer; returns its name."""
        array = np.asarray(value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value, dtype=dtype)
        name = self.name(stem)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def ints(self, values: list[int], stem: str = "ints") -> str:
        return self.const(values, stem, np.int64)

    def op(self, op_type: str, inputs: list[str], outputs: int = 1, **attributes: Any) -> Any:
        """Append a node; returns its output name (a list of names when ``outputs`` > 1)."""
        names = [self.name(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, names, name=self.name(op_type), **attributes))
        return names[0] if outputs == 1 else names

    def time_slice(self, x: str, start: int, end: int, step: int = 1) -> str:
        """``x[:, start:end:step]`` on the time axis (axis 1)."""
        return self.op("Slice", [x, self.ints([start]), self.ints([end]), self.ints([1]), self.ints([step])])

    def reverse_time(self, x: str) -> str:
        return self.time_slice(x, -1, -INT64_MAX, -1)

    def take(self, x: str, indices: list[int], axis: int) -> str:
        return self.op("Gather", [x, self.ints(indices)], axis=axis)


Converter = Callable[[Graph, nn.Module, str], str]
CONVERTERS: dict[type, Converter] = {}
M = TypeVar("M", bound=nn.Module)


def converts(*classes: type[M]) -> Callable[[Callable[[Graph, M, str], str]], Callable[[Graph, M, str], str]]:
    """Register a function ``(graph, module, input name) -> output name`` for ``classes``."""

    def register(fn: Callable[[Graph, M, str], str]) -> Callable[[Graph, M, str], str]:
        for cls in classes:
            # convert() calls it only for instances of cls, which fn takes: a map keyed by class
            # cannot say that each value takes its own key's instances
            CONVERTERS[cls] = cast(Converter, fn)
        return fn

    return register


def convert(graph: Graph, module: nn.Module, x: str) -> str:
    """The ONNX output name of ``module`` applied to ``x``; the most specific registered class wins."""
    for cls in type(module).__mro__:
        if cls in CONVERTERS:
            return CONVERTERS[cls](graph, module, x)
    raise RnnkitError(
        f"cannot export a {type(module).__name__} to ONNX: no converter for it "
        f"(supported: {', '.join(sorted(c.__name__ for c in CONVERTERS))})"
    )


# --- activations -----------------------------------------------------------------------------------

# Keras's names as ONNX recurrent-operator activations: (name, alpha, beta) where needed.
RNN_ACTIVATIONS: dict[str, tuple[str, float | None, float | None]] = {
    "tanh": ("Tanh", None, None),
    "sigmoid": ("Sigmoid", None, None),
    "relu": ("Relu", None, None),
    "linear": ("Affine", 1.0, 0.0),
    "hard_sigmoid": ("HardSigmoid", 1.0 / 6.0, 0.5),  # Keras 3: relu6(x + 3) / 6 = clip(x / 6 + 1/2, 0, 1)
    "elu": ("Elu", 1.0, None),
    "softsign": ("Softsign", None, None),
    "softplus": ("Softplus", None, None),
}


def _activation(graph: Graph, name: str | None, x: str) -> str:
    """An elementwise activation by Keras name (Dense's)."""
    if name is None or name == "linear":
        return x
    simple = {
        "tanh": "Tanh",
        "sigmoid": "Sigmoid",
        "relu": "Relu",
        "elu": "Elu",
        "selu": "Selu",
        "softsign": "Softsign",
        "softplus": "Softplus",
    }
    if name in simple:
        return graph.op(simple[name], [x])
    if name == "hard_sigmoid":
        return graph.op("HardSigmoid", [x], alpha=1.0 / 6.0, beta=0.5)
    if name in ("silu", "swish"):
        return graph.op("Mul", [x, graph.op("Sigmoid", [x])])
    if name == "gelu":  # exact gelu: x · Φ(x) = x · (1 + erf(x / √2)) / 2
        half = graph.op("Mul", [x, graph.const(0.5)])
        erf = graph.op("Erf", [graph.op("Div", [x, graph.const(np.sqrt(2.0))])])
        return graph.op("Mul", [half, graph.op("Add", [erf, graph.const(1.0)])])
    raise RnnkitError(f"cannot export the activation {name!r} to ONNX")


def _rnn_activations(layer: RNN) -> dict[str, list[Any]]:
    """The ``activations`` (and alphas/betas) attributes of an ONNX recurrent node for ``layer``."""
    names = {
        SimpleRNN: [layer.activation],
        GRU: [getattr(layer, "recurrent_activation", "sigmoid"), layer.activation],
        LSTM: [getattr(layer, "recurrent_activation", "sigmoid"), layer.activation, layer.activation],
    }
    wanted = next(v for k, v in names.items() if isinstance(layer, k))
    for n in wanted:
        if n not in RNN_ACTIVATIONS:
            raise RnnkitError(
                f"cannot export {type(layer).__name__} with activation {n!r} to ONNX: its recurrent "
                f"operators take {sorted(RNN_ACTIVATIONS)}"
            )
    acts = [RNN_ACTIVATIONS[n] for n in wanted]
    attributes: dict[str, list[Any]] = {"activations": [a[0] for a in acts]}
    if any(a[1] is not None for a in acts):
        # ONNX reads alphas/betas in order, for the activations that take them only
        attributes["activation_alpha"] = [float(a[1]) for a in acts if a[1] is not None]
        betas = [float(a[2]) for a in acts if a[1] is not None and a[2] is not None]
        if betas:
            attributes["activation_beta"] = betas
    return attributes


# --- layers ----------------------------------------------------------------------------------------


def _onnx_gates(array: np.ndarray, kind: type, n: int) -> np.ndarray:
    """Keras's gate blocks along the last axis (i, f, c, o for LSTM) in ONNX's order (i, o, f, c)."""
    if kind is LSTM:
        i, f, c, o = (array[..., k * n : (k + 1) * n] for k in range(4))
        return np.concatenate([i, o, f, c], axis=-1)
    return array  # SimpleRNN: one block; GRU: z, r, h in both


@converts(SimpleRNN, LSTM, GRU)
def _recurrent(graph: Graph, layer: RNN, x: str) -> str:
    if not layer.built:
        raise RnnkitError(f"cannot export an unbuilt {type(layer).__name__}: call the model on an input first")
    if layer.return_state:
        raise RnnkitError(f"cannot export {type(layer).__name__} with return_state=True inside a model")
    kind = next(k for k in (SimpleRNN, LSTM, GRU) if isinstance(layer, k))
    n = layer.units
    weights = layer.get_weights()
    kernel, recurrent = (_onnx_gates(w, kind, n) for w in weights[:2])  # (m, G·n), (n, G·n)
    inputs = [None, graph.const(kernel.T[None], "W"), graph.const(recurrent.T[None], "R")]
    if layer.use_bias:
        bias = np.asarray(weights[2])
        # (2, G·n) for GRU reset_after (input, recurrent), else one bias: the recurrent one is zero
        wb, rb = (bias[0], bias[1]) if bias.ndim == 2 else (bias, np.zeros_like(bias))
        inputs.append(graph.const(np.concatenate([_onnx_gates(wb, kind, n), _onnx_gates(rb, kind, n)])[None], "B"))
    if layer.go_backwards:
        x = graph.reverse_time(x)  # Keras: process the reversed input; outputs stay in processing order
    inputs[0] = graph.op("Transpose", [x], perm=[1, 0, 2])  # (time, batch, m): ONNX's layout 0
    attributes: dict[str, Any] = {"hidden_size": n, **_rnn_activations(layer)}
    if isinstance(layer, GRU):
        attributes["linear_before_reset"] = int(layer.reset_after)
    op_type = {SimpleRNN: "RNN", LSTM: "LSTM", GRU: "GRU"}[kind]
    y, y_h = graph.op(op_type, inputs, outputs=2, **attributes)  # (time, 1, batch, n), (1, batch, n)
    if layer.return_sequences:
        sequence = graph.op("Squeeze", [y, graph.ints([1])])
        return graph.op("Transpose", [sequence], perm=[1, 0, 2])  # (batch, time, n)
    return graph.op("Squeeze", [y_h, graph.ints([0])])  # (batch, n)


@converts(Bidirectional)
def _bidirectional(graph: Graph, layer: Bidirectional, x: str) -> str:
    if layer.merge_mode is None:
        raise RnnkitError("cannot export Bidirectional with merge_mode=None: a model gives one output")
    y = convert(graph, layer.forward_layer, x)
    y_rev = convert(graph, layer.backward_layer, x)
    if layer.return_sequences:
        y_rev = graph.reverse_time(y_rev)  # back into time order
    if layer.merge_mode == "concat":
        return graph.op("Concat", [y, y_rev], axis=-1)
    if layer.merge_mode == "sum":
        return graph.op("Add", [y, y_rev])
    if layer.merge_mode == "mul":
        return graph.op("Mul", [y, y_rev])
    return graph.op("Mul", [graph.op("Add", [y, y_rev]), graph.const(0.5)])  # ave


@converts(Dense)
def _dense(graph: Graph, layer: Dense, x: str) -> str:
    y = graph.op("MatMul", [x, graph.const(layer.kernel, "kernel")])  # on the last axis: (..., units)
    if layer.bias is not None:
        y = graph.op("Add", [y, graph.const(layer.bias, "bias")])
    return _activation(graph, layer.activation_name, y)


@converts(Dropout, nn.Dropout, nn.Identity)
def _identity(graph: Graph, layer: nn.Module, x: str) -> str:
    return x  # inference


def _fix_time(graph: Graph, steps: int, what: str) -> None:
    if graph.fixed_time not in (None, steps):
        raise RnnkitError(f"{what} reads {steps} steps, another part of the model {graph.fixed_time}")
    graph.fixed_time = steps


@converts(Flatten, nn.Flatten)
def _flatten(graph: Graph, layer: nn.Module, x: str) -> str:
    if graph.steps is None:
        raise RnnkitError(
            "cannot export a model that flattens its window without knowing its sequence length: "
            "build it with input_shape=(sequence_length, features)"
        )
    _fix_time(graph, graph.steps, "Flatten")
    return graph.op("Reshape", [x, graph.ints([0, -1])])  # (batch, time · features)


@converts(nn.Linear)
def _linear(graph: Graph, layer: nn.Linear, x: str) -> str:
    y = graph.op("MatMul", [x, graph.const(layer.weight.T, "weight")])
    return y if layer.bias is None else graph.op("Add", [y, graph.const(layer.bias, "bias")])


@converts(nn.ReLU)
def _relu(graph: Graph, layer: nn.Module, x: str) -> str:
    return graph.op("Relu", [x])


def _in_order(graph: Graph, layers: nn.Sequential | nn.ModuleList, x: str) -> str:
    for layer in layers:
        x = convert(graph, layer, x)
    return x


@converts(Sequential)
def _sequential(graph: Graph, model: Sequential, x: str) -> str:
    return _in_order(graph, model.layers, x)


@converts(nn.Sequential)
def _torch_sequential(graph: Graph, model: nn.Sequential, x: str) -> str:
    return _in_order(graph, model, x)


# --- baselines and target wrappers -----------------------------------------------------------------


@converts(bl.Persistence)
def _persistence(graph: Graph, model: bl.Persistence, x: str) -> str:
    last = graph.time_slice(x, -1, INT64_MAX)  # (batch, 1, features)
    return graph.op("Squeeze", [graph.take(last, model.target_index, 2), graph.ints([1])])  # (batch, targets)


@converts(bl.SeasonalPersistence)
def _seasonal(graph: Graph, model: bl.SeasonalPersistence, x: str) -> str:
    back = model.period - model.horizon  # rows before the last input row
    row = graph.time_slice(x, -1 - back, -back if back else INT64_MAX)
    return graph.op("Squeeze", [graph.take(row, model.target_index, 2), graph.ints([1])])


@converts(bl.MeanBaseline)
def _mean(graph: Graph, model: bl.MeanBaseline, x: str) -> str:
    batch = graph.op("Slice", [graph.op("Shape", [x]), graph.ints([0]), graph.ints([1])])
    shape = graph.op("Concat", [batch, graph.ints([model.value.numel()])], axis=0)
    return graph.op("Expand", [graph.const(model.value, "mean"), shape])  # (batch, outputs)


@converts(bl.LinearBaseline)
def _linear_baseline(graph: Graph, model: bl.LinearBaseline, x: str) -> str:
    _fix_time(graph, model.sequence_length, "LinearBaseline")
    return _linear(graph, model.linear, graph.op("Reshape", [x, graph.ints([0, -1])]))


@converts(RepeatLastPeriod)
def _repeat_last_period(graph: Graph, model: RepeatLastPeriod, x: str) -> str:
    # step k reads input row T − period + (k mod period): negative rows, counted from the end
    rows = [-model.period + k % model.period for k in range(model.target_length)]
    return graph.take(graph.take(x, rows, 1), model.target_index, 2)  # (batch, target_length, targets)


@converts(RepeatLastDay)
def _repeat_last_day(graph: Graph, model: RepeatLastDay, x: str) -> str:
    return graph.time_slice(_repeat_last_period(graph, model.repeat, x), model.horizon - 1, INT64_MAX)


@converts(StepPersistence)
def _step_persistence(graph: Graph, model: StepPersistence, x: str) -> str:
    return graph.take(x, model.target_index, 2)  # (batch, time, targets)


@converts(StepMean)
def _step_mean(graph: Graph, model: StepMean, x: str) -> str:
    batch_time = graph.op("Slice", [graph.op("Shape", [x]), graph.ints([0]), graph.ints([2])])
    shape = graph.op("Concat", [batch_time, graph.ints([model.value.numel()])], axis=0)
    return graph.op("Expand", [graph.const(model.value, "mean"), shape])  # (batch, time, outputs)


@converts(bl.ResidualTarget)
def _residual(graph: Graph, model: bl.ResidualTarget, x: str) -> str:
    # the last input value of the target: (batch, 1, targets)
    last = graph.take(graph.time_slice(x, -1, INT64_MAX), model.target_index, 2)
    return graph.op("Add", [convert(graph, model.model, x), graph.op("Squeeze", [last, graph.ints([1])])])


@converts(MultiStepResidualTarget)
def _multistep_residual(graph: Graph, model: MultiStepResidualTarget, x: str) -> str:
    last = graph.take(graph.time_slice(x, -1, INT64_MAX), model.target_index, 2)  # (batch, 1, targets)
    if len(model.output_shape) == 1:  # (K,): the first target's value, broadcast over the K steps
        last = graph.op("Squeeze", [graph.take(last, [0], 2), graph.ints([2])])  # (batch, 1)
    return graph.op("Add", [convert(graph, model.model, x), last])  # broadcast over the steps


@converts(StepResidualTarget)
def _step_residual(graph: Graph, model: StepResidualTarget, x: str) -> str:
    return graph.op("Add", [convert(graph, model.model, x), graph.take(x, model.target_index, 2)])


@converts(Ensemble)
def _ensemble(graph: Graph, model: Ensemble, x: str) -> str:
    # every member reads the same window; their outputs have one shape: (sum of the members) / M
    total = graph.op("Sum", [convert(graph, member, x) for member in model.members])
    return graph.op("Div", [total, graph.const(np.array(len(model.members), dtype=np.float32), "members")])


# --- the model -------------------------------------------------------------------------------------


def _features(model: nn.Module) -> int | None:
    """The input features the model was built for, when it says."""
    shape = getattr(model, "input_shape", None)
    if shape is not None:
        return int(shape[-1])
    for attr in ("model", "forward_layer"):
        inner = getattr(model, attr, None)
        if isinstance(inner, nn.Module):
            return _features(inner)
    features = getattr(model, "features", None)
    return int(features) if isinstance(features, int) else None


def _steps(model: nn.Module, features: int) -> int | None:
    """The sequence length the model was built for: its ``input_shape``, or a first flatten-then-linear."""
    shape = getattr(model, "input_shape", None)
    if shape is not None and shape[0] is not None:
        return int(shape[0])
    inner = getattr(model, "model", None)
    if isinstance(inner, nn.Module):
        return _steps(inner, features)
    if isinstance(model, nn.Sequential):
        linear = next((m for m in model if isinstance(m, nn.Linear)), None)
        if linear is not None and linear.in_features % features == 0:
            return linear.in_features // features
    return None


def to_model_proto(model: nn.Module, features: int | None = None, *, opset: int = OPSET, doc: str = "") -> Any:
    """The ONNX ``ModelProto`` of ``model``: input ``x`` (batch, time, features) float32, output ``y``.

    Args:
        model: an rnnkit ``Sequential``, a baseline, or a target wrapper around a model.
        features: input features (default None: the model's own ``input_shape``).
        opset: the ONNX opset (default 17).
        doc: the graph's description.
    """
    onnx = _onnx()
    features = features if features is not None else _features(model)
    if features is None:
        raise RnnkitError(f"the {type(model).__name__} does not say its input features: pass features=")
    graph = Graph()
    graph.steps = _steps(model, features)
    y = convert(graph, model, "x")
    graph.nodes.append(onnx.helper.make_node("Identity", [y], ["y"], name="output"))
    time = graph.fixed_time if graph.fixed_time is not None else "time"
    x_info = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", time, features])

    def make(y_info: Any) -> Any:
        body = onnx.helper.make_graph(graph.nodes, "rnnkit", [x_info], [y_info], graph.initializers, doc_string=doc)
        proto = onnx.helper.make_model(
            body, opset_imports=[onnx.helper.make_opsetid("", opset)], producer_name="rnnkit"
        )
        proto.ir_version = min(proto.ir_version, 9)  # what the pinned onnxruntime reads
        return proto

    # the output's shape as ONNX's shape inference finds it (symbolic batch and time carried through)
    inferred = onnx.shape_inference.infer_shapes(
        make(onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None))
    )
    known = {v.name: v for v in inferred.graph.value_info}
    y_info = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    if y in known:
        y_info.type.CopyFrom(known[y].type)
    elif y == "x":
        y_info.type.CopyFrom(x_info.type)
    proto = make(y_info)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def onnx(
    model: nn.Module,
    path: str | Path,
    features: int | None = None,
    *,
    opset: int = OPSET,
    doc: str = "",
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write ``model`` as an ONNX file at ``path``; returns the path.

    The graph has one input ``x`` (batch, time, features) float32, with the batch and (unless
    the model flattens its window) the time axis dynamic, and one output ``y``, the model's
    output in the same (scaled) units. See the module docstring for what is exported.

    Example::

        rk.export.onnx(model, "gru.onnx")
        # onnxruntime.InferenceSession("gru.onnx").run(None, {"x": windows})[0] == model(windows)
    """
    from rnnkit.io import write_bytes_atomic

    proto = to_model_proto(model, features, opset=opset, doc=doc)
    for key, value in (metadata or {}).items():  # the model's metadata_props: what a user needs to feed it
        entry = proto.metadata_props.add()
        entry.key, entry.value = str(key), str(value)
    target = Path(path)
    if target.is_dir():
        raise RnnkitError(f"cannot write the ONNX file: {target} is a folder")
    if not target.parent.is_dir():
        raise RnnkitError(f"cannot write the ONNX file {target}: its folder does not exist")
    try:
        write_bytes_atomic(target, proto.SerializeToString())
    except PermissionError:
        raise RnnkitError(f"cannot write the ONNX file {target}: permission denied") from None
    return target


# --- a run's model ---------------------------------------------------------------------------------


def torch_kernel() -> Any:
    """A context in which rnnkit layers run PyTorch's own kernels (the reference the export matches)."""
    from contextlib import nullcontext

    from rnnkit import layers

    use_kernel = getattr(layers, "use_kernel", None)  # the compiled kernel's switch, where it exists
    return use_kernel("torch") if use_kernel is not None else nullcontext()


def max_difference(model: nn.Module, path: str | Path, x: torch.Tensor) -> float:
    """The largest ``|onnxruntime(x) − model(x)|`` of the exported file ``path`` on windows ``x``."""
    try:
        import onnxruntime
    except ImportError:
        raise RnnkitError("checking an ONNX file needs 'onnxruntime': pip install 'rnnkit[onnx]'") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": x.detach().cpu().numpy().astype(np.float32)})[0]
    model.eval()
    with torch.no_grad(), torch_kernel():
        want = model(x.float()).cpu().numpy()
    if got.shape != want.shape:
        raise RnnkitError(f"the ONNX file gives shape {got.shape}, the model {want.shape}")
    return float(np.abs(got - want).max())


# Task kinds whose models are no window-in, forecast-out graph, and why.
NOT_EXPORTED = {
    "generation": "they generate text one character at a time, each step fed the character sampled from "
    "the step before (a sampling loop around the network, not one graph from a window to an output)",
}
# The columns the loader derives from others (rk.datasets.jena_climate(derived=...)).
DERIVED_COLUMNS = {
    "Wx": "wind",
    "Wy": "wind",
    "max Wx": "wind",
    "max Wy": "wind",
    "Day sin": "time",
    "Day cos": "time",
    "Year sin": "time",
    "Year cos": "time",
}


def run_metadata(name: str, meta: dict[str, Any], scaler: Any) -> dict[str, str]:
    """The ONNX file's ``metadata_props`` for a run's model: columns, scaling, target, horizon, residual."""
    import json

    features = list(meta.get("features") or (scaler.columns if scaler is not None else []))
    windows = meta.get("windows", {})
    out = {
        "rnnkit_model": name,
        "input_columns": json.dumps(features),
        "derived_columns": json.dumps([c for c in features if c in DERIVED_COLUMNS]),
        "target": str(meta.get("target", "")),
        "horizon_rows": str(windows.get("horizon", "")),
        "sequence_length": str(windows.get("sequence_length", "")),
        "sampling_rate": str(windows.get("sampling_rate", "")),
        "residual": json.dumps(bool(windows.get("residual", False))),
    }
    if scaler is not None:
        index = {c: i for i, c in enumerate(scaler.columns)}
        out["scaler_mean"] = json.dumps([float(scaler.mean[index[c]]) for c in features if c in index])
        out["scaler_std"] = json.dumps([float(scaler.std[index[c]]) for c in features if c in index])
    return out


def usage_path(target: Path) -> Path:
    """Where the usage note of the exported file ``target`` lies: beside it, ``MODEL.usage.txt``."""
    return target.with_name(target.stem + ".usage.txt")


def usage_note(file: str, meta: dict[str, str]) -> str:
    """The short note written beside an exported file: how to feed it and read its output."""
    import json

    derived = json.loads(meta["derived_columns"])
    residual = json.loads(meta["residual"])
    target = meta["target"]
    return "\n".join(
        [
            f"{file}: rnnkit model {meta['rnnkit_model']!r} (the same facts are in the file's metadata_props)",
            f"input x: float32 (batch, {meta['sequence_length']}, {len(json.loads(meta['input_columns']))}): "
            f"{meta['sequence_length']} rows, every {meta['sampling_rate']} row(s) of the data, columns in the order "
            "of input_columns",
            "scale each column first: (value - scaler_mean[i]) / scaler_std[i] (the run's scaler.json, training split)",
            (
                f"derived columns, computed from others before scaling: {', '.join(derived)} "
                "(wind vector from wv/wd; sin/cos of the time of day and year)"
            )
            if derived
            else "no derived columns",
            f"output y: {target} at {meta['horizon_rows']} rows after the last input row, scaled: "
            f"y * std({target}) + mean({target})"
            + (
                f" (residual: the network predicts the change from the last input row's {target} and the graph "
                "adds that value back, so y is the value itself)"
                if residual
                else " (the value itself, not a change)"
            ),
            "",
        ]
    )


def export_run(
    run: str | Path, name: str | None = None, path: str | Path | None = None, check: int = 64
) -> tuple[str, Path, float | None]:
    """Export a trained model of a run folder (the best by validation MAE by default) as ONNX.

    Args:
        run: the run folder.
        name: the model (default None: the run's best).
        path: the file (default None: ``RUN/models/<model>/model.onnx``).
        check: default 64: windows of random inputs on which onnxruntime's output is compared
            with the model's (0: no check; also none when onnxruntime is not installed).

    Returns:
        ``(model name, path written, max |difference| or None)``.
    """
    from rnnkit.experiment import load_trained
    from rnnkit.runs import slug

    from rnnkit.io import write_text_atomic
    from rnnkit.runs import load_run

    config, scaler, _ = load_run(run)
    if config.task in NOT_EXPORTED:
        raise RnnkitError(
            f"a {config.task} run's models cannot be exported as ONNX: {NOT_EXPORTED[config.task]}; "
            "export covers the window models (a window of rows in, a forecast out)"
        )
    name, model, description = load_trained(run, name)
    shape = description.get("metadata", {}).get("input_shape") or getattr(model, "input_shape", None)
    if not shape:
        raise RnnkitError(f"the model {name!r} of {run} does not record its input shape")
    target = Path(path) if path is not None else Path(run) / "models" / slug(name) / "model.onnx"
    meta = run_metadata(name, description.get("metadata", {}), scaler)
    onnx(model, target, int(shape[-1]), doc=f"rnnkit model {name!r} of the run {Path(run).name}", metadata=meta)
    write_text_atomic(usage_path(target), usage_note(target.name, meta))
    difference = None
    if check:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return name, target, None
        generator = torch.Generator().manual_seed(0)
        difference = max_difference(model, target, torch.randn(check, *shape, generator=generator))
    return name, target, difference
