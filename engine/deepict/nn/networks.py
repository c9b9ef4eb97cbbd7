"""The DeePiCt U-Nets in PyTorch.

``UNet3D`` reproduces the layer layout of the original 3D network (Conv -> ReLU -> BatchNorm ->
Dropout blocks, a batch-norm-free base, transposed-convolution upsampling, [skip, upsampled]
concatenation, 1x1x1 output convolution), so that the state dicts of the four published DeePiCt
checkpoints load with strict key matching once their ``module.`` prefix is removed.

``UNet2D`` is the compartment network (cytosol, organelles): five resolution levels, two 3x3
convolutions with ReLU per level, no batch norm, 3x3 transposed convolutions, [upsampled, skip]
concatenation and a 1x1 output convolution.

Both return logits; apply a sigmoid for probabilities (classes are independent, multi-label).
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def _conv_block(conv, norm, in_channels: int, out_channels: int, batch_norm: bool, dropout: float) -> nn.Sequential:
    """Two (Conv -> ReLU -> [BatchNorm] -> Dropout) units; the index layout matches the published keys."""
    layers: list[nn.Module] = []
    for channels_in in (in_channels, out_channels):
        layers += [conv(channels_in, out_channels, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
        if batch_norm:
            layers.append(norm(out_channels))
        layers.append(nn.Dropout(p=dropout))
    return nn.Sequential(*layers)


class UNet3D(nn.Module):
    """3D U-Net with ``depth`` max-pool levels and ``initial_features`` channels at full resolution.

    Input (N, 1, Z, Y, X) with every spatial size divisible by ``2 ** depth``; output
    (N, out_channels, Z, Y, X) logits.
    """

    def __init__(self, depth: int = 2, initial_features: int = 4, out_channels: int = 1,
                 batch_norm: bool = True, encoder_dropout: float = 0.0, decoder_dropout: float = 0.0):
        super().__init__()
        if depth < 1 or initial_features < 1 or out_channels < 1:
            raise ValueError("depth, initial_features and out_channels must be at least 1")
        self.depth = depth
        features = [initial_features * 2 ** level for level in range(depth)]
        base_features = initial_features * 2 ** depth
        block = lambda cin, cout, p: _conv_block(nn.Conv3d, nn.BatchNorm3d, cin, cout, batch_norm, p)  # noqa: E731
        self.encoder = nn.ModuleList(
            block(1 if level == 0 else features[level - 1], features[level], encoder_dropout)
            for level in range(depth))
        self.base = _conv_block(nn.Conv3d, nn.BatchNorm3d, features[-1], base_features, False, encoder_dropout)
        decoder_features = [base_features] + features[::-1]
        self.upsamplers = nn.ModuleList(
            nn.ConvTranspose3d(decoder_features[i], decoder_features[i + 1], kernel_size=2, stride=2)
            for i in range(depth))
        self.decoder = nn.ModuleList(
            block(2 * decoder_features[i + 1], decoder_features[i + 1], decoder_dropout) for i in range(depth))
        self.out_conv = nn.Conv3d(initial_features, out_channels, kernel_size=1)
        self.pool = nn.MaxPool3d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for encode in self.encoder:
            x = encode(x)
            skips.append(x)
            x = self.pool(x)
        x = self.base(x)
        for upsample, decode, skip in zip(self.upsamplers, self.decoder, reversed(skips)):
            x = decode(torch.cat([skip, upsample(x)], dim=1))
        return self.out_conv(x)


class UNet2D(nn.Module):
    """2D U-Net for compartments: ``depth`` resolution levels, ``initial_features`` filters at the top.

    Input (N, 1, Y, X) with Y and X divisible by ``2 ** (depth - 1)``; output (N, out_channels, Y, X) logits.
    """

    def __init__(self, depth: int = 5, initial_features: int = 16, out_channels: int = 1):
        super().__init__()
        if depth < 2 or initial_features < 1:
            raise ValueError("depth must be at least 2 and initial_features at least 1")
        self.depth = depth
        features = [initial_features * 2 ** level for level in range(depth)]
        block = lambda cin, cout: _conv_block(nn.Conv2d, nn.BatchNorm2d, cin, cout, False, 0.0)  # noqa: E731
        self.encoder = nn.ModuleList(block(1 if i == 0 else features[i - 1], features[i]) for i in range(depth))
        self.upsamplers = nn.ModuleList(
            nn.ConvTranspose2d(features[i + 1], features[i], kernel_size=3, stride=2, padding=1, output_padding=1)
            for i in reversed(range(depth - 1)))
        self.decoder = nn.ModuleList(block(2 * features[i], features[i]) for i in reversed(range(depth - 1)))
        self.out_conv = nn.Conv2d(initial_features, out_channels, kernel_size=1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, encode in enumerate(self.encoder):
            x = encode(x)
            if level < self.depth - 1:
                skips.append(x)
                x = self.pool(x)
        for upsample, decode, skip in zip(self.upsamplers, self.decoder, reversed(skips)):
            x = decode(torch.cat([upsample(x), skip], dim=1))
        return self.out_conv(x)


class _FoldedUnit(nn.Module):
    """Conv -> ReLU -> eval-mode BatchNorm as one convolution and one clamp (inference only).

    The batch norm follows the ReLU, so it cannot simply be merged into the convolution; but with
    ``z`` the convolution's output and ``a * y + b`` the batch norm (per channel), ``a * relu(z) + b``
    equals ``max(a z + b, b)`` when ``a > 0`` and ``min(a z + b, b)`` when ``a < 0``: the scaled and
    shifted convolution clamped per channel, which costs what the ReLU alone did (the batch norm was
    a full extra pass over the activations).
    """

    def __init__(self, conv: nn.Module, norm: nn.Module):
        super().__init__()
        scale = norm.weight.detach() / torch.sqrt(norm.running_var + norm.eps)
        shift = norm.bias.detach() - norm.running_mean * scale
        self.conv = conv
        with torch.no_grad():
            conv.weight.mul_(scale.reshape(-1, *[1] * (conv.weight.dim() - 1)))
            conv.bias.mul_(scale).add_(shift)
        shape = (1, -1) + (1,) * (conv.weight.dim() - 2)
        infinity = torch.full_like(shift, float("inf"))
        self.register_buffer("low", torch.where(scale > 0, shift, -infinity).reshape(shape))
        self.register_buffer("high", torch.where(scale > 0, infinity, shift).reshape(shape))
        # usually every scale is positive: then the upper bound is infinite everywhere and skipped
        self.bounded_above = bool((scale <= 0).any())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # in place with torch.maximum/minimum: clamp_ with per-channel tensor bounds is several times slower,
        # in bf16 about as slow as the convolution itself
        y = self.conv(x)
        torch.maximum(y, self.low.to(y.dtype), out=y)
        if self.bounded_above:
            torch.minimum(y, self.high.to(y.dtype), out=y)
        return y


def fold_batch_norm(network: nn.Module) -> nn.Module:
    """An inference copy of ``network`` whose Conv -> ReLU -> BatchNorm units are folded (:class:`_FoldedUnit`).

    Same probabilities as the eval-mode network (to rounding); the copy is for inference only (its
    state dict differs). A network without batch norm comes back as a plain copy.
    """
    network = copy.deepcopy(network).eval()
    for module in list(network.modules()):
        if not isinstance(module, nn.Sequential):
            continue
        layers = list(module)
        folded, i = [], 0
        while i < len(layers):
            unit = layers[i:i + 3]
            if (len(unit) == 3 and isinstance(unit[0], (nn.Conv2d, nn.Conv3d)) and unit[0].bias is not None
                    and isinstance(unit[1], nn.ReLU) and isinstance(unit[2], (nn.BatchNorm2d, nn.BatchNorm3d))):
                folded.append(_FoldedUnit(unit[0], unit[2]))
                i += 3
            else:
                folded.append(layers[i])
                i += 1
        if len(folded) != len(layers):
            for name in list(module._modules):
                del module._modules[name]
            for index, layer in enumerate(folded):
                module.add_module(str(index), layer)
    return network
