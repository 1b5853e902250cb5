"""The funnel chart, drawn off-screen with matplotlib into a PNG (for the page and for /stats).

A Figure made directly, not through pyplot: no global state, so charts drawn in threads at the
same time do not mix.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from conversations.services.stats import STEP_TITLES, FlowFunnel
from conversations.text import Text, _

# Pixels: wide enough for a dozen step names on a laptop, readable on a phone once scaled down.
WIDTH, HEIGHT, DPI = 960, 540, 96
# Colours that stay distinct for the common colour blindnesses (Okabe–Ito).
REACHED, ANSWERED, ABANDONED = "#0072B2", "#56B4E9", "#D55E00"
LEGEND = (_("Ont vu la question"), _("Ont répondu"), _("Se sont arrêtés là"))


def funnel_chart(funnel: FlowFunnel, title: str, translate: Callable[[Text], str]) -> bytes:
    """The funnel with its questions' titles and the legend in one language (`translate` gives
    a text as plain words in it)."""
    titles = STEP_TITLES[funnel.flow]
    labels = [f"{s.position}. {translate(titles[s.step])}" for s in funnel.steps]
    return funnel_png(funnel, labels, [translate(text) for text in LEGEND], title)


def funnel_png(
    funnel: FlowFunnel, labels: Sequence[str], legend: Sequence[str], title: str
) -> bytes:
    """Per step: how many reached it, answered it, and stopped there; steps top to bottom."""
    figure = Figure(figsize=(WIDTH / DPI, HEIGHT / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    positions = list(range(len(funnel.steps)))
    height = 0.28
    axes.barh(
        [p - height for p in positions],
        [s.reached for s in funnel.steps],
        height,
        color=REACHED,
        label=legend[0],
    )
    axes.barh(
        positions, [s.answered for s in funnel.steps], height, color=ANSWERED, label=legend[1]
    )
    axes.barh(
        [p + height for p in positions],
        [s.abandoned for s in funnel.steps],
        height,
        color=ABANDONED,
        label=legend[2],
    )
    axes.set_yticks(positions, [_short(label) for label in labels])
    axes.invert_yaxis()
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    # Counts start at zero; with nothing yet, matplotlib would centre an empty axis on it.
    largest = max((max(s.reached, s.answered, s.abandoned) for s in funnel.steps), default=0)
    axes.set_xlim(0, max(largest, 1) * 1.05)
    axes.set_title(title, loc="left", fontsize=13)
    axes.legend(loc="lower right", frameon=False)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _short(label: str, longest: int = 38) -> str:
    return label if len(label) <= longest else label[: longest - 1] + "…"
