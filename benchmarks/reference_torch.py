"""An independent PyTorch implementation of the same VGG and Gatys loss, built from the same arrays.

Used by the parity tests and by the benchmarks (JAX vs PyTorch on the same weights and work).
Needs ``torch`` (the ``test`` / ``bench`` extras); torchvision is not used.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from jaxstyle.nets.vgg import ARCHS, CAFFE_MEAN_BGR, TORCH_MEAN, TORCH_STD, Network

RANGE_WEIGHT = 10.0
EPS = 1e-8


def _torch():
    import torch

    return torch


class TorchVGG:
    """VGG features in PyTorch (NCHW inside; NHWC numpy in and out for comparisons)."""

    def __init__(self, network: Network, device: str = "cpu", precision: str = "float32"):
        """``precision`` bfloat16 runs the network under autocast (convolutions in bfloat16, the taps
        returned as float32, as jaxstyle's ``--precision bfloat16``); TF32 is a global switch of
        PyTorch (``torch.backends``), set by the caller."""
        torch = _torch()
        self.arch, self.pooling, self.preprocessing = network.arch, network.pooling, network.preprocessing
        self.device = device
        self.precision = precision
        # the preprocessing constants, on the device once (not copied from the host on every call)
        self.mean = torch.tensor(TORCH_MEAN, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(TORCH_STD, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.caffe_mean = torch.tensor(CAFFE_MEAN_BGR, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.convs = []
        for block_index, block in enumerate(ARCHS[self.arch]):
            for i in range(len(block)):
                p = network.params[f"conv{block_index + 1}_{i + 1}"]
                kernel = np.asarray(p["kernel"]).transpose(3, 2, 0, 1).copy()  # HWIO -> OIHW
                conv = torch.nn.Conv2d(kernel.shape[1], kernel.shape[0], 3, padding=1)
                with torch.no_grad():
                    conv.weight.copy_(torch.from_numpy(kernel))
                    conv.bias.copy_(torch.from_numpy(np.asarray(p["bias"]).copy()))
                conv.requires_grad_(False)
                self.convs.append(conv.to(device))

    def features(self, x, layers: Sequence[str]) -> dict:
        """x: torch NCHW RGB in [0, 1]. Returns NCHW float32 tensors for the requested taps."""
        torch = _torch()
        if self.precision == "bfloat16":
            with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
                feats = self._features(x, layers)
            return {k: v.float() for k, v in feats.items()}
        return self._features(x, layers)

    def _features(self, x, layers: Sequence[str]) -> dict:
        torch = _torch()
        if self.preprocessing == "torch":
            h = (x - self.mean) / self.std
        else:
            h = x.flip(1) * 255.0 - self.caffe_mean
        wanted, out, k = set(layers), {}, 0
        for b, block in enumerate(ARCHS[self.arch]):
            for i in range(len(block)):
                h = self.convs[k](h)
                k += 1
                if f"conv{b + 1}_{i + 1}" in wanted:
                    out[f"conv{b + 1}_{i + 1}"] = h
                h = torch.relu(h)
                if f"relu{b + 1}_{i + 1}" in wanted:
                    out[f"relu{b + 1}_{i + 1}"] = h
                if len(out) == len(wanted):
                    return out
            pool = torch.nn.functional.avg_pool2d if self.pooling == "avg" else torch.nn.functional.max_pool2d
            h = pool(h, 2, 2)
            if f"pool{b + 1}" in wanted:
                out[f"pool{b + 1}"] = h
            if len(out) == len(wanted):
                return out
        return out

    def features_nhwc(self, images: np.ndarray, layers: Sequence[str]) -> dict[str, np.ndarray]:
        torch = _torch()
        x = torch.from_numpy(np.ascontiguousarray(np.asarray(images, np.float32).transpose(0, 3, 1, 2)))
        with torch.no_grad():
            feats = self.features(x.to(self.device), layers)
        return {k: v.cpu().numpy().transpose(0, 2, 3, 1) for k, v in feats.items()}


def gram(f):
    """f: [N, C, H, W] -> [N, C, C], averaged over positions."""
    n, c, h, w = f.shape
    flat = f.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (h * w)


def _rms(x):
    torch = _torch()
    return torch.sqrt((x * x).mean() + EPS)


class TorchGatysLoss:
    """The same loss as ``jaxstyle.objective.Objective`` (mse distance), per frame, summed over frames."""

    def __init__(self, vgg: TorchVGG, content_layers: Sequence[str], style_layers: Sequence[str],
                 style_layer_weights: Sequence[float], content_weight: float, style_weight: float,
                 tv_weight: float):
        self.vgg = vgg
        self.content_layers, self.style_layers = list(content_layers), list(style_layers)
        self.layer_weights = list(style_layer_weights)
        self.weights = (content_weight, style_weight, tv_weight)
        self.layers = list(dict.fromkeys(self.content_layers + self.style_layers))

    def set_targets(self, content_nchw, style_grams: Mapping[str, object]) -> None:
        torch = _torch()
        with torch.no_grad():
            feats = self.vgg.features(content_nchw, self.content_layers)
        self.content_targets = {k: v.detach() for k, v in feats.items()}
        self.style_targets = {k: v.detach() for k, v in style_grams.items()}

    def style_grams(self, style_nchw) -> dict:
        torch = _torch()
        with torch.no_grad():
            feats = self.vgg.features(style_nchw, self.style_layers)
        return {k: gram(v)[0] for k, v in feats.items()}

    def parts(self, x) -> dict:
        """x: [N, 3, H, W]. Per-frame loss parts, each a tensor [N]."""
        torch = _torch()
        feats = self.vgg.features(x, self.layers)
        n = x.shape[0]
        content = torch.zeros(n, device=x.device)
        for name in self.content_layers:
            target = self.content_targets[name]
            # each frame's difference over its own target's RMS (as _rms, per frame, in one op)
            rms = torch.sqrt((target * target).mean(dim=(1, 2, 3), keepdim=True) + EPS)
            d = (feats[name] - target) / rms
            content = content + (d * d).mean(dim=(1, 2, 3))
        style = torch.zeros(n, device=x.device)
        for name, weight in zip(self.style_layers, self.layer_weights):
            g = gram(feats[name])
            target = self.style_targets[name]
            d = (g - target) / _rms(target)
            style = style + weight * (d * d).mean(dim=(1, 2))
        dy = x[:, :, 1:, :] - x[:, :, :-1, :]
        dx = x[:, :, :, 1:] - x[:, :, :, :-1]
        tv = (dy * dy).mean(dim=(1, 2, 3)) + (dx * dx).mean(dim=(1, 2, 3))
        over = torch.relu(x - 1.0) + torch.relu(-x)
        rng = (over * over).mean(dim=(1, 2, 3))
        cw, sw, tw = self.weights
        total = cw * content + sw * style + tw * tv + RANGE_WEIGHT * rng
        return {"total": total, "content": content, "style": style, "tv": tv}

    def __call__(self, x):
        return self.parts(x)["total"].sum()
