"""Pathfinder image generator (LRA-like): draws the task's images and writes them in the LRA layout.

:func:`sample` draws images in memory; :func:`generate` (the ``s4op data pathfinder`` command) writes them
in the LRA release's layout, with a ``split.json``, which :func:`s4op_kernels.data.pathfinder.load` reads
(layout, metadata columns and splits: see :mod:`s4op_kernels.data.pathfinder`, whose layout names
:data:`~s4op_kernels.data.pathfinder.DIFFICULTIES`, :func:`~s4op_kernels.data.pathfinder.difficulty_folder`
and :data:`~s4op_kernels.data.pathfinder.SPLIT_FILE` this module uses; the reader does not import it).

The model (re-implemented from the description of Linsley et al. 2018 / LRA, not their code): two target
"snakes", each a chain of ``contour_length`` straight steps of ``paddle_length + paddle_gap`` pixels whose
direction turns at every step by a bounded random angle with LRA's continuity prior (density
``cos^2(continuity * turn)`` for ``|turn| < 90 / continuity`` degrees), sampled among the directions that
still fit (backing off when none does). Each step is drawn as a paddle of ``paddle_length`` pixels centred
in it, leaving ``paddle_gap`` dark pixels between paddles, as in LRA. The two target snakes grow in
alternation from starts ``seed_distance`` pixels apart, so both classes have marker discs at similar
distances; distractor snakes of ``distractor_length`` steps fill the rest. Different snakes never touch:
every new step is checked against a per-pixel owner map so that the rendered footprints of two different
snakes are never 8-adjacent (their non-zero pixels are separated by at least one black pixel). Two marker
discs are drawn: at the start of one target snake, and at the end of the same snake (label 1) or of the
other target snake (label 0); each label has probability 1/2.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from s4op_kernels.data.pathfinder import DIFFICULTIES, SPLIT_FILE, difficulty_folder

_SQRT2 = math.sqrt(2.0)
_FREE = -1


# ---------------------------------------------------------------------------------------------------
# Generator
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PathfinderConfig:
    """Geometry of generated images; all lengths in pixels. Build it with :func:`make_config`."""

    size: int
    contour_length: int
    distractor_length: int
    num_distractors: int
    paddle_length: float
    paddle_gap: float
    thickness: float
    continuity: float  # LRA's: turns have density cos^2(continuity * turn), |turn| < 90 deg / continuity
    marker_radius: float
    seed_distance: float
    softness: float = 0.5  # width of the anti-aliased edge of strokes and discs
    candidates: int = 16  # proposals tried per step before backtracking one step

    @property
    def max_turn(self) -> float:
        """The largest turn between two consecutive steps, in radians."""
        return math.pi / 2 / self.continuity

    @property
    def step(self) -> float:
        return self.paddle_length + self.paddle_gap

    @property
    def stroke_radius(self) -> float:
        """Pixels with centre within this distance of a paddle are non-zero (its footprint)."""
        return self.thickness / 2 + self.softness

    @property
    def disc_radius(self) -> float:
        return self.marker_radius + self.softness

    @property
    def border(self) -> float:
        # every path point stays this far inside the image, so a disc at an end is never clipped
        return self.disc_radius


def make_config(size: int = 32, difficulty: str = "hard", *, contour_length: Optional[int] = None,
                distractor_length: Optional[int] = None, num_distractors: Optional[int] = None,
                paddle_length: Optional[float] = None, paddle_gap: Optional[float] = None,
                thickness: Optional[float] = None, continuity: Optional[float] = None,
                marker_radius: Optional[float] = None, seed_distance: Optional[float] = None,
                candidates: int = 16) -> PathfinderConfig:
    """Generator settings with LRA-like defaults for ``size`` (32, 64, 128, ...) and ``difficulty``.

    Defaults at 32x32 follow LRA's pathfinder32 (paddle 2 px + gap 1 px, marker radius 1.5, seeds 7 px
    apart, distractors of ``contour_length // 3`` steps totalling about 20 steps, continuity 1.0 i.e.
    turns up to 90 degrees); lengths grow with ``s = size / 32`` (paddles, gaps by ``s``; seed distance by
    ``s**0.75``; stroke width, marker radius and distractor budget by ``sqrt(s)``), close to LRA's
    64/128/256 settings. Above 32 px continuity defaults to 1.4 (turns up to 64 degrees): LRA's 1.8 there
    (turns up to 50 degrees) works too (pass it) but about half of the candidate images then dead-end,
    which makes generation about twice as slow.
    """
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {list(DIFFICULTIES)}, got {difficulty!r}")
    if size < 16:
        raise ValueError(f"size must be >= 16 pixels, got {size}")
    s = size / 32.0
    contour_length = DIFFICULTIES[difficulty][1] if contour_length is None else int(contour_length)
    if contour_length < 1:
        raise ValueError(f"contour_length must be >= 1, got {contour_length}")
    distractor_length = max(1, contour_length // 3) if distractor_length is None else int(distractor_length)
    if distractor_length < 1:
        raise ValueError(f"distractor_length must be >= 1, got {distractor_length}")
    if num_distractors is None:
        num_distractors = int(round(20 * math.sqrt(s))) // distractor_length
    if num_distractors < 0:
        raise ValueError(f"num_distractors must be >= 0, got {num_distractors}")
    cfg = PathfinderConfig(
        size=int(size), contour_length=contour_length, distractor_length=distractor_length,
        num_distractors=int(num_distractors),
        paddle_length=2.0 * s if paddle_length is None else float(paddle_length),
        paddle_gap=1.0 * s if paddle_gap is None else float(paddle_gap),
        thickness=0.5 * math.sqrt(s) if thickness is None else float(thickness),
        continuity=(1.0 if size <= 32 else 1.4) if continuity is None else float(continuity),
        marker_radius=1.5 * math.sqrt(s) if marker_radius is None else float(marker_radius),
        seed_distance=7.0 * s ** 0.75 if seed_distance is None else float(seed_distance),
        candidates=int(candidates))
    if cfg.paddle_length <= 0 or cfg.paddle_gap < 0 or cfg.thickness <= 0 or cfg.marker_radius <= 0:
        raise ValueError(f"need paddle_length > 0, paddle_gap >= 0, thickness > 0, marker_radius > 0; got {cfg}")
    if not cfg.continuity >= 0.5:
        raise ValueError(f"continuity must be >= 0.5 (turns below 180 degrees), got {cfg.continuity}")
    if cfg.candidates < 1:
        raise ValueError(f"candidates must be >= 1, got {cfg.candidates}")
    if cfg.seed_distance < 2 * (cfg.disc_radius + _SQRT2):
        raise ValueError(f"seed_distance={cfg.seed_distance} is too small for two separate discs of radius "
                         f"{cfg.marker_radius}; use >= {2 * (cfg.disc_radius + _SQRT2):.2f}")
    return cfg


class _Canvas:
    """Per-pixel owner map of a batch of images, padded so that every window stays inside the array.

    owner_snake / owner_part: (B, side, side) int16 with side = size + 2 pad, stored flat; -1 = free.
    Part 0 is a snake's start (disc), parts 1..n its steps, n + 1 its end disc.
    """

    def __init__(self, batch: int, cfg: PathfinderConfig):
        self.cfg = cfg
        # the largest region a check looks at: half a step plus the clearance around it, or a disc
        reach = max(cfg.step / 2 + cfg.stroke_radius, cfg.disc_radius) + _SQRT2
        self.half = int(math.ceil(reach)) + 1
        self.pad = self.half + 1
        self.side = cfg.size + 2 * self.pad
        self.owner_snake = np.full(batch * self.side ** 2, _FREE, dtype=np.int16)
        self.owner_part = np.zeros(batch * self.side ** 2, dtype=np.int16)
        offs = np.arange(-self.half, self.half + 1)
        dy, dx = (o.ravel() for o in np.meshgrid(offs, offs, indexing="ij"))
        self.dy, self.dx = dy.astype(np.float32), dx.astype(np.float32)
        self.doff = dy * self.side + dx  # flat offsets of the window around its centre pixel
        # allowed contact with the same snake's recent parts (a step touches its neighbours; a disc reaches
        # further back); older parts of the same snake must keep clear, which prevents tight self-loops
        self.back = 1 + int(math.ceil((cfg.disc_radius + _SQRT2 + cfg.stroke_radius) / cfg.step))

    def window(self, idx: np.ndarray, a: np.ndarray, b: np.ndarray):
        """Flat indices and squared distances to segment a->b of the pixels of a window around its middle.

        idx: (m,) images; a, b: (m, 2) (row, col) image coordinates (a == b: a point). Returns
        flat: (m, W) int64 indices into the owner maps and d2: (m, W) float32 squared distances of the
        pixel centres to the segment.
        """
        mid = np.floor((a + b) / 2)
        centre = (idx * self.side + mid[:, 0].astype(np.int64) + self.pad) * self.side + mid[:, 1].astype(np.int64) \
            + self.pad
        flat = centre[:, None] + self.doff[None, :]
        ry = (mid[:, :1] - a[:, :1]).astype(np.float32) + self.dy[None, :]  # pixel centre minus a
        rx = (mid[:, 1:] - a[:, 1:]).astype(np.float32) + self.dx[None, :]
        ab = (b - a).astype(np.float32)
        ab2 = np.maximum((ab ** 2).sum(1, keepdims=True), 1e-12)
        t = np.clip((ry * ab[:, :1] + rx * ab[:, 1:]) / ab2, 0.0, 1.0)
        ey, ex = ry - t * ab[:, :1], rx - t * ab[:, 1:]
        return flat, ey * ey + ex * ex

    def is_free(self, idx, a, b, radius, snake: int, part) -> np.ndarray:
        """(m,) True where no pixel of another snake (or an old part of this one) lies within
        ``radius + sqrt(2)`` of segment a->b, so that a footprint of ``radius`` around it is not 8-adjacent
        to any other snake's footprint. radius, part: scalars or (m,)."""
        flat, d2 = self.window(idx, a, b)
        osn = self.owner_snake[flat]
        opt = self.owner_part[flat]
        near = d2 <= (np.reshape(radius, (-1, 1)) + _SQRT2) ** 2
        clash = (osn != _FREE) & ((osn != snake) | (opt < np.reshape(part, (-1, 1)) - self.back))
        return ~(near & clash).any(axis=1)

    def claim(self, idx, a, b, radius, snake: int, part) -> None:
        """Mark the free pixels within ``radius`` of segment a->b as part ``part`` of ``snake``."""
        flat, d2 = self.window(idx, a, b)
        part = np.broadcast_to(np.reshape(part, (-1, 1)), flat.shape)
        # only free pixels: a pixel keeps the part that took it first, so releasing a part on backtracking
        # never opens a hole in an older part's footprint
        take = (d2 <= np.reshape(radius, (-1, 1)) ** 2) & (self.owner_snake[flat] == _FREE)
        self.owner_snake[flat[take]] = snake
        self.owner_part[flat[take]] = part[take]

    def release(self, idx, a, b, snake: int, part) -> None:
        """Free the pixels that part ``part`` (scalar or (m,)) of ``snake`` (segment a->b) took in images idx."""
        flat, _ = self.window(idx, a, b)
        mine = (self.owner_snake[flat] == snake) & (self.owner_part[flat] == np.reshape(part, (-1, 1)))
        self.owner_snake[flat[mine]] = _FREE


def _inside(cfg: PathfinderConfig, p: np.ndarray) -> np.ndarray:
    lo, hi = cfg.border, cfg.size - 1 - cfg.border
    return ((p >= lo) & (p <= hi)).all(axis=1)


def _draw(img: np.ndarray, canvas: _Canvas, idx, a, b, radius_core: float, softness: float) -> None:
    """Max-blend an anti-aliased stroke a->b (a disc when a == b) into img, the flat (B * side * side,)
    float32 canvas; pixels within radius_core get 1, falling linearly to 0 over ``softness``."""
    flat, d2 = canvas.window(idx, a, b)
    val = np.clip((radius_core + softness - np.sqrt(d2)) / softness, 0.0, 1.0)
    img[flat] = np.maximum(img[flat], val)


def _turns(rng, cfg: PathfinderConfig, shape) -> np.ndarray:
    """Turn angles with LRA's continuity prior: density proportional to cos^2(continuity * turn) on
    ``|turn| < max_turn`` (rejection sampling from the uniform; acceptance 1/2)."""
    out = np.empty(int(np.prod(shape)))
    filled = 0
    while filled < out.size:
        t = rng.uniform(-cfg.max_turn, cfg.max_turn, size=2 * (out.size - filled) + 8)
        t = t[rng.random(t.size) < np.cos(cfg.continuity * t) ** 2][: out.size - filled]
        out[filled:filled + t.size] = t
        filled += t.size
    return out.reshape(shape)


class _Snake:
    """One snake being grown in every image of a batch, all images advancing together.

    Each :meth:`advance` gives every growing image ``candidates`` proposals for its next point (the start,
    then one step with a turn from :func:`_turns`) and takes the first that fits, which samples the prior
    restricted to the free space; when none fits the image backs off (releasing the steps it undoes: 1, 1,
    2, 2, 3, ... steps on successive dead ends, past the start meaning a fresh start), and after
    ``2 n_steps + 10`` dead ends (``n_steps`` for a distractor) it gives up. ``near``
    (B, 2) places the start ``seed_distance`` from these points (the second target snake), None anywhere.

    path: (B, n_steps + 1, 2) points; steps: (B,) steps placed (-1: not started).
    """

    def __init__(self, canvas: _Canvas, snake: int, n_steps: int, target: bool, active: np.ndarray):
        self.canvas, self.snake, self.n_steps, self.target = canvas, snake, n_steps, target
        B = active.shape[0]
        self.path = np.zeros((B, n_steps + 1, 2))
        self.heading = np.zeros((B, n_steps + 1))
        self.steps = np.full(B, -1)
        self.backs = np.zeros(B, dtype=np.int64)
        self.growing = active.copy()
        self.max_back = 2 * n_steps + 10 if target else n_steps
        self.start_radius = canvas.cfg.disc_radius if target else canvas.cfg.stroke_radius

    @property
    def complete(self) -> np.ndarray:
        return self.steps == self.n_steps

    def advance(self, rng, mask: np.ndarray, near: Optional[np.ndarray] = None) -> None:
        """One proposal round for the growing images where ``mask`` (B,) holds."""
        canvas, snake, n_steps = self.canvas, self.snake, self.n_steps
        cfg = canvas.cfg
        K = cfg.candidates
        idx = np.flatnonzero(self.growing & mask)
        m = idx.size
        if m == 0:
            return
        kk = self.steps[idx]
        new = kk < 0
        # K proposals per image: (m, K) headings, start points a and end points b
        h = np.where(new[:, None], rng.uniform(-np.pi, np.pi, size=(m, K)),
                     self.heading[idx, np.maximum(kk, 0)][:, None] + _turns(rng, cfg, (m, K)))
        if near is None:
            anywhere = rng.uniform(cfg.border, cfg.size - 1 - cfg.border, size=(m, K, 2))
        else:
            ang = rng.uniform(0, 2 * np.pi, size=(m, K))
            anywhere = near[idx][:, None, :] + cfg.seed_distance * np.stack([np.sin(ang), np.cos(ang)], axis=-1)
        a = np.where(new[:, None, None], anywhere, self.path[idx, np.maximum(kk, 0)][:, None, :])
        step = np.where(new, 0.0, cfg.step)[:, None, None]
        b = a + step * np.stack([np.sin(h), np.cos(h)], axis=-1)
        a, b, h = a.reshape(-1, 2), b.reshape(-1, 2), h.reshape(-1)
        part = np.repeat(kk + 1, K)
        radius = np.where(part == 0, self.start_radius, cfg.stroke_radius)
        rep_idx = np.repeat(idx, K)

        # try the proposals in order, each only for the images still without a fitting one
        choice = np.full(m, -1)
        for j in range(K):
            todo = np.flatnonzero(choice < 0)
            if todo.size == 0:
                break
            c = todo * K + j
            fits = _inside(cfg, a[c]) & _inside(cfg, b[c])
            f = np.flatnonzero(fits)
            fits[f] = canvas.is_free(rep_idx[c[f]], a[c[f]], b[c[f]], radius[c[f]], snake, part[c[f]])
            if self.target:  # the end must leave room for a marker disc
                f = np.flatnonzero(fits & (part[c] == n_steps))
                fits[f] = canvas.is_free(rep_idx[c[f]], b[c[f]], b[c[f]], cfg.disc_radius, snake, n_steps + 1)
            choice[todo[fits]] = c[fits]
        ok = choice >= 0

        acc, ia = choice[ok], idx[ok]
        canvas.claim(ia, a[acc], b[acc], radius[acc], snake, part[acc])
        newk = kk[ok] + 1
        if self.target and (newk == n_steps).any():
            e = newk == n_steps
            canvas.claim(ia[e], b[acc[e]], b[acc[e]], cfg.disc_radius, snake, n_steps + 1)
        self.path[ia, newk] = b[acc]
        self.heading[ia, newk] = h[acc]
        self.steps[ia] = newk
        self.growing[ia[newk == n_steps]] = False

        stuck = idx[~ok]
        self.growing[stuck[self.backs[stuck] >= self.max_back]] = False
        stuck = stuck[self.backs[stuck] < self.max_back]
        self.backs[stuck] += 1
        # back off further each time an image is stuck again (1, 1, 2, 2, 3, ... steps), so that it does
        # not keep re-entering the same dead end; backing off past the start restarts the snake elsewhere
        todo = 1 + (self.backs[stuck] - 1) // 2
        while stuck.size:
            stuck, todo = stuck[self.steps[stuck] >= 0], todo[self.steps[stuck] >= 0]
            if not stuck.size:
                break
            ku = self.steps[stuck]
            canvas.release(stuck, self.path[stuck, np.maximum(ku - 1, 0)], self.path[stuck, ku], snake, ku)
            self.steps[stuck] -= 1
            todo -= 1
            stuck, todo = stuck[todo > 0], todo[todo > 0]


def _render_batch(rng, cfg: PathfinderConfig, batch: int):
    """Generate a batch of candidate images; returns images (m, H, W) uint8, labels (m,), markers (m, 2, 2)
    for the m candidates in which both target snakes could be completed."""
    canvas = _Canvas(batch, cfg)
    everyone = np.ones(batch, dtype=bool)
    # the two target snakes grow in alternation, so that neither fills the other's room first; an image
    # in which either gets stuck for good is dropped
    t0 = _Snake(canvas, 0, cfg.contour_length, True, everyone)
    t1 = _Snake(canvas, 1, cfg.contour_length, True, everyone)
    while True:
        alive = ~((~t0.growing & ~t0.complete) | (~t1.growing & ~t1.complete))
        t0.growing &= alive
        t1.growing &= alive
        if not (t0.growing.any() or t1.growing.any()):
            break
        t0.advance(rng, alive)
        t1.advance(rng, alive & (t0.steps >= 0), near=t0.path[:, 0])  # starts seed_distance from t0's start
    alive = t0.complete & t1.complete
    snakes = [t0, t1]
    for s in range(2, 2 + cfg.num_distractors):
        d = _Snake(canvas, s, cfg.distractor_length, False, alive)
        while d.growing.any():  # a distractor that gets stuck keeps the steps it has
            d.advance(rng, alive)
        snakes.append(d)

    labels = rng.integers(0, 2, size=batch)
    first = rng.integers(0, 2, size=batch)  # which target snake carries the start marker
    other = np.where(labels == 1, first, 1 - first)
    rows = np.arange(batch)
    starts = np.stack([t0.path[:, 0], t1.path[:, 0]], axis=1)  # (B, 2 targets, 2)
    ends = np.stack([t0.path[:, -1], t1.path[:, -1]], axis=1)
    markers = np.stack([starts[rows, first], ends[rows, other]], axis=1)  # (B, 2 markers, 2)

    side = canvas.side
    img = np.zeros(batch * side * side, dtype=np.float32)
    lo_frac = cfg.paddle_gap / 2 / cfg.step  # the paddle is the middle paddle_length of each step
    for sn in snakes:
        for j in range(1, sn.n_steps + 1):
            idx = np.flatnonzero(alive & (sn.steps >= j))
            a, b = sn.path[idx, j - 1], sn.path[idx, j]
            _draw(img, canvas, idx, a + lo_frac * (b - a), b - lo_frac * (b - a), cfg.thickness / 2, cfg.softness)
    for m in range(2):
        _draw(img, canvas, rows, markers[:, m], markers[:, m], cfg.marker_radius, cfg.softness)
    p = canvas.pad
    img = img.reshape(batch, side, side)[:, p:p + cfg.size, p:p + cfg.size]
    images = np.round(img * 255.0).astype(np.uint8)
    return images[alive], labels[alive].astype(np.int64), markers[alive]


def _sample_with(rng, n: int, cfg: PathfinderConfig) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    imgs, labels, markers = [], [], []
    have, rounds, rate = 0, 0, 0.9
    side = _Canvas(0, cfg).side
    while have < n:
        rounds += 1
        if rounds > 5 and have == 0:
            raise RuntimeError(f"no image could be completed with {cfg}; shorten contour_length or the paddles, "
                               f"or use a larger size")
        # candidates per round: what is missing over the acceptance rate seen so far, within ~100 MB of
        # owner maps and canvas
        want = (n - have) / max(rate, 0.1) * 1.05 + 8
        batch = int(min(want, max(16, (1 << 23) // (side * side))))
        im, lb, mk = _render_batch(rng, cfg, batch)
        rate = max(im.shape[0], 1) / batch
        imgs.append(im)
        labels.append(lb)
        markers.append(mk)
        have += im.shape[0]
    return np.concatenate(imgs)[:n], np.concatenate(labels)[:n], np.concatenate(markers)[:n]


def sample(n: int, seed: int, **options) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Generate ``n`` Pathfinder images in memory.

    Returns images: (n, size, size) uint8, labels: (n,) int64 (1 = the discs are on one snake) and
    markers: (n, 2, 2) float64 (row, col) centres of the two discs. ``options`` are those of
    :func:`make_config` (or ``config=`` a :class:`PathfinderConfig`). The same ``seed`` and options give
    the same arrays.
    """
    cfg = options.pop("config", None)
    if cfg is None:
        cfg = make_config(**options)
    elif options:
        raise TypeError(f"pass either config= or the options of make_config, not both (got {sorted(options)})")
    return _sample_with(np.random.default_rng(seed), n, cfg)


def generate(out, train: int, val: int, test: int, seed: int = 0, *, difficulty: str = "hard",
             size: int = 32, images_per_batch: int = 1000, **options) -> Path:
    """Write ``train + val + test`` images in the LRA layout under ``out`` and return ``out``.

    Files: ``<out>/<folder>/imgs/<b>/sample_<i>.png``, ``<out>/<folder>/metadata/<b>.npy`` (text lines
    ``imgs/<b> sample_<i>.png <i> <label> <continuity> <contour_length> <distractor_length> <paddle_length>
    <thickness> <paddle_gap> 1``, the column order of LRA's metadata) and ``<out>/<folder>/split.json``
    (the requested split sizes and ``split_seed=seed``, see the reader's docstring,
    :mod:`s4op_kernels.data.pathfinder`). ``<folder>`` is LRA's name for ``difficulty`` (see
    :func:`~s4op_kernels.data.pathfinder.difficulty_folder`). ``options`` go to :func:`make_config`.
    """
    from PIL import Image

    if images_per_batch < 1:
        raise ValueError(f"images_per_batch must be >= 1, got {images_per_batch}")
    cfg = make_config(size=size, difficulty=difficulty, **options)
    n = train + val + test
    rng = np.random.default_rng(seed)
    root = Path(out) / difficulty_folder(difficulty, cfg.contour_length)
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    extra = (f"{cfg.continuity:g} {cfg.contour_length} {cfg.distractor_length} {cfg.paddle_length:g} "
             f"{cfg.thickness:g} {cfg.paddle_gap:g} 1")
    for b, lo in enumerate(range(0, n, images_per_batch)):
        # one batch file at a time, so memory stays bounded for large sets and sizes
        images, labels, _ = _sample_with(rng, min(images_per_batch, n - lo), cfg)
        folder = root / "imgs" / str(b)
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        for i in range(images.shape[0]):
            name = f"sample_{i}.png"
            Image.fromarray(images[i]).save(folder / name, compress_level=1)
            lines.append(f"imgs/{b} {name} {i} {int(labels[i])} {extra}\n")
        (root / "metadata" / f"{b}.npy").write_text("".join(lines))
    split = {"train": train, "val": val, "test": test, "split_seed": seed, "config": asdict(cfg)}
    (root / SPLIT_FILE).write_text(json.dumps(split, indent=1) + "\n")
    return Path(out)


__all__ = ["PathfinderConfig", "make_config", "sample", "generate"]
