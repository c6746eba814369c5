"""Drawing a flow as a picture, in pure Python: SVG always, PNG with Pillow.

No Graphviz binary is needed. The layout is the classic layered one, kept
small: a node's layer is its longest distance from a root, nodes in a layer
are ordered by the mean position of their parents (one sweep down), and each
layer is centred. Flows are small, so this reads well without edge routing.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

from smmf_flow.errors import MissingDependency
from smmf_flow.flowfile.graph import View

if TYPE_CHECKING:  # Pillow is imported only to draw a PNG
    from PIL import ImageDraw

CHAR_W, LINE_H, PAD_X, PAD_Y = 7.0, 15.0, 14.0, 8.0
GAP_X, GAP_Y, MARGIN = 28.0, 46.0, 20.0
FILL = {"box": "#eef3fb", "diamond": "#fdf3e1", "round": "#e9f7ee"}


@dataclass(slots=True)
class Placed:
    name: str
    lines: list[str]
    shape: str
    x: float  # centre
    y: float  # top
    w: float
    h: float


def layout(view: View) -> tuple[dict[str, Placed], float, float]:
    """Boxes placed in layers; returns them with the picture's width and height."""
    parents: dict[str, list[str]] = {b.name: [] for b in view.boxes}
    for arrow in view.arrows:
        parents[arrow.down].append(arrow.up)
    depth: dict[str, int] = {}
    for box in view.boxes:  # boxes come in topological order
        depth[box.name] = 1 + max((depth[p] for p in parents[box.name]), default=-1)
    layers: list[list[str]] = [[] for _ in range(max(depth.values(), default=0) + 1)]
    for box in view.boxes:
        layers[depth[box.name]].append(box.name)
    by_name = {b.name: b for b in view.boxes}
    placed: dict[str, Placed] = {}
    for name, box in by_name.items():
        lines = [box.name, f"({box.kind})"] + ([box.detail] if box.detail else [])
        w = max(len(t) for t in lines) * CHAR_W + 2 * PAD_X
        h = len(lines) * LINE_H + 2 * PAD_Y
        if box.shape == "diamond":
            w, h = w * 1.35, h * 1.3
        placed[name] = Placed(name, lines, box.shape, 0.0, 0.0, w, h)
    widths = [sum(placed[n].w for n in layer) + GAP_X * (len(layer) - 1) for layer in layers]
    width = max(widths, default=0) + 2 * MARGIN
    y = MARGIN
    for layer in layers:
        layer.sort(key=lambda n: _mean([placed[p].x for p in parents[n]], default=0.0))
        x = (width - sum(placed[n].w for n in layer) - GAP_X * (len(layer) - 1)) / 2
        for name in layer:
            spot = placed[name]
            spot.x, spot.y = x + spot.w / 2, y
            x += spot.w + GAP_X
        y += max(placed[n].h for n in layer) + GAP_Y
    return placed, width, y - GAP_Y + MARGIN


def _mean(values: list[float], default: float) -> float:
    return sum(values) / len(values) if values else default


# --- SVG -----------------------------------------------------------------------------


def render_svg(view: View) -> str:
    """The flow as a standalone SVG document."""
    boxes, width, height = layout(view)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
        'font-family="Helvetica, Arial, sans-serif" font-size="12">',
        f"<title>{escape(view.name)}</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" '
        'markerHeight="8" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
        'fill="#555"/></marker></defs>',
    ]
    for arrow in view.arrows:
        a, b = boxes[arrow.up], boxes[arrow.down]
        dash = ' stroke-dasharray="5,4"' if arrow.default else ""
        stroke = 2.4 if arrow.stream else 1.3
        out.append(
            f'<line x1="{a.x:.1f}" y1="{a.y + a.h:.1f}" x2="{b.x:.1f}" y2="{b.y:.1f}" '
            f'stroke="#555" stroke-width="{stroke}"{dash} marker-end="url(#arrow)"/>'
        )
        if arrow.label:
            mx, my = (a.x + b.x) / 2, (a.y + a.h + b.y) / 2
            out.append(
                f'<text x="{mx + 4:.1f}" y="{my:.1f}" font-size="10" fill="#835">'
                f"{escape(arrow.label)}</text>"
            )
    for box in boxes.values():
        out.append(_svg_shape(box))
        top = box.y + box.h / 2 - (len(box.lines) - 1) * LINE_H / 2 + 4
        for i, text in enumerate(box.lines):
            style = (
                ' font-weight="bold"'
                if i == 0
                else ' fill="#555" font-style="italic"'
                if i == 1
                else ' fill="#333" font-size="11"'
            )
            out.append(
                f'<text x="{box.x:.1f}" y="{top + i * LINE_H:.1f}" text-anchor="middle"'
                f"{style}>{escape(text)}</text>"
            )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _svg_shape(box: Placed) -> str:
    fill = FILL[box.shape]
    if box.shape == "diamond":
        cx, cy, hw = box.x, box.y + box.h / 2, box.w / 2
        points = f"{cx},{box.y} {cx + hw},{cy} {cx},{box.y + box.h} {cx - hw},{cy}"
        return f'<polygon points="{points}" fill="{fill}" stroke="#4a6fa5"/>'
    radius = box.h / 2 if box.shape == "round" else 6
    return (
        f'<rect x="{box.x - box.w / 2:.1f}" y="{box.y:.1f}" width="{box.w:.1f}" '
        f'height="{box.h:.1f}" rx="{radius:.1f}" fill="{fill}" stroke="#4a6fa5"/>'
    )


# --- PNG -----------------------------------------------------------------------------


def render_png(view: View, scale: float = 2.0) -> bytes:
    """The flow as PNG bytes, drawn with Pillow (``pip install pillow``)."""
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        raise MissingDependency(
            "PNG output needs Pillow (pip install pillow); SVG, Mermaid and DOT output need nothing"
        ) from None
    boxes, width, height = layout(view)
    image = Image.new("RGB", (int(width * scale), int(height * scale)), "white")
    draw = ImageDraw.Draw(image)
    try:
        font = ImageFont.load_default(size=12 * scale)
    except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
        font = ImageFont.load_default()
    s = scale
    for arrow in view.arrows:
        a, b = boxes[arrow.up], boxes[arrow.down]
        start, end = (a.x * s, (a.y + a.h) * s), (b.x * s, b.y * s)
        draw.line(
            [start, end], fill="#555555", width=max(1, int((2.4 if arrow.stream else 1.3) * s))
        )
        _arrowhead(draw, start, end, 7 * s)
        if arrow.label:
            mid = ((start[0] + end[0]) / 2 + 4 * s, (start[1] + end[1]) / 2 - 6 * s)
            draw.text(mid, arrow.label, fill="#883355", font=font)
    for box in boxes.values():
        left, top = (box.x - box.w / 2) * s, box.y * s
        right, bottom = (box.x + box.w / 2) * s, (box.y + box.h) * s
        if box.shape == "diamond":
            cx, cy = box.x * s, (box.y + box.h / 2) * s
            draw.polygon(
                [(cx, top), (right, cy), (cx, bottom), (left, cy)],
                fill=FILL["diamond"],
                outline="#4a6fa5",
            )
        else:
            radius = box.h / 2 * s if box.shape == "round" else 6 * s
            draw.rounded_rectangle(
                [left, top, right, bottom],
                radius=radius,
                fill=FILL[box.shape],
                outline="#4a6fa5",
                width=int(s),
            )
        first = (box.y + box.h / 2 - (len(box.lines) - 1) * LINE_H / 2) * s
        for i, text in enumerate(box.lines):
            draw.text(
                (box.x * s, first + i * LINE_H * s),
                text,
                anchor="mm",
                fill="#000000" if i == 0 else "#555555",
                font=font,
            )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _arrowhead(
    draw: ImageDraw.ImageDraw, start: tuple[float, float], end: tuple[float, float], size: float
) -> None:
    import math

    angle = math.atan2(end[1] - start[1], end[0] - start[0])
    left = (end[0] - size * math.cos(angle - 0.4), end[1] - size * math.sin(angle - 0.4))
    right = (end[0] - size * math.cos(angle + 0.4), end[1] - size * math.sin(angle + 0.4))
    draw.polygon([end, left, right], fill="#555555")


__all__ = ["layout", "render_png", "render_svg"]
