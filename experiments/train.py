"""Train the write-up's part III networks from scratch and measure them against the routes.

Two small tasks on the photographs that ship inside scikit-image's wheel (nothing is
downloaded): a denoiser (plain 3x3 stacks of depth 5, 10 and 17; zero, reflect and circular
padding; with and without the DnCNN residual) and a face / non-face classifier on
``skimage.data.lfw_subset``. Everything is seeded and runs on one CPU thread with
deterministic algorithms, so a rerun writes the same numbers.

Run from the repository root (needs ``pip install -e ".[torch,experiments]"``)::

    python experiments/train.py                 # about 10 minutes on one core

It writes, under ``experiments/results/``:

``weights/<model>.npz``
    Every trained model's parameters (float32 arrays named as in its ``state_dict``).
``results.json``
    Every number the write-up reports, with the configuration that produced it.
``maps.npz``
    The small maps the figures draw (effective receptive fields before and after training,
    occlusion maps, border profiles).

The figures (``rfanalysis figures``) and the write-up's doctests read these files and need no
torch. ``tests/test_trained.py`` trains every kind of model for a few steps and checks that the
committed weights reproduce the committed numbers.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import rfanalysis as rfa

RESULTS = Path(__file__).resolve().parent / "results"

SEED = 0
#: noise level of the denoising task (images in [0, 1]), DnCNN's usual sigma = 25
SIGMA = 25 / 255
CHANNELS = 16
DEPTHS = (5, 10, 17)
PADDINGS = ("zeros", "reflect", "circular")

#: photographs the denoisers learn from, and the held-out ones they are tested on (grayscale);
#: the motorcycle pair stays together on the training side, so no test scene was seen
TRAIN_IMAGES = (
    "astronaut",
    "coffee",
    "stereo_motorcycle",
    "hubble_deep_field",
    "retina",
    "rocket",
    "brick",
    "grass",
    "immunohistochemistry",
)
TEST_IMAGES = ("camera", "chelsea", "coins", "gravel")

#: denoiser training: random patches, as DnCNN trains on 40x40 patches
PATCH = 40
BATCH = 8
STEPS = 600
LEARNING_RATE = 1e-3

#: effective receptive fields: the centre unit of noisy test patches of this size
ERF_SIZE = 65
ERF_PATCHES = 32

#: border study: crops of test images run alone and inside their surroundings
CROP = 64
MARGIN = 24  # > 17, the deepest stack's half field: the crop's pixels are then interior
CROPS_PER_IMAGE = 16
#: a border deficit below this many dB counts as gone
DEFICIT_DB = 0.1

#: classifier
FACE_SIZE = 25
TRAIN_FACES = 140  # of 200; the other 60 are the test set
CLASSIFIER_STEPS = 300
CLASSIFIER_RATE = 3e-3
OCCLUDER = 5
CLASSIFIER_SPEC = "conv3p1,conv3s2p1,conv3s2p1,conv3p1"


def deterministic(seed: int = SEED) -> None:
    """Seed torch and force one thread and deterministic kernels (same bytes on a rerun)."""
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)


# --------------------------------------------------------------------------- data
def _photograph(name: str) -> list[np.ndarray]:
    """Grayscale float32 images in [0, 1] for one ``skimage.data`` name (a pair gives two)."""
    from skimage import color, data

    loaded = getattr(data, name)()
    images = list(loaded[:2]) if isinstance(loaded, tuple) else [loaded]
    out = []
    for image in images:
        if image.ndim == 3:
            image = color.rgb2gray(image[..., :3])
        image = np.asarray(image, dtype=np.float64)
        if image.max() > 1.0:
            image = image / 255.0
        out.append(image.astype(np.float32))
    return out


def photographs(names: Iterable[str]) -> list[np.ndarray]:
    """The named bundled photographs, grayscale, float32 in [0, 1]."""
    return [image for name in names for image in _photograph(name)]


def faces() -> tuple[np.ndarray, np.ndarray]:
    """``lfw_subset``: 200 images of 25x25 (float32) and labels, 1 for the first 100 (faces)."""
    from skimage import data

    images = data.lfw_subset().astype(np.float32)
    labels = np.r_[np.ones(100, np.int64), np.zeros(100, np.int64)]
    return images, labels


def face_split(seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train / test indices into :func:`faces` (140 / 60)."""
    order = np.random.default_rng(seed).permutation(200)
    return np.sort(order[:TRAIN_FACES]), np.sort(order[TRAIN_FACES:])


def patch_stream(
    images: list[np.ndarray], steps: int, seed: int = SEED
) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    """``steps`` batches of (noisy, clean) random patches, each ``(BATCH, 1, PATCH, PATCH)``.

    The stream depends only on the seed: every denoiser sees the same patches and noise.
    """
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        clean = np.empty((BATCH, 1, PATCH, PATCH), np.float32)
        for b in range(BATCH):
            image = images[rng.integers(len(images))]
            r = rng.integers(image.shape[0] - PATCH + 1)
            c = rng.integers(image.shape[1] - PATCH + 1)
            clean[b, 0] = image[r : r + PATCH, c : c + PATCH]
        noise = rng.standard_normal(clean.shape).astype(np.float32) * np.float32(SIGMA)
        yield clean + noise, clean


# --------------------------------------------------------------------------- models
class Denoiser(nn.Module):
    """A plain stack of 3x3 convolutions with ReLUs between them.

    ``residual=True`` is DnCNN's form: the stack predicts the noise and the output is the
    input minus it (an identity skip around the stack); otherwise the stack predicts the
    clean image itself.
    """

    def __init__(self, depth: int, padding_mode: str, residual: bool, channels: int = CHANNELS):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(depth):
            n_in = 1 if i == 0 else channels
            n_out = 1 if i == depth - 1 else channels
            layers.append(nn.Conv2d(n_in, n_out, 3, padding=1, padding_mode=padding_mode))
            if i < depth - 1:
                layers.append(nn.ReLU())
        self.body = nn.Sequential(*layers)
        self.residual = residual
        for module in self.body:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x - out if self.residual else out


class FaceClassifier(nn.Module):
    """Four 3x3 convolutions (two with stride 2), global average pooling, a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(32, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


@dataclass(frozen=True)
class DenoiserConfig:
    """One denoiser of the grid: its name, the torch model and the equal rfanalysis spec."""

    depth: int
    padding_mode: str
    residual: bool

    @property
    def name(self) -> str:
        return f"denoiser_d{self.depth}_{self.padding_mode}_{'res' if self.residual else 'plain'}"

    @property
    def spec(self) -> str:
        mode = "" if self.padding_mode == "zeros" else f":{self.padding_mode}"
        body = f"conv3p1{mode}*{self.depth}"
        return f"res({body})" if self.residual else body

    def build(self, seed: int = SEED) -> Denoiser:
        torch.manual_seed(seed)
        return Denoiser(self.depth, self.padding_mode, self.residual)


GRID = tuple(
    DenoiserConfig(depth, mode, residual)
    for depth in DEPTHS
    for mode in PADDINGS
    for residual in (True, False)
)


def build_classifier(seed: int = SEED) -> FaceClassifier:
    torch.manual_seed(seed)
    return FaceClassifier()


def check_spec(model: nn.Module, spec: str, shape: tuple[int, int], unit: Any = "center") -> None:
    """Refuse unless ``spec`` counts the routes of the torch model itself.

    A denoiser (``unit="center"``) is checked on the routes to its centre unit and on its
    coverage; a classifier (``unit`` a logit index) on the routes to that logit, which global
    pooling makes the coverage of the trunk ``spec`` describes.
    """
    traced = rfa.from_torch(model, shape)
    if unit == "center":
        pairs = [
            (rfa.routes(traced, shape), rfa.routes(spec, shape)),
            (rfa.coverage(traced, shape), rfa.coverage(spec, shape)),
        ]
    else:
        pairs = [(rfa.routes(traced, shape, unit), rfa.coverage(spec, shape))]
    for found, expected in pairs:
        if not np.array_equal(found, expected):
            raise RuntimeError(f"the spec {spec!r} does not have the routes of the model")


# --------------------------------------------------------------------------- training
def train_denoiser(
    config: DenoiserConfig, images: list[np.ndarray], steps: int = STEPS
) -> tuple[Denoiser, list[float]]:
    """Train one denoiser from its seeded initialisation on :func:`patch_stream`."""
    deterministic()
    model = config.build()
    optimiser = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    # the last fifth at a tenth of the rate settles the weights
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimiser, [int(0.8 * steps)], 0.1)
    losses = []
    model.train()
    for noisy, clean in patch_stream(images, steps):
        loss = torch.mean((model(torch.from_numpy(noisy)) - torch.from_numpy(clean)) ** 2)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
    model.eval()
    return model, losses


def train_classifier(steps: int = CLASSIFIER_STEPS) -> tuple[FaceClassifier, list[float]]:
    """Full-batch training on the seeded training split, with random horizontal flips."""
    deterministic()
    images, labels = faces()
    train, _ = face_split()
    x = torch.from_numpy(images[train][:, None])
    y = torch.from_numpy(labels[train])
    model = build_classifier()
    optimiser = torch.optim.Adam(model.parameters(), lr=CLASSIFIER_RATE, weight_decay=1e-4)
    rng = np.random.default_rng(SEED)
    losses = []
    model.train()
    for _ in range(steps):
        flip = torch.from_numpy(rng.random(len(train)) < 0.5)
        batch = torch.where(flip[:, None, None, None], x.flip(-1), x)
        loss = nn.functional.cross_entropy(model(batch), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    model.eval()
    return model, losses


# --------------------------------------------------------------------------- weights
def save_weights(model: nn.Module, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    np.savez_compressed(path, **arrays)


def load_weights(model: nn.Module, path: Path) -> nn.Module:
    with np.load(path) as stored:
        model.load_state_dict({k: torch.from_numpy(stored[k]) for k in stored.files})
    return model.eval()


def trained_denoiser(config: DenoiserConfig, results: Path = RESULTS) -> Denoiser:
    """The committed weights of one denoiser."""
    model = load_weights(config.build(), results / "weights" / f"{config.name}.npz")
    assert isinstance(model, Denoiser)
    return model


def trained_classifier(results: Path = RESULTS) -> FaceClassifier:
    """The committed weights of the classifier."""
    model = load_weights(build_classifier(), results / "weights" / "classifier.npz")
    assert isinstance(model, FaceClassifier)
    return model


# --------------------------------------------------------------------------- measurements
@torch.no_grad()
def _run(model: nn.Module, x: np.ndarray) -> np.ndarray:
    return model(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy()


def psnr(mse: float | np.ndarray) -> Any:
    """Peak signal-to-noise ratio in dB for images in [0, 1]."""
    return -10.0 * np.log10(mse)


def psnr_on_images(model: nn.Module, images: list[np.ndarray], seed: int = SEED + 1) -> float:
    """PSNR over the whole held-out images, one seeded noise draw each."""
    rng = np.random.default_rng(seed)
    errors, count = 0.0, 0
    for image in images:
        noisy = image + rng.standard_normal(image.shape).astype(np.float32) * np.float32(SIGMA)
        out = _run(model, noisy[None, None])[0, 0]
        errors += float(np.sum((out.astype(np.float64) - image) ** 2))
        count += image.size
    return float(psnr(errors / count))


def border_crops(images: list[np.ndarray], seed: int = SEED + 2) -> tuple[np.ndarray, np.ndarray]:
    """Seeded noisy regions ``(N, 1, CROP + 2 MARGIN, ...)`` of the test images and their clean
    crops ``(N, 1, CROP, CROP)``: the crop is the region's middle."""
    rng = np.random.default_rng(seed)
    size = CROP + 2 * MARGIN
    regions = []
    for image in images:
        for _ in range(CROPS_PER_IMAGE):
            r = rng.integers(image.shape[0] - size + 1)
            c = rng.integers(image.shape[1] - size + 1)
            regions.append(image[r : r + size, c : c + size])
    clean = np.stack(regions)[:, None]
    noisy = clean + rng.standard_normal(clean.shape).astype(np.float32) * np.float32(SIGMA)
    middle = np.s_[..., MARGIN : MARGIN + CROP, MARGIN : MARGIN + CROP]
    return noisy, clean[middle]


def border_distance(size: int) -> np.ndarray:
    """Distance of every pixel of a ``size`` x ``size`` image to its nearest border (0 on it)."""
    i = np.arange(size)
    d = np.minimum(i, size - 1 - i)
    return np.minimum(d[:, None], d[None, :])


def border_profile(
    model: nn.Module, noisy: np.ndarray, clean: np.ndarray, depth: int
) -> dict[str, Any]:
    """Squared error by distance to the border, for each crop run alone and in its context.

    The two runs see the same noisy pixels; they differ only in what lies beyond the crop's
    border (padding, or the real surroundings), so their ratio isolates the border's cost.
    Pixels ``depth`` or more from the border have fields inside the crop: both runs agree.
    """
    middle = np.s_[..., MARGIN : MARGIN + CROP, MARGIN : MARGIN + CROP]
    alone = _run(model, noisy[middle]).astype(np.float64)
    context = _run(model, noisy)[middle].astype(np.float64)
    distance = border_distance(CROP)
    half = CROP // 2
    mse_alone = np.array([np.mean((alone - clean)[..., distance == d] ** 2) for d in range(half)])
    mse_context = np.array(
        [np.mean((context - clean)[..., distance == d] ** 2) for d in range(half)]
    )
    deficit = psnr(mse_context) - psnr(mse_alone)
    above = np.nonzero(deficit >= DEFICIT_DB)[0]
    return {
        "psnr_alone": psnr(mse_alone),
        "psnr_context": psnr(mse_context),
        "deficit_db": deficit,
        # the band where the border costs at least DEFICIT_DB: distances 0 .. width - 1
        "width": int(above[-1] + 1) if above.size else 0,
        # float rounding only: these outputs read no padding
        "max_change_beyond_field": float(np.abs(alone - context)[..., distance >= depth].max()),
    }


def erf_patches(images: list[np.ndarray], seed: int = SEED + 3) -> np.ndarray:
    """Seeded noisy test patches ``(ERF_PATCHES, 1, ERF_SIZE, ERF_SIZE)``."""
    rng = np.random.default_rng(seed)
    out = np.empty((ERF_PATCHES, 1, ERF_SIZE, ERF_SIZE), np.float32)
    for k in range(ERF_PATCHES):
        image = images[k % len(images)]
        r = rng.integers(image.shape[0] - ERF_SIZE + 1)
        c = rng.integers(image.shape[1] - ERF_SIZE + 1)
        out[k, 0] = image[r : r + ERF_SIZE, c : c + ERF_SIZE]
    return out + rng.standard_normal(out.shape).astype(np.float32) * np.float32(SIGMA)


def erf(model: nn.Module, inputs: np.ndarray, unit: Any = "center") -> np.ndarray:
    """Mean ``|d y_unit / d x|`` over the given inputs (the effective receptive field)."""
    shape = tuple(inputs.shape[-2:])
    return rfa.influence(model, shape, unit, inputs=inputs, progress=False)


def erf_metrics(analytic: np.ndarray, empirical: np.ndarray) -> dict[str, Any]:
    """rfanalysis.compare of an ERF against the routes and against their square root."""
    result = rfa.compare(analytic, empirical)
    root = result.sqrt_routes
    assert root is not None
    return {
        "correlation_routes": result.correlation,
        "tv_routes": result.total_variation,
        "correlation_sqrt_routes": root.correlation,
        "tv_sqrt_routes": root.total_variation,
        # a Gaussian fitted by moments; the maps are square, so the two axes are averaged
        "sigma_routes": float(np.mean(result.sigma_analytic)),
        "sigma_sqrt_routes": float(np.mean(root.sigma_analytic)),
        "sigma": float(np.mean(result.sigma_empirical)),
        "closer_law": result.closer_law,
    }


def occlusion(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean absolute change of the true-class margin when an ``OCCLUDER`` square is set to the
    image's mean, for each position of the square inside the image: ``(m, m)`` with
    ``m = FACE_SIZE - OCCLUDER + 1``, indexed by the square's top-left pixel."""
    x = images[:, None]
    sign = np.where(labels == 1, 1.0, -1.0)

    def margin(batch: np.ndarray) -> np.ndarray:
        logits = _run(model, batch).astype(np.float64)
        return sign * (logits[:, 1] - logits[:, 0])

    base = margin(x)
    mean = x.mean(axis=(2, 3), keepdims=True)
    m = FACE_SIZE - OCCLUDER + 1
    out = np.empty((m, m))
    for r in range(m):
        for c in range(m):
            covered = x.copy()
            covered[..., r : r + OCCLUDER, c : c + OCCLUDER] = mean
            out[r, c] = np.mean(np.abs(base - margin(covered)))
    return out


def box_sum(counts: np.ndarray, size: int = OCCLUDER) -> np.ndarray:
    """Sum of ``counts`` over every ``size`` x ``size`` square inside it (top-left indexed):
    the routes from an occluded square."""
    windows = np.lib.stride_tricks.sliding_window_view(counts, (size, size))
    return windows.sum(axis=(-2, -1))


# --------------------------------------------------------------------------- the study
def _clean(value: Any) -> Any:
    """JSON-ready copy: arrays to lists, floats rounded to 6 significant digits."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"a reported number is {value}")
        return float(f"{value:.6g}")
    return value


def measure_denoiser(
    config: DenoiserConfig,
    model: nn.Module,
    initial: nn.Module,
    test_images: list[np.ndarray],
    crops: tuple[np.ndarray, np.ndarray],
    patches: np.ndarray,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Every number and map of one denoiser (trained and at initialisation)."""
    shape = (ERF_SIZE, ERF_SIZE)
    routes = rfa.routes(config.spec, shape)
    maps = {"erf_init": erf(initial, patches), "erf_trained": erf(model, patches)}
    border = border_profile(model, *crops, config.depth)
    maps["deficit_db"] = border["deficit_db"]
    numbers = {
        "spec": config.spec,
        "depth": config.depth,
        "padding_mode": config.padding_mode,
        "residual": config.residual,
        "psnr_test": psnr_on_images(model, test_images),
        "border": border,
        "erf_init": erf_metrics(routes, maps["erf_init"]),
        "erf_trained": erf_metrics(routes, maps["erf_trained"]),
    }
    return numbers, maps


def measure_classifier(
    model: nn.Module, initial: nn.Module
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Accuracy, ERF of the face logit and occlusion maps of the classifier."""
    images, labels = faces()
    _, test = face_split()
    x, y = images[test], labels[test]
    accuracy = float(np.mean(_run(model, x[:, None]).argmax(1) == y))
    coverage = rfa.coverage(CLASSIFIER_SPEC, (FACE_SIZE, FACE_SIZE))
    maps = {
        "erf_init": erf(initial, x[:, None], unit=(1,)),
        "erf_trained": erf(model, x[:, None], unit=(1,)),
        "occlusion": occlusion(model, x, y),
        "occlusion_faces": occlusion(model, x[y == 1], y[y == 1]),
        "occlusion_nonfaces": occlusion(model, x[y == 0], y[y == 0]),
    }
    occluded = box_sum(coverage)
    numbers = {
        "spec": CLASSIFIER_SPEC,
        "test_size": len(test),
        "accuracy": accuracy,
        "erf_init": erf_metrics(coverage, maps["erf_init"]),
        "erf_trained": erf_metrics(coverage, maps["erf_trained"]),
        **{
            f"{name}_vs_coverage": {
                "correlation": rfa.compare(occluded, maps[name]).correlation,
                "total_variation": rfa.compare(occluded, maps[name]).total_variation,
            }
            for name in ("occlusion", "occlusion_faces", "occlusion_nonfaces")
        },
    }
    return numbers, maps


def configuration() -> dict[str, Any]:
    return {
        "seed": SEED,
        "sigma": SIGMA,
        "channels": CHANNELS,
        "train_images": list(TRAIN_IMAGES),
        "test_images": list(TEST_IMAGES),
        "patch": PATCH,
        "batch": BATCH,
        "steps": STEPS,
        "learning_rate": LEARNING_RATE,
        "erf_size": ERF_SIZE,
        "erf_patches": ERF_PATCHES,
        "crop": CROP,
        "margin": MARGIN,
        "crops_per_image": CROPS_PER_IMAGE,
        "deficit_db": DEFICIT_DB,
        "face_size": FACE_SIZE,
        "train_faces": TRAIN_FACES,
        "classifier_steps": CLASSIFIER_STEPS,
        "classifier_rate": CLASSIFIER_RATE,
        "occluder": OCCLUDER,
        "torch": torch.__version__,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--only", nargs="*", help="denoiser names to train (default: all)")
    parser.add_argument("--steps", type=int, default=STEPS, help="denoiser training steps")
    parser.add_argument(
        "--classifier-steps", type=int, default=CLASSIFIER_STEPS, help="classifier steps"
    )
    args = parser.parse_args(argv)
    deterministic()
    train_images = photographs(TRAIN_IMAGES)
    test_images = photographs(TEST_IMAGES)
    crops = border_crops(test_images)
    patches = erf_patches(test_images)
    config_numbers = configuration() | {
        "steps": args.steps,
        "classifier_steps": args.classifier_steps,
    }
    results: dict[str, Any] = {"config": config_numbers, "denoisers": {}}
    maps: dict[str, np.ndarray] = {}
    for config in GRID:
        if args.only and config.name not in args.only:
            continue
        initial = config.build().eval()
        check_spec(initial, config.spec, (ERF_SIZE, ERF_SIZE))
        model, losses = train_denoiser(config, train_images, args.steps)
        save_weights(model, args.out / "weights" / f"{config.name}.npz")
        numbers, model_maps = measure_denoiser(config, model, initial, test_images, crops, patches)
        numbers["final_loss"] = float(np.mean(losses[-50:]))
        results["denoisers"][config.name] = numbers
        maps.update({f"{config.name}/{k}": v for k, v in model_maps.items()})
        print(
            f"{config.name}: {numbers['psnr_test']:.2f} dB, border width "
            f"{numbers['border']['width']}, deficit at the edge "
            f"{numbers['border']['deficit_db'][0]:.2f} dB",
            flush=True,
        )
    initial = build_classifier().eval()
    check_spec(initial, CLASSIFIER_SPEC, (FACE_SIZE, FACE_SIZE), unit=(1,))
    model, losses = train_classifier(args.classifier_steps)
    save_weights(model, args.out / "weights" / "classifier.npz")
    numbers, model_maps = measure_classifier(model, initial)
    numbers["final_loss"] = float(np.mean(losses[-20:]))
    results["classifier"] = numbers
    maps.update({f"classifier/{k}": v for k, v in model_maps.items()})
    print(f"classifier: test accuracy {numbers['accuracy']:.3f}", flush=True)
    results["noisy_psnr"] = float(psnr(SIGMA**2))
    (args.out / "results.json").write_text(json.dumps(_clean(results), indent=1) + "\n")
    np.savez_compressed(
        args.out / "maps.npz", **{k: np.asarray(v, np.float32) for k, v in sorted(maps.items())}
    )


if __name__ == "__main__":
    main()
