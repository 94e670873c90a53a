"""MobileNetV3 backbone of the EfficientAT audio-tagging models, for any width multiplier.

EfficientAT (Schmid, Koutini & Widmer, 2023) scales a MobileNetV3-Large, adapted to one-channel log-mel
input and a 527-class AudioSet head, by a width multiplier: ``mn04`` is width 0.4, ``mn20`` width 2.0.
The official checkpoints are plain ``state_dict`` files, so this module reproduces upstream's module tree
(attribute names, registration order, shapes) exactly: ``features.<i>.block.<j>...`` for the inverted
residual blocks, ``conc_se_layers.0.fc1/fc2`` for the squeeze-excitation layers and
``classifier.2/classifier.5`` for the MLP head. Anything that changes those names breaks strict loading.

Only the configuration that the released AudioSet checkpoints use is built: channel-wise
squeeze-excitation (``se_dims='c'``, reduction 4), all four downsampling strides 2, no dilation, no
reduced tail, MLP head.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from synthproxy.errors import ConfigError

__all__ = [
    "MODEL_WIDTHS",
    "NUM_CLASSES",
    "BlockSpec",
    "ConvBNAct",
    "InvertedResidual",
    "MobileNetV3Audio",
    "SqueezeExcitation",
    "adjust_channels",
    "block_specs",
    "build_mobilenet",
    "make_divisible",
    "width_from_name",
]

#: AudioSet classes of the released checkpoints' head.
NUM_CLASSES: int = 527

#: Width multipliers for which upstream defines a model name (``mnXX`` = width XX / 10).
MODEL_WIDTHS: dict[str, float] = {
    "mn01": 0.1,
    "mn02": 0.2,
    "mn04": 0.4,
    "mn05": 0.5,
    "mn06": 0.6,
    "mn08": 0.8,
    "mn10": 1.0,
    "mn12": 1.2,
    "mn14": 1.4,
    "mn16": 1.6,
    "mn20": 2.0,
    "mn30": 3.0,
    "mn40": 4.0,
}

# BatchNorm settings upstream inherits from torchvision's MobileNetV3; eps matters at inference.
_BN_EPS = 0.001
_BN_MOMENTUM = 0.01
_SE_REDUCTION = 4

_NAME_RE = re.compile(r"^(mn\d\d)(?:_as)?$")


def width_from_name(name: str) -> float:
    """Width multiplier of a model name such as ``"mn04"`` or ``"mn20_as"``.

    Unknown names are rejected instead of silently falling back to width 1.0 (as upstream does), because a
    wrong width only shows up later as a confusing state_dict mismatch.
    """
    match = _NAME_RE.match(name)
    if match is None or match.group(1) not in MODEL_WIDTHS:
        known = ", ".join(sorted(MODEL_WIDTHS))
        raise ConfigError(
            f"unknown EfficientAT model name {name!r}; expected one of {known} (optionally '_as')"
        )
    return MODEL_WIDTHS[match.group(1)]


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor`` the way MobileNet does.

    Rounds to the nearest multiple (at least ``divisor``) and bumps up by one multiple if rounding lost
    more than 10 %. The exact rule matters: it fixes every tensor shape of the checkpoints.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def adjust_channels(channels: int, width_mult: float) -> int:
    """Channels of a width-1.0 layer scaled by ``width_mult`` and made divisible by 8."""
    return make_divisible(channels * width_mult, 8)


@dataclass(frozen=True)
class BlockSpec:
    """One inverted-residual block (a row of Table 1 of the MobileNetV3 paper), already width-scaled."""

    in_channels: int
    kernel: int
    expanded_channels: int
    out_channels: int
    use_se: bool
    hardswish: bool
    stride: int

    @property
    def residual(self) -> bool:
        """Skip connection only where input and output shapes agree."""
        return self.stride == 1 and self.in_channels == self.out_channels


# MobileNetV3-Large at width 1.0: (in, kernel, expanded, out, squeeze-excitation, hardswish, stride).
_LARGE_CONFIG: tuple[tuple[int, int, int, int, bool, bool, int], ...] = (
    (16, 3, 16, 16, False, False, 1),
    (16, 3, 64, 24, False, False, 2),
    (24, 3, 72, 24, False, False, 1),
    (24, 5, 72, 40, True, False, 2),
    (40, 5, 120, 40, True, False, 1),
    (40, 5, 120, 40, True, False, 1),
    (40, 3, 240, 80, False, True, 2),
    (80, 3, 200, 80, False, True, 1),
    (80, 3, 184, 80, False, True, 1),
    (80, 3, 184, 80, False, True, 1),
    (80, 3, 480, 112, True, True, 1),
    (112, 3, 672, 112, True, True, 1),
    (112, 5, 672, 160, True, True, 2),
    (160, 5, 960, 160, True, True, 1),
    (160, 5, 960, 160, True, True, 1),
)
_LAST_CHANNEL = 1280  # hidden width of the MLP head at width 1.0
_LAST_CONV_EXPANSION = 6  # the final 1x1 conv has 6x the channels of the last block


def block_specs(width_mult: float) -> list[BlockSpec]:
    """The 15 inverted-residual blocks (``features[1]`` to ``features[15]``) at a given width."""
    return [
        BlockSpec(
            in_channels=adjust_channels(cin, width_mult),
            kernel=k,
            expanded_channels=adjust_channels(cexp, width_mult),
            out_channels=adjust_channels(cout, width_mult),
            use_se=se,
            hardswish=hs,
            stride=s,
        )
        for cin, k, cexp, cout, se, hs, s in _LARGE_CONFIG
    ]


class ConvBNAct(nn.Sequential):
    """Bias-free conv, BatchNorm, optional activation; children named ``0``, ``1``, ``2`` as upstream."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        activation: type[nn.Module] | None = None,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=(kernel_size - 1) // 2,
                groups=groups,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels, eps=_BN_EPS, momentum=_BN_MOMENTUM),
        ]
        if activation is not None:
            layers.append(activation())
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    """Channel squeeze-excitation: global mean -> fc1 -> ReLU -> fc2 -> sigmoid -> rescale channels."""

    def __init__(self, channels: int, squeeze_channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, squeeze_channels)
        self.fc2 = nn.Linear(squeeze_channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        """Rescale each channel of ``x`` (batch, channels, freq, time) by its learned gate."""
        gate = x.mean(dim=(2, 3))
        gate = torch.sigmoid(self.fc2(torch.relu(self.fc1(gate))))
        return x * gate[:, :, None, None]


class _ConcurrentSE(nn.Module):
    """Upstream's container for parallel SE layers over channel/freq/time; only the channel one is used.

    It exists solely so that the parameters live under ``conc_se_layers.0.*`` as in the checkpoints. With a
    single SE layer upstream's max-aggregation over the layers is the identity.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        squeeze = make_divisible(channels // _SE_REDUCTION, 8)
        self.conc_se_layers = nn.ModuleList([SqueezeExcitation(channels, squeeze)])

    def forward(self, x: Tensor) -> Tensor:
        """Apply the channel squeeze-excitation."""
        return self.conc_se_layers[0](x)


class InvertedResidual(nn.Module):
    """MobileNetV3 bottleneck: [1x1 expand] -> depthwise kxk -> [SE] -> 1x1 project (+ skip)."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        act: type[nn.Module] = nn.Hardswish if spec.hardswish else nn.ReLU
        layers: list[nn.Module] = []
        if spec.expanded_channels != spec.in_channels:
            layers.append(ConvBNAct(spec.in_channels, spec.expanded_channels, 1, activation=act))
        layers.append(
            ConvBNAct(
                spec.expanded_channels,
                spec.expanded_channels,
                spec.kernel,
                stride=spec.stride,
                groups=spec.expanded_channels,
                activation=act,
            )
        )
        if spec.use_se:
            layers.append(_ConcurrentSE(spec.expanded_channels))
        layers.append(ConvBNAct(spec.expanded_channels, spec.out_channels, 1, activation=None))
        self.block = nn.Sequential(*layers)
        self.use_residual = spec.residual

    def forward(self, x: Tensor) -> Tensor:
        """Run the block, adding the input back where shapes allow."""
        out = self.block(x)
        return out + x if self.use_residual else out


class MobileNetV3Audio(nn.Module):
    """EfficientAT ``MN`` network: log-mel ``(batch, 1, n_mels, frames)`` -> AudioSet logits.

    ``features[0]`` is the stem conv, ``features[1..15]`` the inverted-residual blocks, ``features[16]`` the
    final 1x1 conv; the HEAR-style embeddings read intermediate block outputs via :meth:`block_outputs`.
    """

    def __init__(self, width_mult: float, num_classes: int = NUM_CLASSES, dropout: float = 0.2) -> None:
        super().__init__()
        self.width_mult = width_mult
        self.specs = block_specs(width_mult)
        stem_channels = self.specs[0].in_channels
        last_in = self.specs[-1].out_channels
        last_out = _LAST_CONV_EXPANSION * last_in
        hidden = adjust_channels(_LAST_CHANNEL, width_mult)

        layers: list[nn.Module] = [ConvBNAct(1, stem_channels, 3, stride=2, activation=nn.Hardswish)]
        layers.extend(InvertedResidual(spec) for spec in self.specs)
        layers.append(ConvBNAct(last_in, last_out, 1, activation=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(start_dim=1),
            nn.Linear(last_out, hidden),
            nn.Hardswish(),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, num_classes),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        """Upstream's initialisation, so that an unloaded network behaves like upstream's random one."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.zeros_(module.bias)

    def block_channels(self, index: int) -> int:
        """Output channels of ``features[index]``."""
        if index == 0:
            return self.specs[0].in_channels
        if 1 <= index <= len(self.specs):
            return self.specs[index - 1].out_channels
        if index == len(self.specs) + 1:
            return _LAST_CONV_EXPANSION * self.specs[-1].out_channels
        raise IndexError(f"features has {len(self.features)} entries, got index {index}")

    def block_outputs(self, x: Tensor, indices: Sequence[int]) -> list[Tensor]:
        """Outputs of ``features[i]`` for each ``i`` in ``indices`` (in that order).

        Stops after the deepest requested layer, so extracting embeddings does not pay for the final
        1x1 conv and the classifier.
        """
        if not indices:
            return []
        wanted = set(indices)
        last = max(wanted)
        if min(wanted) < 0 or last >= len(self.features):
            raise IndexError(f"block indices must be in [0, {len(self.features) - 1}], got {list(indices)}")
        collected: dict[int, Tensor] = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in wanted:
                collected[i] = x
            if i == last:
                break
        return [collected[i] for i in indices]

    def forward(self, x: Tensor) -> Tensor:
        """AudioSet logits (before sigmoid) for a log-mel batch ``(batch, 1, n_mels, frames)``."""
        return self.classifier(self.features(x))


def build_mobilenet(name: str, num_classes: int = NUM_CLASSES) -> MobileNetV3Audio:
    """Build the network for a model name such as ``"mn04"`` or ``"mn20_as"`` (random weights)."""
    return MobileNetV3Audio(width_from_name(name), num_classes=num_classes)
