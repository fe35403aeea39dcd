"""Write .dvc/offline_plots.html: DVC's HTML page for plots with Vega bundled in (no CDN).

``dvc plots show`` and ``dvc plots diff`` fill an HTML template with one Vega-Lite spec per plot.
DVC's default page loads Vega, Vega-Lite and Vega-Embed from a CDN, so it is blank offline;
``.dvc/config`` points DVC at this file instead (``[plots] html_template``), whose ``<script>``
carries the three libraries (BSD-3-Clause, https://github.com/vega). The bundle is made by
vl-convert-python, which is not a dependency of the project: ``make plots-template`` installs it
and runs this script (about 1 MB out; only needed to change the bundled versions).
"""

from __future__ import annotations

import sys
from pathlib import Path

VL_VERSION = "5.21"  # DVC 3's templates are Vega-Lite v5 specs

PAGE = """<!DOCTYPE html>
<!-- DVC plots page with Vega, Vega-Lite {vl} and Vega-Embed bundled (written by .dvc/offline_plots.py
     with vl-convert-python {vlc}; Vega {vega}, Vega-Embed {embed}; BSD-3-Clause). No network needed. -->
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <script type="text/javascript">
{bundle}
    </script>
    <style>
        table {{ border-spacing: 15px; }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def main(out: Path) -> None:
    import vl_convert as vlc

    bundle = vlc.javascript_bundle(
        snippet="window.vegaEmbed = vegaEmbed; window.vega = vega; window.vegaLite = vegaLite;",
        vl_version=VL_VERSION,
    )
    if "</script" in bundle.lower() or "{plot_divs}" in bundle:
        raise SystemExit("the bundle contains text that would break the page")
    versions = {
        "vl": VL_VERSION,
        "vlc": getattr(vlc, "__version__", "?"),
        "vega": vlc.get_vega_version(),
        "embed": vlc.get_vega_embed_version(),
    }
    out.write_text(PAGE.format(bundle=bundle, **versions), encoding="utf-8")
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("offline_plots.html"))
