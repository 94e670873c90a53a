"""Estimator networks of the two sound-matching papers: a sound's log-mel spectrogram in, parameters out.

* ``cnn`` -- :class:`CNNEstimator`, paper 1 (Combes et al., JAES 2025, Sec. 8.1: "the CNN-based architecture
  from [18]", InverSynth II); layers from the official ``src/ssm/estimator_network.py`` (pcmbs/synth-proxy).
  Outputs the logit vector of a :class:`~synthproxy.nn.heads.PresetHead` (num/bin/cat parameters of a
  real synth).
* ``gru`` -- :class:`GRUEstimator`, paper 2 (Masuda & Saito, TASLP 2023, Sec. III-B and V-C); layers from
  the official ``diffsynth/estimator.py::MelEstimator`` and ``configs/model/default.yaml``
  (hyakuchiki/SSSSM-DDSP). Static parameters from the last frame, dynamic ones per frame, all in [0, 1].
* ``conv2d`` -- :class:`Conv2DEstimator`, paper 2's Conv2D baseline (Sec. V-C, "following the architecture of
  previous work [14]"): static parameters only, in [0, 1]. Its code is in neither official repository
  (SSSSM-DDSP, diffsynth), so the layer sizes are ours: see the class.

Feature extraction (STFT, mel, log, min-max scaling) is done by the caller (``synthproxy.audio.features``):
every estimator takes a ``(B, n_mels, frames)`` (or ``(B, 1, n_mels, frames)``) log-mel tensor.

:func:`build_estimator` builds one by name with validated keyword arguments, like
:func:`synthproxy.nn.factory.build_encoder`; :func:`register_estimator` adds a name.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from synthproxy.errors import ConfigError
from synthproxy.nn.heads import PresetHead
from synthproxy.nn.stable import StableBatchNorm1d, StableBatchNorm2d, StableConv1d, StableConv2d, StableLinear
from synthproxy.synths.layout import PresetLayout

__all__ = [
    "ESTIMATORS",
    "REQUIRED",
    "CNNEstimator",
    "Conv2DEstimator",
    "FrameEstimate",
    "GRUEstimator",
    "build_estimator",
    "estimator_arguments",
    "register_estimator",
]


def _positive(**values: Any) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"estimator argument {name} must be a positive integer, got {value!r}")


def _int_tuple(name: str, values: Any, length: int | None = None) -> tuple[int, ...]:
    """A sequence of positive ints (YAML gives lists), optionally of a given length."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ConfigError(f"estimator argument {name} must be a list of positive integers, got {values!r}")
    out = tuple(values)
    for i, v in enumerate(out):
        _positive(**{f"{name}[{i}]": v})
    if not out:
        raise ConfigError(f"estimator argument {name} must not be empty")
    if length is not None and len(out) != length:
        raise ConfigError(f"estimator argument {name} needs {length} entries (one per layer), got {len(out)}")
    return out


def _pairs(name: str, values: Any, length: int) -> tuple[tuple[int, int], ...]:
    """``length`` (freq, time) pairs; a bare int stands for a square pair."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) != length:
        raise ConfigError(f"estimator argument {name} needs {length} (freq, time) pairs, got {values!r}")
    out = []
    for i, v in enumerate(values):
        pair = (v, v) if isinstance(v, int) else v
        out.append(_int_tuple(f"{name}[{i}]", pair, 2))
    return tuple((a, b) for a, b in out)


def _as_image(mel: torch.Tensor) -> torch.Tensor:
    """``(B, n_mels, frames)`` or ``(B, 1, n_mels, frames)`` -> ``(B, 1, n_mels, frames)`` (a view, no copy)."""
    if mel.ndim == 3:
        return mel.unsqueeze(1)
    if mel.ndim == 4 and mel.shape[1] == 1:
        return mel
    raise ValueError(f"expected a log-mel batch (B, n_mels, frames) or (B, 1, n_mels, frames), got {tuple(mel.shape)}")


def _conv_out(length: int, kernel: int, stride: int, padding: int) -> int:
    return (length + 2 * padding - kernel) // stride + 1


# ----------------------------------------------------------------------------------------------------
# Paper 1
# ----------------------------------------------------------------------------------------------------
class CNNEstimator(nn.Module):
    """Paper 1's estimator: 2-D CNN over the log-mel, global average pooling, one logit vector.

    Layers (official ``EstimatorNet``, adapted from InverSynth II):

    * 7 blocks ``Conv2d -> LeakyReLU(0.1) [-> BatchNorm2d]`` with channels 1 -> 8 -> 16 -> 32 -> 64 -> 128 -> 256
      -> 512; the first conv is 5x5 / stride 2 / padding 2 and has no BatchNorm, the others are 4x4 / 2 / 2
      with BatchNorm *after* the activation (the official order); convs have biases;
    * a 1x1 conv 512 -> 2048 + LeakyReLU(0.1) (features mixer), global average pooling over (freq, time);
    * ``Dropout(0.3) -> Linear(2048, n_logits) -> BatchNorm1d(n_logits)``.

    Initialisation as the official code: Kaiming-normal weights (fan-in, leaky_relu gain with ``a = 0.1``)
    for every conv and linear layer, PyTorch's default (uniform) biases, BatchNorm weights 1 and biases 0.
    For Dexed (141 logits: 92 num + 32 + 5 + 6 x 2 category logits, the width of the one-hot preset encoding,
    which reproduces the official encoders' parameter counts) the model has 4,138,567 parameters at the default
    sizes, the count of the official layer list worked out by hand.

    Input: log-mel ``(B, 1, 128, frames)`` or ``(B, 128, frames)``, min-max scaled to [-1, 1] with the train
    split's scalar statistics (official: FFT 1024, hop 512, at 32 kHz); any size works (global pooling).
    Output: logits ``(B, head.n_logits)``; decode them with ``self.head`` (:class:`PresetHead`). The output
    BatchNorm1d needs ``B > 1`` in training mode.

    Args:
        layout: the synth's preset layout (sets the output size).
        channels: output channels of the 7 conv blocks (their count sets the depth).
        first_kernel, kernel, stride, padding: conv geometry (first block / the others share stride, padding).
        mixer_channels: channels of the 1x1 features mixer.
        dropout: dropout before the output layer.
        negative_slope: LeakyReLU slope (also the ``a`` of the Kaiming init).
    """

    def __init__(
        self,
        layout: PresetLayout,
        *,
        channels: Sequence[int] = (8, 16, 32, 64, 128, 256, 512),
        first_kernel: int = 5,
        kernel: int = 4,
        stride: int = 2,
        padding: int = 2,
        mixer_channels: int = 2048,
        dropout: float = 0.3,
        negative_slope: float = 0.1,
    ) -> None:
        super().__init__()
        if not isinstance(layout, PresetLayout):
            raise ConfigError(f"CNNEstimator needs a PresetLayout, got {type(layout).__name__}")
        chans = _int_tuple("channels", channels)
        _positive(first_kernel=first_kernel, kernel=kernel, stride=stride, mixer_channels=mixer_channels)
        if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            raise ConfigError(f"estimator argument padding must be a non-negative integer, got {padding!r}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"estimator argument dropout must be in [0, 1), got {dropout!r}")
        if not negative_slope >= 0.0:
            raise ConfigError(f"estimator argument negative_slope must be >= 0, got {negative_slope!r}")
        self.head = PresetHead(layout)
        self.out_dim = self.head.n_logits
        self.negative_slope = float(negative_slope)

        blocks: list[nn.Module] = []
        c_in = 1
        for i, c_out in enumerate(chans):
            k = first_kernel if i == 0 else kernel
            blocks += [StableConv2d(c_in, c_out, k, stride=stride, padding=padding), nn.LeakyReLU(negative_slope)]
            if i > 0:
                blocks.append(StableBatchNorm2d(c_out))
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        self.mixer = nn.Sequential(StableConv2d(c_in, mixer_channels, 1), nn.LeakyReLU(negative_slope))
        self.output = nn.Sequential(
            nn.Dropout(dropout), StableLinear(mixer_channels, self.out_dim), StableBatchNorm1d(self.out_dim)
        )
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, a=self.negative_slope, mode="fan_in", nonlinearity="leaky_relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """``(B, [1,] n_mels, frames)`` log-mel -> ``(B, n_logits)`` logits."""
        x = self.mixer(self.features(_as_image(mel)))
        return self.output(x.mean(dim=(2, 3)))


# ----------------------------------------------------------------------------------------------------
# Paper 2
# ----------------------------------------------------------------------------------------------------
class FrameEstimate(NamedTuple):
    """Output of :class:`GRUEstimator`: ``static (B, n_static)`` and ``dynamic (B, frames, n_dynamic)``, in [0, 1]."""

    static: torch.Tensor
    dynamic: torch.Tensor


class GRUEstimator(nn.Module):
    """Paper 2's estimator: per-frame 1-D convolutions over frequency, a GRU over time, a sigmoid output.

    Masuda & Saito Sec. III-B / V-C and the official ``MelEstimator`` (``configs/model/default.yaml``):

    1. the log-mel ``(B, n_mels, frames)`` (official: 128 bands, FFT 1024, hop 256, ``log(mel + 1e-3)`` of the
       magnitude mel at 16 kHz) is normalised by ``BatchNorm2d(1, affine=False)`` over the whole spectrogram
       (official ``Normalize2d('batch')``; ``input_norm=False`` drops it);
    2. every frame ``(1, n_mels)`` goes through ``len(strides)`` blocks ``Conv1d(kernel, stride, padding =
       kernel // 2) -> BatchNorm1d -> ReLU`` with ``channels`` channels (official 3 x (64, 7, 2): 128 -> 64 ->
       32 -> 16 bins), flattened channel-major to ``channels * bins`` features (1024);
    3. a GRU (``hidden_size`` 1024, 1 layer, zero initial state) over the frames;
    4. ``Linear(hidden, n_static + n_dynamic) -> sigmoid`` at every frame. The first ``n_static`` outputs of
       the LAST frame are the static parameters, the other ``n_dynamic`` outputs of every frame the dynamic
       ones (the caller resamples them to the synth's control rate).

    PyTorch's default initialisation, as the official code. Paper sizes, FX-Env (25 static values here):
    6,381,593 parameters; every size is an argument so that CPU configs can scale it down.

    Args:
        n_static: number of static (one per sound) parameters.
        n_dynamic: number of dynamic (per frame) parameters.
        n_mels: mel bands of the input.
        channels, kernel_size, strides: the per-frame conv stack (one stride per layer).
        hidden_size, num_layers, bidirectional, dropout: the GRU (dropout between stacked layers only).
        input_norm: apply the input BatchNorm.
    """

    def __init__(
        self,
        n_static: int,
        n_dynamic: int = 0,
        *,
        n_mels: int = 128,
        channels: int = 64,
        kernel_size: int = 7,
        strides: Sequence[int] = (2, 2, 2),
        hidden_size: int = 1024,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        input_norm: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (("n_static", n_static), ("n_dynamic", n_dynamic)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"estimator argument {name} must be a non-negative integer, got {value!r}")
        if n_static + n_dynamic < 1:
            raise ConfigError("GRUEstimator needs at least one static or dynamic parameter")
        _positive(
            n_mels=n_mels, channels=channels, kernel_size=kernel_size, hidden_size=hidden_size, num_layers=num_layers
        )
        stride_tuple = _int_tuple("strides", strides)
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"estimator argument dropout must be in [0, 1), got {dropout!r}")
        self.n_static, self.n_dynamic, self.n_mels = n_static, n_dynamic, n_mels

        self.input_norm = StableBatchNorm2d(1, affine=False) if input_norm else None
        blocks, bins, c_in = [], n_mels, 1
        for s in stride_tuple:
            pad = kernel_size // 2
            blocks.append(
                nn.Sequential(
                    StableConv1d(c_in, channels, kernel_size, stride=s, padding=pad), StableBatchNorm1d(channels),
                    nn.ReLU(),
                )
            )
            bins, c_in = _conv_out(bins, kernel_size, s, pad), channels
            if bins < 1:
                raise ConfigError(f"the frame conv stack reduces {n_mels} mel bins to nothing; use fewer strides")
        self.convs = nn.Sequential(*blocks)
        self.frame_features = channels * bins
        self.gru = nn.GRU(
            self.frame_features,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.output = StableLinear(hidden_size * (2 if bidirectional else 1), n_static + n_dynamic)

    def forward(self, mel: torch.Tensor) -> FrameEstimate:
        """``(B, [1,] n_mels, frames)`` log-mel -> ``FrameEstimate(static (B, n_static), dynamic (B, frames,
        n_dynamic))``."""
        x = _as_image(mel)
        batch, _, n_mels, frames = x.shape
        if n_mels != self.n_mels:
            raise ValueError(f"expected {self.n_mels} mel bands, got {n_mels}")
        if self.input_norm is not None:
            x = self.input_norm(x)
        x = x[:, 0].transpose(1, 2).reshape(batch * frames, 1, n_mels)  # one row per frame
        x = self.convs(x).reshape(batch, frames, self.frame_features)
        out, _ = self.gru(x)  # zero initial state
        y = torch.sigmoid(self.output(out))  # (B, frames, n_static + n_dynamic)
        return FrameEstimate(static=y[:, -1, : self.n_static], dynamic=y[:, :, self.n_static :])


class Conv2DEstimator(nn.Module):
    """Paper 2's Conv2D baseline: strided 2-D convolutions over the whole log-mel, static parameters only.

    Sec. V-C: "following the architecture of previous work [14]" (the InverSynth strided CNN, which
    classified discretised parameters with a softmax), "kernel size, padding and stride adjusted to process
    longer audio, batch normalization after each convolution layer, ... a sigmoid layer" instead of the
    softmax. The official repositories do not contain this model, so the exact values are a choice: by
    default the six layers of InverSynth's ``Conv6`` -- channels 32, 71, 128, 128, 128, 128, kernels (3,3),
    (3,3), (3,4), (3,3), (3,3), (3,3), strides (2,2), (2,2), (2,3), (2,2), (2,2), (1,2) as (freq, time) --
    with "same"-style padding ``kernel // 2``; each ``Conv2d -> BatchNorm2d -> ReLU``; then flatten ->
    ``Linear -> sigmoid``. The input BatchNorm is the one of :class:`GRUEstimator` (same features).

    The flattened size depends on the input size, so ``n_frames`` (251 for 4 s at 16 kHz, hop 256) is fixed
    at construction; 128 x 251 becomes 128 x 4 x 3 = 1536 features. PyTorch's default initialisation.

    Input ``(B, [1,] n_mels, n_frames)`` log-mel; output ``(B, n_static)`` in [0, 1].
    """

    def __init__(
        self,
        n_static: int,
        *,
        n_mels: int = 128,
        n_frames: int = 251,
        channels: Sequence[int] = (32, 71, 128, 128, 128, 128),
        kernel_sizes: Sequence[Any] = ((3, 3), (3, 3), (3, 4), (3, 3), (3, 3), (3, 3)),
        strides: Sequence[Any] = ((2, 2), (2, 2), (2, 3), (2, 2), (2, 2), (1, 2)),
        input_norm: bool = True,
    ) -> None:
        super().__init__()
        _positive(n_static=n_static, n_mels=n_mels, n_frames=n_frames)
        chans = _int_tuple("channels", channels)
        kernels = _pairs("kernel_sizes", kernel_sizes, len(chans))
        stride_pairs = _pairs("strides", strides, len(chans))
        self.n_static, self.n_mels, self.n_frames = n_static, n_mels, n_frames
        self.input_norm = StableBatchNorm2d(1, affine=False) if input_norm else None

        blocks: list[nn.Module] = []
        size, c_in = (n_mels, n_frames), 1
        for c_out, k, s in zip(chans, kernels, stride_pairs, strict=True):
            pad = (k[0] // 2, k[1] // 2)
            blocks.append(
                nn.Sequential(StableConv2d(c_in, c_out, k, stride=s, padding=pad), StableBatchNorm2d(c_out), nn.ReLU())
            )
            size = (_conv_out(size[0], k[0], s[0], pad[0]), _conv_out(size[1], k[1], s[1], pad[1]))
            if min(size) < 1:
                raise ConfigError(f"the Conv2D stack reduces a {n_mels} x {n_frames} input to nothing")
            c_in = c_out
        self.convs = nn.Sequential(*blocks)
        self.feature_shape = (c_in, *size)
        self.output = StableLinear(c_in * size[0] * size[1], n_static)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """``(B, [1,] n_mels, n_frames)`` log-mel -> ``(B, n_static)`` in [0, 1]."""
        x = _as_image(mel)
        if tuple(x.shape[2:]) != (self.n_mels, self.n_frames):
            raise ValueError(
                f"Conv2DEstimator was built for {self.n_mels} x {self.n_frames} log-mels, got {tuple(x.shape[2:])}"
            )
        if self.input_norm is not None:
            x = self.input_norm(x)
        return torch.sigmoid(self.output(self.convs(x).flatten(1)))


# ----------------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------------
ESTIMATORS: dict[str, type[nn.Module]] = {
    "cnn": CNNEstimator,
    "gru": GRUEstimator,
    "conv2d": Conv2DEstimator,
}
"""Estimator name -> class: ``cnn`` (paper 1), ``gru`` (paper 2), ``conv2d`` (paper 2's baseline)."""

REQUIRED = inspect.Parameter.empty
"""Marks an argument without default in :func:`estimator_arguments`."""


def register_estimator(name: str, cls: type[nn.Module], *, replace: bool = False) -> None:
    """Make ``cls`` buildable as ``build_estimator(name, ...)``."""
    if name in ESTIMATORS and not replace and ESTIMATORS[name] is not cls:
        raise ValueError(f"estimator {name!r} is already registered ({ESTIMATORS[name].__name__})")
    ESTIMATORS[name] = cls


def _check_name(name: str) -> type[nn.Module]:
    try:
        return ESTIMATORS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown estimator {name!r}; valid estimators: {', '.join(ESTIMATORS)}") from None


def estimator_arguments(name: str) -> dict[str, Any]:
    """Constructor arguments of estimator ``name`` and their defaults (:data:`REQUIRED` when there is none)."""
    cls = _check_name(name)
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]  # drop self
    return {p.name: p.default for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def build_estimator(name: str, /, **kwargs: Any) -> nn.Module:
    """Build estimator ``name`` from keyword arguments (e.g. ``build_estimator("cnn", layout=layout)``).

    Required arguments: ``layout`` for ``cnn``; ``n_static`` for ``gru`` (and ``n_dynamic``, default 0) and
    ``conv2d``. The other arguments default to the papers' sizes, see :func:`estimator_arguments`.

    Raises:
        ConfigError: for an unknown name, an unknown or missing argument, or an invalid value.
    """
    cls = _check_name(name)
    valid = estimator_arguments(name)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ConfigError(
            f"unknown argument(s) {', '.join(map(repr, unknown))} for estimator {name!r}; valid: {', '.join(valid)}"
        )
    missing = [k for k, v in valid.items() if v is REQUIRED and k not in kwargs]
    if missing:
        raise ConfigError(f"estimator {name!r} needs argument(s) {', '.join(map(repr, missing))}")
    return cls(**kwargs)
