"""The inspect stage: one self-contained HTML page to look at any stage output.

Modules: `config` (the options), `stage` (detect the folder, build the page, write it), `rows` (rows as
compact columns with texts cut to a budget), `views` (what each kind of output shows: distill, select,
eval), `charts` (inline SVG charts) and `page` (the HTML around the embedded JSON, with `page.css` and
`page.js` inlined).
"""

from sdd_data.inspect.config import InspectConfig
from sdd_data.registry import lazy_exports

__all__ = ["InspectConfig", "InspectResult", "inspect_output"]
__getattr__ = lazy_exports(
    {
        "inspect_output": "sdd_data.inspect.stage:inspect_output",
        "InspectResult": "sdd_data.inspect.stage:InspectResult",
    }
)
