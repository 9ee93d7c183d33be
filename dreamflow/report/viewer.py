"""The 3D viewer pages embed: three.js's GLTFLoader bundled into one classic script by
`scripts/build_viewer.sh` (npm registry, at install time), inlined or placed beside a page so it
works from file:// with no network. `.glb` files travel as base64 in classic scripts, because a
page opened from file:// may not fetch() its neighbours."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

BUNDLE = Path(__file__).parent / "static" / "dreamflow-viewer.js"
BUILD_HINT = "bash scripts/build_viewer.sh (needs Node.js >= 18 and npm)"


def viewer_bundle() -> str | None:
    """The bundled viewer's JavaScript, or None when it has not been built."""
    return BUNDLE.read_text() if BUNDLE.exists() else None


def glb_script(glb: str | Path, key: str) -> str:
    """A classic script that registers the .glb's bytes (base64) as window.DreamFlowGLB[key]."""
    data = base64.b64encode(Path(glb).read_bytes()).decode()
    return (f"window.DreamFlowGLB = window.DreamFlowGLB || {{}};\n"
            f"window.DreamFlowGLB[{json.dumps(key)}] = \"{data}\";\n")


def standalone_page(glb: str | Path, title: str, size: int = 480) -> str:
    """One self-contained HTML page (viewer and .glb inlined) that shows `glb` in 3D.

    After loading, `window.viewerResult` holds the viewer's description of the object (or
    `{error: ...}`), which the browser tests read.
    """
    bundle = viewer_bundle()
    if bundle is None:
        raise FileNotFoundError(f"the 3D viewer is not built ({BUNDLE} is missing): run {BUILD_HINT}")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:1em}} #view{{width:{size}px;height:{size}px;border:1px solid #ccc}}</style>
<script>{bundle}</script><script>{glb_script(glb, "asset")}</script></head>
<body><h1 style="font-size:1.1em">{html.escape(title)}</h1><div id="view"></div>
<p>Drag to orbit, scroll to zoom.</p>
<script>
DreamFlowViewer.mountBase64(document.getElementById("view"), window.DreamFlowGLB.asset, {{animate: false}})
  .then(h => {{ window.viewerResult = DreamFlowViewer.describe(h.root); }})
  .catch(e => {{ window.viewerResult = {{error: String(e)}}; console.error(e); }});
</script></body></html>"""


__all__ = ["viewer_bundle", "glb_script", "standalone_page", "BUNDLE", "BUILD_HINT"]
