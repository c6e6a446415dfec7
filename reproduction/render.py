"""Procedural scenes for the synthetic testbed: coloured shapes on cluttered backgrounds.

Everything a scene holds is drawn from one ``numpy.random.Generator``, so scene ``i`` of a split is
a pure function of ``(seed, split, i)``. Object identity is *shape* (12 classes, invariant to the
random rotation, scale, aspect, colour and texture); colour is drawn independently of class.

A scene is composed back to front: a low-frequency colour-noise background, clutter lines and soft
distractor blobs (none of which is a class), then 1-4 objects, each possibly occluding earlier ones
(an object whose visible part would drop below half of its area is re-placed). The instance map
records, per pixel, which object is visible there, so masks and boxes are exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Shape classes as implicit functions of local coordinates (u, v) ∈ [-1, 1]², r² = u² + v².
SHAPES: dict[str, object] = {
    "disk": lambda u, v, r2: r2 <= 1.0,
    "ring": lambda u, v, r2: (r2 <= 1.0) & (r2 >= 0.55**2),
    "square": lambda u, v, r2: np.maximum(np.abs(u), np.abs(v)) <= 0.8,
    "frame": lambda u, v, r2: (np.maximum(np.abs(u), np.abs(v)) <= 0.9) & (np.maximum(np.abs(u), np.abs(v)) >= 0.5),
    "triangle": lambda u, v, r2: (v >= -0.55) & (np.sqrt(3.0) * np.abs(u) + v <= 1.0),
    "star": lambda u, v, r2: np.sqrt(r2) <= 0.38 + 0.62 * np.abs(np.cos(2.5 * np.arctan2(v, u))) ** 3,
    "plus": lambda u, v, r2: ((np.abs(u) <= 0.3) & (np.abs(v) <= 0.95)) | ((np.abs(v) <= 0.3) & (np.abs(u) <= 0.95)),
    "crescent": lambda u, v, r2: (r2 <= 1.0) & ((u - 0.5) ** 2 + v**2 >= 0.8**2),
    "heart": lambda u, v, r2: ((1.15 * u) ** 2 + (1.15 * v + 0.25) ** 2 - 1) ** 3 - (1.15 * u) ** 2 * (1.15 * v + 0.25) ** 3 <= 0,
    "arrow": lambda u, v, r2: ((np.abs(v) <= 0.22) & (u >= -0.95) & (u <= 0.2)) | ((u >= 0.05) & (np.abs(v) <= 0.95 - u)),
    "bowtie": lambda u, v, r2: (np.abs(v) <= 0.9 * np.abs(u)) & (np.abs(u) <= 0.9),
    "semicircle": lambda u, v, r2: (r2 <= 1.0) & (v >= 0.0),
}
CLASSES: tuple[str, ...] = tuple(SHAPES)

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.12, 0.12),
    "orange": (0.97, 0.55, 0.08),
    "yellow": (0.96, 0.88, 0.12),
    "green": (0.12, 0.70, 0.22),
    "cyan": (0.08, 0.82, 0.88),
    "blue": (0.12, 0.28, 0.92),
    "purple": (0.58, 0.20, 0.82),
    "pink": (0.97, 0.45, 0.72),
    "white": (0.97, 0.97, 0.97),
    "black": (0.05, 0.05, 0.05),
}
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)
_PALETTE = np.array(list(COLOURS.values()), dtype=np.float32)
TEXTURES = ("solid", "stripes", "checker", "gradient")
MAX_OBJECTS = 4


@dataclass
class SceneSpec:
    """Knobs of the generator (all sizes scale with ``size``)."""

    size: int = 64
    objects_p: tuple[float, ...] = (0.3, 0.3, 0.25, 0.15)  # P(1), P(2), P(3), P(4) objects
    radius: tuple[float, float] = (0.16, 0.26)  # object radius as a fraction of the side
    min_visible: float = 0.5  # an occluded object keeps at least this fraction visible
    distractors: tuple[int, int] = (1, 3)  # soft blobs per scene (inclusive range)
    lines: tuple[int, int] = (0, 3)  # clutter lines per scene
    noise: float = 0.03  # pixel noise std
    _grid: tuple[np.ndarray, np.ndarray] = field(init=False, repr=False)
    _upsample: np.ndarray = field(init=False, repr=False)
    _cumulative_p: np.ndarray = field(init=False, repr=False)
    _noise: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or self.size < 16:
            raise ValueError(f"size: expected an int ≥ 16, got {self.size!r}")
        if len(self.objects_p) != MAX_OBJECTS or abs(sum(self.objects_p) - 1) > 1e-6:
            raise ValueError(f"objects_p: expected {MAX_OBJECTS} probabilities summing to 1")
        c = np.arange(self.size, dtype=np.float32) + 0.5
        self._grid = np.meshgrid(c, c, indexing="ij")  # ys, xs
        knots = np.linspace(0, self.size, 4, dtype=np.float32)  # 4×4 knots of background noise
        self._cumulative_p = np.cumsum(self.objects_p)[:-1]
        # A fixed bank of pixel-noise fields (drawing 3·size² normals per scene would dominate).
        bank = np.random.default_rng(20200614).standard_normal((32, self.size, self.size, 3), dtype=np.float32)
        self._noise = self.noise * bank
        self._upsample = np.clip(1 - np.abs(c[:, None] - knots[None, :]) / (knots[1] - knots[0]), 0, 1)


@dataclass
class Scene:
    image: np.ndarray  # uint8 [H, W, 3]
    instances: np.ndarray  # uint8 [H, W]: 0 background, j = object j (1-based) visible there
    classes: np.ndarray  # int8 [MAX_OBJECTS], -1 where there is no object
    colours: np.ndarray  # int8 [MAX_OBJECTS]
    boxes: np.ndarray  # int16 [MAX_OBJECTS, 4]: x0, y0, x1, y1 (inclusive) of the visible pixels
    areas: np.ndarray  # int32 [MAX_OBJECTS]: visible pixels
    drawn: np.ndarray  # int32 [MAX_OBJECTS]: pixels of the whole object before later ones occluded it


def _texture(kind: str, u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness factor in [0.7, 1] over the object's local coordinates."""
    if kind == "stripes":
        phi = rng.uniform(0, np.pi)
        return np.where(np.sin((u * np.cos(phi) + v * np.sin(phi)) * rng.uniform(4, 7)) > 0, 1.0, 0.72)
    if kind == "checker":
        return np.where((np.floor(u * 2) + np.floor(v * 2)) % 2 == 0, 1.0, 0.74)
    if kind == "gradient":
        return 0.7 + 0.15 * (u + 1)
    return np.ones_like(u)


def render(rng: np.random.Generator, spec: SceneSpec) -> Scene:
    """One scene drawn from ``rng``."""
    n = spec.size
    ys, xs = spec._grid
    # Background: muted low-frequency colour noise.
    knots = (rng.uniform(0.3, 0.62, size=(4, 4, 1)) + rng.uniform(-0.08, 0.08, size=(4, 4, 3))).astype(np.float32)
    up = spec._upsample
    img = np.ascontiguousarray(np.tensordot(np.tensordot(up, knots, axes=(1, 0)), up, axes=(1, 1)).transpose(0, 2, 1))
    # Clutter: thin lines of random colour.
    for _ in range(rng.integers(spec.lines[0], spec.lines[1] + 1)):
        p, q = rng.uniform(0, n, 2), rng.uniform(0, n, 2)
        (y0, x0), (y1, x1) = np.floor(np.minimum(p, q)).astype(int), np.ceil(np.maximum(p, q)).astype(int) + 1
        wy, wx = ys[y0:y1, x0:x1], xs[y0:y1, x0:x1]
        d = q - p
        t = np.clip(((wy - p[0]) * d[0] + (wx - p[1]) * d[1]) / max(float(d @ d), 1e-6), 0, 1)
        near = (wy - p[0] - t * d[0]) ** 2 + (wx - p[1] - t * d[1]) ** 2 < 0.5
        img[y0:y1, x0:x1][near] = rng.uniform(0.1, 0.9, 3)
    # Distractors: soft anisotropic blobs (no hard edge, so never a shape class).
    for _ in range(rng.integers(spec.distractors[0], spec.distractors[1] + 1)):
        cy, cx = rng.uniform(0, n, 2)
        sy, sx = rng.uniform(0.04, 0.12, 2) * n
        y0, y1 = max(int(cy - 3 * sy), 0), min(int(cy + 3 * sy) + 1, n)
        x0, x1 = max(int(cx - 3 * sx), 0), min(int(cx + 3 * sx) + 1, n)
        alpha = 0.75 * np.exp(-0.5 * (((ys[y0:y1, x0:x1] - cy) / sy) ** 2 + ((xs[y0:y1, x0:x1] - cx) / sx) ** 2))
        patch = img[y0:y1, x0:x1]
        patch += alpha[..., None] * (rng.uniform(0, 1, 3).astype(np.float32) - patch)

    instances = np.zeros((n, n), dtype=np.uint8)
    classes = np.full(MAX_OBJECTS, -1, dtype=np.int8)
    colours = np.full(MAX_OBJECTS, -1, dtype=np.int8)
    full_area = np.zeros(MAX_OBJECTS, dtype=np.int64)
    visible = np.zeros(MAX_OBJECTS, dtype=np.int64)
    count = int(np.searchsorted(spec._cumulative_p, rng.random(), side="right")) + 1
    placed = 0
    for _ in range(count):
        cls = int(rng.integers(len(CLASSES)))
        for _attempt in range(8):
            r = rng.uniform(*spec.radius) * n
            cy, cx = rng.uniform(0.12 * n, 0.88 * n, 2)
            theta, aspect = rng.uniform(0, 2 * np.pi), rng.uniform(0.85, 1.15)
            y0, y1 = max(int(cy - 1.2 * r), 0), min(int(cy + 1.2 * r) + 2, n)
            x0, x1 = max(int(cx - 1.2 * r), 0), min(int(cx + 1.2 * r) + 2, n)
            dy, dx = ys[y0:y1, x0:x1] - cy, xs[y0:y1, x0:x1] - cx
            c, s = np.cos(theta), np.sin(theta)
            u = (dx * c + dy * s) / (r * aspect)
            v = (-dx * s + dy * c) * aspect / r
            inside = SHAPES[CLASSES[cls]](u, v, u * u + v * v)
            area = int(inside.sum())
            if area < 12:
                continue
            window = instances[y0:y1, x0:x1]
            covered = np.bincount(window[inside], minlength=MAX_OBJECTS + 1)[1 : placed + 1]
            remaining = visible[:placed] - covered
            if placed and np.any(remaining < spec.min_visible * full_area[:placed]):
                continue
            visible[:placed] = remaining
            colour = int(rng.integers(len(COLOUR_NAMES)))
            rgb = np.clip(_PALETTE[colour] + rng.uniform(-0.05, 0.05, 3), 0, 1)
            shade = _texture(TEXTURES[rng.integers(len(TEXTURES))], u, v, rng)
            img[y0:y1, x0:x1][inside] = (shade[..., None] * rgb)[inside]
            window[inside] = placed + 1
            classes[placed], colours[placed], full_area[placed], visible[placed] = cls, colour, area, area
            placed += 1
            break
    img += spec._noise[rng.integers(len(spec._noise))]
    image = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)

    boxes = np.full((MAX_OBJECTS, 4), -1, dtype=np.int16)
    areas = np.zeros(MAX_OBJECTS, dtype=np.int32)
    for j in range(placed):
        yy, xx = np.nonzero(instances == j + 1)
        areas[j] = yy.size
        boxes[j] = (xx.min(), yy.min(), xx.max(), yy.max())
    return Scene(image, instances, classes, colours, boxes, areas, full_area.astype(np.int32))


def caption(classes: np.ndarray, colours: np.ndarray, boxes: np.ndarray, areas: np.ndarray) -> str:
    """'a red star left of an orange ring': the one or two objects with the largest visible area,
    related by where their box centres lie (the larger one first). Smaller objects go unnamed, so the
    captioning notebook can compare saliency on named and unnamed objects."""
    order = [j for j in np.argsort(-areas, kind="stable") if classes[j] >= 0][:2]
    names = [f"{_article(COLOUR_NAMES[colours[j]])} {COLOUR_NAMES[colours[j]]} {CLASSES[classes[j]]}" for j in order]
    if not names:
        return "nothing"
    text = names[0]
    if len(order) > 1:
        a, b = boxes[order[0]].astype(float), boxes[order[1]].astype(float)
        dx = (a[0] + a[2] - b[0] - b[2]) / 2
        dy = (a[1] + a[3] - b[1] - b[3]) / 2
        relation = ("left of" if dx < 0 else "right of") if abs(dx) >= abs(dy) else ("above" if dy < 0 else "below")
        text += f" {relation} {names[1]}"
    return text


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"
