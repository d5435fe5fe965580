"""The inspect stage's options: one dataclass, from which its CLI flags and YAML keys are made."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class InspectConfig:
    """What to look at and where the page goes; every field is also a CLI flag and a YAML key."""

    path: str
    """A stage output to look at, of a kind inspect has a view for: a distill run, a select output, a published
    folder or an eval folder (also given as the command's first argument)."""
    output: str | None = None
    """The HTML file to write; default: report.html inside the folder looked at."""
    data_config: str | None = None
    """The config to show from a published folder holding several."""
    max_text_chars: int = 4000
    """Each text (instruction, responses) is cut to at most this many characters in the page; the page says so."""
    max_text_mb: float = 25.0
    """Budget for all texts of the page together, in MB: when the rows hold more, every text is cut shorter
    (evenly, to one limit) so the file stays about this size."""
