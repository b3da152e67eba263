"""Unforeseen attacks (UAR; Kang et al. 2019, "Testing robustness against unforeseen adversaries"),
as the paper evaluates its CIFAR-10 and R-ImageNet networks: fog, Gabor noise, snow, and JPEG with
an l-inf, l2 or l1 budget.

Each attack is a differentiable transformation ``x' = T(x, params)`` of images x (N, C, H, W) in
[0, 1] (C = 1 or 3, any H, W) by per-image parameters. ``UARAttack`` draws a random start and
random fixed parts (Gabor kernels, snowflake shapes) from its ``seed``, then optimizes the
parameters toward a target class (it descends the target's cross-entropy) for ``steps`` steps of
``step_size`` (default distortion / sqrt(steps)) and returns the final image. Its budget,
``distortion``, is the reference's ``eps`` (the name below), not an l-p radius of the pixels. Without a given target it
uses the authors' target stream after their subset's permutation (``authors_targets`` with
``after_permutation=TEST_SIZE``).

The formulas follow the reference implementation, the ``advex-uar`` package (0.0.6.dev0), whose
budgets ``eps`` are on the 0-255 pixel scale and mean something different per attack:

- fog: x' = clip((x + e F) / (max_hw x + e)) with e = eps / 255, max_hw per image and channel, and
  F in [0, 1] a diamond-square fog map whose random displacements ("wibbles") are the parameters,
  each in [0, 1];
- gabor: x' = clip(x + (eps / 255) G), G in [0, 1] the variance-normalized convolution of a
  parameter field (entries in [-1, 1]) with a random Gabor kernel (one per image);
- snow: x' = clip(discolour(x) + eps S): x is mixed with a brightened grey copy and eps scales the
  snowflake layer S directly on the [0, 1] scale (the reference adds it after dividing by 255);
  S sums flake intensities ** 4, on seven 4x4 sub-lattices, convolved with seven random blurred
  streaks; intensities lie in (0, 1] with a mean of at most 0.2 over each 8x8 region;
- jpeg-linf / jpeg-l2 / jpeg-l1: the image's JPEG coefficients (YCbCr, 4:2:0 chroma, 8x8 DCT,
  standard quality-50 tables) move by v / 2 quantization steps, where v, the parameter, has
  ||v|| <= eps in the attack's norm (and |v_i| <= 2 for l2 and l1). As in the reference nothing is
  rounded, so v = 0 reduces to the colour conversion and the chroma subsampling.

The step rules are the reference's: signed steps for fog, Gabor, snow and JPEG-l-inf, normalized
gradient steps for JPEG-l2, Frank-Wolfe steps of size 1 / (it + 1) for JPEG-l1 (``step_size`` is
not used there). With the default step sizes a fog or Gabor step (144.8 and 28.3) crosses the whole
parameter box, so those two attacks search over the corners of the box, as in the reference.

Kept from the reference although they look unintended, since the paper's numbers come from them:
the diamond-square step averages a centre with the one two cells away (``roll`` by 2); the Gabor
parameters live on the complement of the random sparse start's support. Changed, each to keep a
stated invariant: the fog map is normalized per image (the reference normalizes over the batch,
so an image's fog depended on its batch); the snow budget is enforced on the start and after
every step (the reference skips the start and the last step); JPEG-l2 and -l1 starts are clipped
to |v_i| <= 2; the JPEG-l1 vertex
respects the |v_i| <= 2 box (the reference's could leave it); the first JPEG step is evaluated
with the same coefficient scale as the later ones (the reference's first was scaled by eps).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from interp_core.attacks.engine import CrossEntropy, check_data
from interp_core.checks import check_range
from interp_core.models import eval_mode

#: The largest l-inf change an MNIST budget of ``UAR_ATTACKS`` may make to a pixel: the largest eps
#: of the paper's MNIST robustness curves (DatasetInfo.paper_eps), at which a digit is still the digit it was.
MNIST_UAR_LINF = 0.4
#: The unforeseen attacks' kinds; their budgets per dataset are ``DatasetInfo.uar_budgets``
#: (interp_core.datasets: CIFAR-10 the authors', MNIST the project's, within MNIST_UAR_LINF).
UAR_ATTACKS = ("fog", "gabor", "snow", "jpeg-linf", "jpeg-l2", "jpeg-l1")
#: Seed of the authors' numpy target stream (the same seed as their evaluation subset).
AUTHORS_TARGET_SEED = 99
#: Size of the MNIST and CIFAR-10 test sets: the authors draw their permutation of it from the
#: target stream (their image subset) before the targets.
TEST_SIZE = 10_000

FOG_WIBBLE_DECAY = 2.0
FOG_MARGIN = 16
GABOR_KERNEL_SIZE = 23
GABOR_DENSITY = 1 / 14
SNOW_BUDGET = 0.2
SNOW_KERNEL_SIZE = 13
SNOW_FLAKE_TYPES = 7
JPEG_COEFF_MAX = 2.0

JPEG_LUMA_TABLE = torch.tensor([
    [16, 11, 10, 16, 24, 40, 51, 61],
    [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77],
    [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101],
    [72, 92, 95, 98, 112, 100, 103, 99],
], dtype=torch.float64)
"""Quality-50 luminance table; row = vertical frequency u, column = horizontal frequency v."""
JPEG_CHROMA_TABLE = torch.full((8, 8), 99.0, dtype=torch.float64)
JPEG_CHROMA_TABLE[:4, :4] = torch.tensor([[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]])

_RGB_TO_YCBCR = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]],
                             dtype=torch.float64)
_YCBCR_TO_RGB = torch.tensor([[1.0, 0.0, 1.402], [1.0, -0.344136, -0.714136], [1.0, 1.772, 0.0]], dtype=torch.float64)
_LUMINANCE = (0.2126, 0.7152, 0.0722)


def authors_targets(y: Tensor, num_classes: int, seed: int = AUTHORS_TARGET_SEED, after_permutation: int = 0) -> Tensor:
    """The authors' random wrong-class targets: t_i = (y_i + 1 + r_i) % K with r_i =
    ``numpy.random.RandomState(seed).randint(K - 1)``, one draw per image in order.

    ``after_permutation``: the authors' scripts first draw their image subset from the same
    generator, ``permutation(total)`` of the test set, and only then the targets; pass that total
    (``TEST_SIZE`` for the MNIST and CIFAR-10 test sets) to continue the stream from there, as they do.
    y: (N,) labels in [0, K). Returns (N,) int64 on y's device, never equal to y.
    """
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    labels = torch.as_tensor(y)
    if labels.dim() != 1 or labels.is_floating_point():
        raise ValueError(f"y must be integer labels of shape (N,), got {tuple(labels.shape)} {labels.dtype}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes - 1}]")
    stream = np.random.RandomState(seed)
    if after_permutation:
        stream.permutation(after_permutation)
    shift = stream.randint(num_classes - 1, size=labels.numel())
    return (labels.long() + 1 + torch.from_numpy(shift).to(labels.device)) % num_classes


# ---------------------------------------------------------------------------------------------
# Fog


def fog_map_size(height: int, width: int) -> int:
    """Side of the square fog map for an image: the smallest power of two holding the image plus a
    16-pixel margin on each side (64 for CIFAR-10 and MNIST, 256 for 224-pixel images)."""
    return 2 ** math.ceil(math.log2(max(height, width) + 2 * FOG_MARGIN))


def fog_weight_shapes(n: int, height: int, width: int) -> list[tuple[int, int, int]]:
    """Shapes of the fog parameters: three (n, 2^l, 2^l) tensors per level l of the map."""
    levels = int(math.log2(fog_map_size(height, width)))
    return [(n, 2 ** level, 2 ** level) for level in range(levels) for _ in range(3)]


def fog_map(weights: list[Tensor], wibble_decay: float = FOG_WIBBLE_DECAY) -> Tensor:
    """Diamond-square fog map (N, 1, M, M) in [0, 1] from wibble weights in [0, 1] (shapes from
    ``fog_weight_shapes``; M = 2 ** levels).

    Level l refines a 2^l grid: each new point is the mean of four neighbours plus
    (2 w - 1) * 100 / decay^l, with w its weight: square centres from the square's corners, then
    edge midpoints from the edge's two ends and two centres, the second of which is, as in the
    reference, two cells away (the grid wraps around). The map is then min-max normalized per
    image (0 where it is flat).
    """
    if len(weights) % 3 or not weights:
        raise ValueError(f"fog needs three weight tensors per level, got {len(weights)}")
    n = weights[0].shape[0]
    grid = weights[0].new_zeros(n, 1, 1)
    wibble = 100.0
    for level in range(len(weights) // 3):
        w_centre, w_top, w_left = weights[3 * level:3 * level + 3]
        size = grid.shape[1]
        for w in (w_centre, w_top, w_left):
            if w.shape != (n, size, size):
                raise ValueError(f"fog level {level} takes weights of shape ({n}, {size}, {size}), got {tuple(w.shape)}")

        def wibbled(total: Tensor, w: Tensor) -> Tensor:
            return total / 4 + (2 * w - 1) * wibble

        below, right = grid.roll(-1, 1), grid.roll(-1, 2)
        centre = wibbled(grid + below + right + below.roll(-1, 2), w_centre)
        top = wibbled(centre + centre.roll(2, 1) + grid + right, w_top)  # between grid[i, j] and grid[i, j+1]
        left = wibbled(centre + centre.roll(2, 2) + grid + below, w_left)  # between grid[i, j] and grid[i+1, j]
        even = torch.stack((grid, top), dim=-1).reshape(n, size, 2 * size)
        odd = torch.stack((left, centre), dim=-1).reshape(n, size, 2 * size)
        grid = torch.stack((even, odd), dim=2).reshape(n, 2 * size, 2 * size)
        wibble /= wibble_decay
    return _min_max(grid.unsqueeze(1))


def fog(x: Tensor, weights: list[Tensor], eps: float) -> Tensor:
    """Fogged images clip((x + e F) / (max_hw x + e), 0, 1), e = eps / 255, F the central (H, W)
    crop (16-pixel margin) of ``fog_map(weights)``. x: (N, C, H, W) in [0, 1]; eps > 0."""
    if not eps > 0:
        raise ValueError(f"fog needs eps > 0 (0-255 scale), got {eps}")
    h, w = x.shape[-2:]
    fog_layer = fog_map(weights)[:, :, FOG_MARGIN:FOG_MARGIN + h, FOG_MARGIN:FOG_MARGIN + w]
    e = eps / 255
    return ((x + e * fog_layer) / (x.amax((2, 3), keepdim=True) + e)).clamp(0, 1)


# ---------------------------------------------------------------------------------------------
# Gabor noise


def gabor_kernel(sigma: float, frequency: float, theta: float, sides: int, size: int = GABOR_KERNEL_SIZE) -> Tensor:
    """Sum over k < sides of Gabor kernels at angle theta + pi k / sides, on a size x size grid over
    [-0.5, 0.5]^2: exp(-(u^2 + v^2) / (2 (sigma + 0.001)^2)) cos(2 pi frequency u) with (u, v) the
    rotated coordinates. Returns (size, size) float64."""
    t = torch.linspace(-0.5, 0.5, size, dtype=torch.float64)
    rows, cols = torch.meshgrid(t, t, indexing="ij")
    total = torch.zeros_like(rows)
    for k in range(sides):
        angle = theta + math.pi * k / sides
        u = cols * math.cos(angle) + rows * math.sin(angle)
        v = -cols * math.sin(angle) + rows * math.cos(angle)
        total += torch.exp(-0.5 * (u ** 2 + v ** 2) / (sigma + 1e-3) ** 2) * torch.cos(2 * math.pi * frequency * u)
    return total


def random_gabor_kernels(n: int, generator: torch.Generator) -> Tensor:
    """One random Gabor kernel per image, (n, 1, 23, 23) float64: sides uniform in 1..10, sigma in
    [0.1, 0.4], frequency in [3, 5.75], theta in [0, pi] (the reference's ranges)."""
    kernels = []
    for _ in range(n):
        sides = int(torch.randint(1, 11, (1,), generator=generator))
        sigma, frequency, theta = torch.rand(3, generator=generator, dtype=torch.float64).tolist()
        kernels.append(gabor_kernel(0.1 + 0.3 * sigma, 3 + (GABOR_KERNEL_SIZE / 4 - 3) * frequency,
                                    math.pi * theta, sides))
    return torch.stack(kernels).unsqueeze(1)


def gabor_noise(field: Tensor, kernels: Tensor) -> Tensor:
    """Gabor noise (N, 1, H, W) in [0, 1]: the parameter field (N, 1, H, W) convolved with each
    image's kernel (N, 1, k, k) (zero padding), contrast-equalized and min-max normalized per image.

    The equalization maps s to m + (s - m) (1.001 / (0.001 + |s - m| / max |s - m|)), m the mean,
    a soft sign (the reference's spectral form of it reduces to this; its FFT round trip is the
    identity). The equalizing gain and the normalization's min and max are not differentiated
    through, as in the reference. A flat result (e.g. a zero field) gives zero noise.
    """
    n, _, h, w = field.shape
    k = kernels.shape[-1]
    s = F.conv2d(field.reshape(1, n, h, w), kernels.to(field), padding=k // 2, groups=n).reshape(n, 1, h, w)
    mean = s.mean((1, 2, 3), keepdim=True).detach()
    spread = (s - mean).detach().abs()
    top = spread.amax((1, 2, 3), keepdim=True)
    gain = 1.001 / (0.001 + spread / torch.where(top > 0, top, torch.ones_like(top)))
    return _min_max(mean + (s - mean) * gain)


def gabor(x: Tensor, field: Tensor, kernels: Tensor, eps: float) -> Tensor:
    """clip(x + (eps / 255) G, 0, 1) for x (N, C, H, W) in [0, 1], with G = ``gabor_noise(field,
    kernels)`` (field (N, 1, H, W), kernels (N, 1, k, k)) added to every channel."""
    return (x + eps / 255 * gabor_noise(field, kernels)).clamp(0, 1)


# ---------------------------------------------------------------------------------------------
# Snow


def _streak(end_row: int, end_col: int, width: float, size: int = SNOW_KERNEL_SIZE) -> Tensor:
    """Anti-aliased line from the centre (c, c), c = size // 2, to (end_row, end_col) with both ends
    >= c, in the quadrant right of and below the centre (the reference's weighted line): along the
    major axis a, the cell at minor offset b gets clip(1 + half - |b - line(a)|, 0, 1) with
    half = width sqrt(1 + slope) / 4. Returns (size, size) float64."""
    mid = size // 2
    rows, cols = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                                indexing="ij")
    steep = end_col - mid < end_row - mid
    major, minor = (rows, cols) if steep else (cols, rows)
    major_end, minor_end = (end_row, end_col) if steep else (end_col, end_row)
    slope = (minor_end - mid) / (major_end - mid)
    half = width * math.sqrt(1 + abs(slope)) / 4
    value = (1 + half - (minor - (mid + slope * (major - mid))).abs()).clamp(0, 1)
    inside = (major >= mid) & (major <= major_end) & (minor >= mid)
    return torch.where(inside, value, torch.zeros_like(value))


def snowflake_kernel(end_row: int, end_col: int, width: float, sigma: float, flip: bool) -> Tensor:
    """One snowflake shape (13, 13) float64: the streak from the centre to (end_row, end_col)
    (``_streak``), mirrored through the centre onto the upper-left quadrant, flipped left-right if
    ``flip``, then blurred by a ceil(5 sigma)-wide Gaussian of std sigma (same-size output)."""
    mid = SNOW_KERNEL_SIZE // 2
    kernel = _streak(end_row, end_col, width)
    kernel[:mid + 1, :mid + 1] = kernel.flip(0, 1)[:mid + 1, :mid + 1]
    if flip:
        kernel = kernel.flip(1)
    side = math.ceil(5 * sigma)
    g = torch.exp(-0.5 * ((torch.arange(side, dtype=torch.float64) - (side - 1) / 2) / sigma) ** 2)
    blur = torch.outer(g, g) / torch.outer(g, g).sum()
    return F.conv2d(kernel[None, None], blur[None, None], padding=(side - 1) // 2)[0, 0]


def snow_kernels(generator: torch.Generator) -> Tensor:
    """Seven random snowflake shapes (1, 7, 13, 13) float64, one per flake sub-lattice
    (``snowflake_kernel``): ends 2-6 cells down-right of the centre, width 1, 3 or 5 (probabilities
    0.6, 0.3, 0.1), blur sigma in [0.41, 0.6], one left-right flip for all with probability 1/2."""
    mid = SNOW_KERNEL_SIZE // 2
    flip = bool(torch.rand(1, generator=generator) < 0.5)
    kernels = []
    for _ in range(SNOW_FLAKE_TYPES):
        end_row, end_col = torch.randint(mid + 2, SNOW_KERNEL_SIZE, (2,), generator=generator).tolist()
        u, blur = torch.rand(2, generator=generator, dtype=torch.float64).tolist()
        width = 1.0 if u < 0.6 else 3.0 if u < 0.9 else 5.0
        kernels.append(snowflake_kernel(end_row, end_col, width, 0.41 + 0.19 * blur, flip))
    return torch.stack(kernels).unsqueeze(0)


def snow_grid_shape(n: int, height: int, width: int) -> tuple[int, int, int, int]:
    """Shape of the flake intensities: (n, 7, ceil(height / 4), ceil(width / 4))."""
    return n, SNOW_FLAKE_TYPES, -(-height // 4), -(-width // 4)


def _flake_sites(like: Tensor) -> Tensor:
    """(7, 1, 4, 4) one-hot sites of the flake types in each 4x4 cell: types 0-3 at (0, t), 4-6 at (t - 3, 0)."""
    sites = like.new_zeros(SNOW_FLAKE_TYPES, 1, 4, 4)
    for t in range(SNOW_FLAKE_TYPES):
        row, col = (0, t) if t < 4 else (t - 3, 0)
        sites[t, 0, row, col] = 1.0
    return sites


def snow_layer(intensities: Tensor, kernels: Tensor, height: int, width: int) -> Tensor:
    """Snow layer (N, 1, height, width) >= 0: each flake type's intensities ** 4 (N, 7, h, w) placed
    on its site of every 4x4 cell and convolved with its shape (``kernels``, (1, 7, k, k))."""
    spikes = F.conv_transpose2d(intensities ** 4, _flake_sites(intensities), stride=4, groups=SNOW_FLAKE_TYPES)
    layer = F.conv2d(spikes, kernels.to(intensities), padding=kernels.shape[-1] // 2)
    return layer[:, :, :height, :width]


def snow(x: Tensor, intensities: Tensor, kernels: Tensor, eps: float) -> Tensor:
    """Snowy images clip(0.75 x + 0.25 max(x, 1.5 g + 0.5) + eps S, 0, 1): g the luminance (the image
    itself for one channel), S = ``snow_layer(intensities, kernels, H, W)``; eps on the [0, 1] scale."""
    if x.shape[1] == 3:
        gray = sum(c * x[:, i:i + 1] for i, c in enumerate(_LUMINANCE))
    else:
        gray = x
    discoloured = 0.75 * x + 0.25 * torch.maximum(x, 1.5 * gray + 0.5)
    return (discoloured + eps * snow_layer(intensities, kernels, *x.shape[-2:])).clamp(0, 1)


def snow_budget(intensities: Tensor, budget: float = SNOW_BUDGET) -> Tensor:
    """Intensities clipped to [1e-9, 1], then scaled down on each 8x8 region (per image and flake
    type; partial regions at the edges) whose mean exceeds ``budget``, to that budget; (N, 7, h, w)
    -> the same shape, in (0, 1]."""
    clipped = intensities.clamp(1e-9, 1)
    means = F.avg_pool2d(clipped, 8, ceil_mode=True)
    scale = (budget / means).clamp_max(1.0)
    scale = scale.repeat_interleave(8, 2).repeat_interleave(8, 3)[..., :clipped.shape[2], :clipped.shape[3]]
    return clipped * scale


# ---------------------------------------------------------------------------------------------
# JPEG


def _jpeg_block(channels: int) -> int:
    return 16 if channels == 3 else 8


def jpeg_size(channels: int, height: int, width: int) -> int:
    """Number of JPEG coefficients of an image (parameters per image): the luminance plane, padded
    to multiples of 16 (colour; 8 for grey), plus the two half-size chroma planes for colour."""
    block = _jpeg_block(channels)
    h, w = -(-height // block) * block, -(-width // block) * block
    return h * w + (2 * (h // 2) * (w // 2) if channels == 3 else 0)


def _dct_matrix(like: Tensor) -> Tensor:
    """Orthonormal 8-point DCT-II matrix D[k, i] (coefficients = D @ block @ D.T)."""
    k = torch.arange(8, dtype=torch.float64)[:, None]
    i = torch.arange(8, dtype=torch.float64)[None, :]
    d = torch.cos((2 * i + 1) * k * math.pi / 16) * math.sqrt(2 / 8)
    d[0] /= math.sqrt(2)
    return d.to(like)


def _block_transform(plane: Tensor, matrix: Tensor) -> Tensor:
    """M @ block @ M.T on every 8x8 block of planes (N, H, W); the result keeps the block layout."""
    n, h, w = plane.shape
    blocks = plane.reshape(n, h // 8, 8, w // 8, 8)
    return torch.einsum("ki,naibj,lj->nakbl", matrix, blocks, matrix).reshape(n, h, w)


def _recode(plane: Tensor, table: Tensor, shift: Tensor) -> Tensor:
    """JPEG code and decode of a plane (N, H, W) on the 0-255 scale with the quantized coefficients
    moved by ``shift`` (N, H, W) (in quantization steps; block layout); no rounding."""
    d = _dct_matrix(plane)
    steps = table.to(plane).repeat(plane.shape[1] // 8, plane.shape[2] // 8)
    quantized = _block_transform(plane - 128, d) / steps + shift
    return _block_transform(quantized * steps, d.T) + 128


def jpeg(x: Tensor, coefficients: Tensor) -> Tensor:
    """Images after a JPEG code/decode whose quantized coefficients moved by coefficients / 2.

    x: (N, C, H, W) in [0, 1], C = 1 (luminance only) or 3 (YCbCr, chroma averaged over 2x2 and
    repeated back); replicate-padded to multiples of 16 (8 for grey), cropped back afterwards.
    coefficients: (N, ``jpeg_size(C, H, W)``): the luminance plane's coefficients, then Cb's and
    Cr's, each in the planes' 8x8 block layout (row = vertical frequency). Returns (N, C, H, W) in [0, 1].
    """
    n, c, h, w = x.shape
    if c not in (1, 3):
        raise ValueError(f"jpeg takes 1- or 3-channel images, got {c} channels")
    if coefficients.shape != (n, jpeg_size(c, h, w)):
        raise ValueError(f"coefficients must have shape ({n}, {jpeg_size(c, h, w)}), got {tuple(coefficients.shape)}")
    block = _jpeg_block(c)
    ph, pw = -(-h // block) * block, -(-w // block) * block
    pixels = 255 * F.pad(x, (0, pw - w, 0, ph - h), mode="replicate") if (ph, pw) != (h, w) else 255 * x
    shift = coefficients / 2
    if c == 1:
        out = _recode(pixels[:, 0], JPEG_LUMA_TABLE, shift.reshape(n, ph, pw)).unsqueeze(1)
    else:
        ycc = torch.einsum("kc,nchw->nkhw", _RGB_TO_YCBCR.to(x), pixels)  # Y, Cb - 128, Cr - 128
        chroma = F.avg_pool2d(ycc[:, 1:], 2) + 128
        s_y, s_cb, s_cr = shift.split((ph * pw, ph * pw // 4, ph * pw // 4), dim=1)
        luma = _recode(ycc[:, 0], JPEG_LUMA_TABLE, s_y.reshape(n, ph, pw))
        cb = _recode(chroma[:, 0], JPEG_CHROMA_TABLE, s_cb.reshape(n, ph // 2, pw // 2))
        cr = _recode(chroma[:, 1], JPEG_CHROMA_TABLE, s_cr.reshape(n, ph // 2, pw // 2))
        up = (torch.stack((cb, cr), 1) - 128).repeat_interleave(2, 2).repeat_interleave(2, 3)
        out = torch.einsum("kc,nchw->nkhw", _YCBCR_TO_RGB.to(x), torch.cat((luma.unsqueeze(1), up), 1))
    return (out[:, :, :h, :w] / 255).clamp(0, 1)


# ---------------------------------------------------------------------------------------------
# The attack


def _min_max(t: Tensor) -> Tensor:
    """Per-image (t - min) / (max - min) over all but the batch dimension, min and max not
    differentiated through; 0 where the image is flat."""
    dims = tuple(range(1, t.dim()))
    lo, hi = t.amin(dims, keepdim=True).detach(), t.amax(dims, keepdim=True).detach()
    span = hi - lo
    return (t - lo) / torch.where(span > 0, span, torch.ones_like(span))


def _flat(params: list[Tensor]) -> Tensor:
    return torch.cat([p.flatten(1) for p in params], 1)


def _unflat(flat: Tensor, like: list[Tensor]) -> list[Tensor]:
    parts = flat.split([p[0].numel() for p in like], 1)
    return [part.reshape(p.shape) for part, p in zip(parts, like)]


class _Kind:
    """One transformation: a random start (params, fixed random parts), a render, a step rule
    ("sign", "normalized" or "frank-wolfe") and a projection onto the parameter set."""

    update = "sign"

    def start(self, x: Tensor, eps: float, g: torch.Generator) -> tuple[list[Tensor], dict]:
        """Random start (inside the parameter set, except Gabor's, as in the reference) and the
        fixed random parts."""
        raise NotImplementedError

    def render(self, x: Tensor, params: list[Tensor], fixed: dict, eps: float) -> Tensor:
        """The transformed images (N, C, H, W) in [0, 1], differentiable in params."""
        raise NotImplementedError

    def project(self, params: list[Tensor], fixed: dict, eps: float) -> list[Tensor]:
        """The parameters after a step, brought back into the parameter set."""
        raise NotImplementedError


def _rand(shape, g: torch.Generator, like: Tensor) -> Tensor:
    """Uniform [0, 1) draws made on the CPU (the same on every device), moved to like's device and dtype."""
    return torch.rand(shape, generator=g, dtype=torch.float64).to(like)


class _Fog(_Kind):
    def start(self, x, eps, g):
        return [_rand(s, g, x) for s in fog_weight_shapes(x.shape[0], *x.shape[-2:])], {}

    def render(self, x, params, fixed, eps):
        return fog(x, params, eps)

    def project(self, params, fixed, eps):
        return [p.clamp(0, 1) for p in params]


class _Gabor(_Kind):
    def start(self, x, eps, g):
        n, _, h, w = x.shape
        kernels = random_gabor_kernels(n, g).to(x)
        on = _rand((n, 1, h, w), g, x) < GABOR_DENSITY
        field = torch.where(on, 2 * _rand((n, 1, h, w), g, x) - 1, torch.zeros_like(on, dtype=x.dtype))
        # as in the reference, the steps move the entries off the sparse start's support (its complement)
        return [field], {"kernels": kernels, "mask": (~on).to(x)}

    def render(self, x, params, fixed, eps):
        return gabor(x, params[0], fixed["kernels"], eps)

    def project(self, params, fixed, eps):
        return [params[0].clamp(-1, 1) * fixed["mask"]]


class _Snow(_Kind):
    def start(self, x, eps, g):
        kernels = snow_kernels(g).to(x)
        intensities = torch.exp(-_rand(snow_grid_shape(x.shape[0], *x.shape[-2:]), g, x) / SNOW_BUDGET)
        return [snow_budget(intensities)], {"kernels": kernels}

    def render(self, x, params, fixed, eps):
        return snow(x, params[0], fixed["kernels"], eps)

    def project(self, params, fixed, eps):
        return [snow_budget(params[0])]


class _Jpeg(_Kind):
    def __init__(self, norm: str):
        self.norm = norm
        self.update = {"linf": "sign", "l2": "normalized", "l1": "frank-wolfe"}[norm]

    def start(self, x, eps, g):
        n, d = x.shape[0], jpeg_size(*x.shape[1:])
        if self.norm == "linf":
            v = 2 * _rand((n, d), g, x) - 1
        elif self.norm == "l2":  # uniform in the unit ball
            direction = torch.randn((n, d), generator=g, dtype=torch.float64).to(x)
            v = direction / direction.norm(dim=1, keepdim=True) * _rand((n, 1), g, x) ** (1 / d)
        else:  # uniform in the unit l1 ball: signed exponentials over their sum plus one more
            e = -torch.log1p(-_rand((n, d + 1), g, x))
            signs = torch.where(_rand((n, d), g, x) < 0.5, -1.0, 1.0).to(x)
            v = signs * e[:, :d] / e.sum(1, keepdim=True)
        return self.project([eps * v], {}, eps), {}

    def render(self, x, params, fixed, eps):
        return jpeg(x, params[0])

    def project(self, params, fixed, eps):
        v = params[0]
        if self.norm == "linf":
            return [v.clamp(-eps, eps)]
        if self.norm == "l2":
            v = v * (eps / v.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp_max(1.0)
        return [v.clamp(-JPEG_COEFF_MAX, JPEG_COEFF_MAX)]


_KINDS: dict[str, Callable[[], _Kind]] = {
    "fog": _Fog, "gabor": _Gabor, "snow": _Snow,
    "jpeg-linf": lambda: _Jpeg("linf"), "jpeg-l2": lambda: _Jpeg("l2"), "jpeg-l1": lambda: _Jpeg("l1"),
}


def _frank_wolfe_vertex(direction: Tensor, eps: float) -> Tensor:
    """argmax of <direction, s> over ||s||_1 <= eps, |s_i| <= 2: the largest |direction| entries
    pushed to +-2 in order until the l1 budget is spent (the last one partly). (N, D) -> (N, D)."""
    order = direction.abs().argsort(dim=1, descending=True, stable=True)
    filled = JPEG_COEFF_MAX * torch.arange(direction.shape[1], device=direction.device, dtype=direction.dtype)
    sizes = (eps - filled).clamp(0, JPEG_COEFF_MAX).expand_as(direction)
    return direction.sign() * torch.zeros_like(direction).scatter(1, order, sizes)


class UARAttack:
    """A targeted unforeseen attack (Kang et al. 2019) as the paper evaluates it.

    Args:
        kind: one of ``UAR_ATTACKS``: "fog", "gabor", "snow", "jpeg-linf", "jpeg-l2", "jpeg-l1".
        distortion: the budget, the reference's eps on its scale (see the module docstring; the
            authors' values are ``DATASETS[dataset].uar_budgets[kind]``), finite and >= 0; 0 returns x
            unchanged.
        steps: optimization steps (the authors: 200), an integer in [0, 100000].
        step_size: step length on the parameters; None = distortion / sqrt(steps) (the authors'). Not
            used by "jpeg-l1" (Frank-Wolfe steps of size 1 / (step + 1)).
        seed: seeds the random start and the random kernels (same seed, same result on a device);
            draws are made on the CPU, so devices differ only by floating-point rounding.

    ``attack(model, x, y, target=None, *, callback=None) -> x_adv``: x (N, C, H, W) in [0, 1] with
    C = 1 or 3 and any H, W; y (N,) true labels; target (N,) classes to aim for, default
    ``authors_targets(y, K, after_permutation=TEST_SIZE)`` (numpy seed 99, drawn after the
    permutation of the test set as the authors' scripts do; image i of this call takes draw i).
    Returns the final iterate (N, C, H, W) in [0, 1], on x's device and dtype. Each step descends
    the target's cross-entropy (summed over the batch, so an image's steps do not depend on the
    others). The model is in eval mode during the attack and its modes are restored afterwards;
    gradients come from ``torch.autograd.grad``, so parameter ``.grad`` is never touched.
    ``callback(step, x_adv)`` sees every iterate (step 0 = the random start).
    """

    targeted = True

    def __init__(self, kind: str, distortion: float, steps: int = 200, step_size: float | None = None,
                 seed: int = 0):
        if kind not in _KINDS:
            raise ValueError(f"unknown unforeseen attack {kind!r}; known: {list(UAR_ATTACKS)}")
        check_range("distortion", distortion, hint=" (the reference's scale: DatasetInfo.uar_budgets)")
        check_range("steps", steps, integer=True)
        if step_size is not None and not (isinstance(step_size, (int, float)) and math.isfinite(step_size)
                                          and step_size > 0):
            raise ValueError(f"step_size must be None (distortion / sqrt(steps)) or finite and in (0, inf), "
                             f"got {step_size!r}")
        check_range("seed", seed, integer=True)
        self.kind, self.distortion, self.steps, self.seed = kind, float(distortion), steps, seed
        self.step_size = (float(step_size) if step_size is not None
                          else distortion / math.sqrt(steps) if steps else 0.0)

    def __repr__(self) -> str:
        return (f"UARAttack(kind={self.kind!r}, distortion={self.distortion:g}, steps={self.steps}, "
                f"step_size={self.step_size:g}, seed={self.seed})")

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, target: Tensor | None = None, *,
                 callback: Callable[[int, Tensor], None] | None = None) -> Tensor:
        return self.optimize(model, x, y, target, callback=callback)[0]

    def optimize(self, model: nn.Module, x: Tensor, y: Tensor, target: Tensor | None = None, *,
                 callback: Callable[[int, Tensor], None] | None = None) -> tuple[Tensor, list[Tensor]]:
        """The attack, also returning its final parameters (per kind: the fog weights, the Gabor
        field, the snow intensities, or the JPEG coefficient shifts v (N, D)); [] when distortion = 0."""
        y, target = check_data(x, y, target, targeted=False)
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"unforeseen attacks take images (N, C, H, W) with C = 1 or 3, got {tuple(x.shape)}")
        x = x.detach()
        if x.shape[0] == 0 or self.distortion == 0:
            return x.clone(), []
        with eval_mode(model), torch.enable_grad():
            if target is None:
                with torch.no_grad():
                    target = authors_targets(y, model(x[:1]).shape[1], after_permutation=TEST_SIZE)
            params, x_adv = self._run(model, x, y, target, callback)
        if not torch.isfinite(x_adv).all():
            raise RuntimeError(f"{self!r} produced non-finite values")
        return x_adv, params

    def _run(self, model, x, y, target, callback) -> tuple[list[Tensor], Tensor]:
        kind, eps = _KINDS[self.kind](), self.distortion
        generator = torch.Generator().manual_seed(self.seed)
        params, fixed = kind.start(x, eps, generator)
        params = [p.requires_grad_(True) for p in params]
        objective = CrossEntropy(targeted=True)  # -CE(target), ascended
        x_adv = kind.render(x, params, fixed, eps)
        if callback:
            callback(0, x_adv.detach())
        for step in range(1, self.steps + 1):
            value = objective.from_logits(model(x_adv), y, target).sum()
            grads = torch.autograd.grad(value, params)
            with torch.no_grad():
                params = self._step(kind, params, grads, step - 1)
                params = [p.requires_grad_(True) for p in kind.project(params, fixed, eps)]
            x_adv = kind.render(x, params, fixed, eps)
            if callback:
                callback(step, x_adv.detach())
        return [p.detach() for p in params], x_adv.detach()

    def _step(self, kind: _Kind, params: list[Tensor], grads: tuple[Tensor, ...], it: int) -> list[Tensor]:
        if kind.update == "sign":
            return [p + self.step_size * g.sign() for p, g in zip(params, grads)]
        flat, grad = _flat(params), _flat(list(grads))
        if kind.update == "normalized":
            flat = flat + self.step_size * grad / (grad.norm(dim=1, keepdim=True) + 1e-8)
        else:
            flat = flat + (_frank_wolfe_vertex(grad, self.distortion) - flat) / (it + 1)
        return _unflat(flat, params)
