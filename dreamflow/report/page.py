"""report.html: what a person reads first about a suite.

Fits a 1280-px window without horizontal scrolling: a headline table per method (readable names,
units, arrows, per-stage columns grouped), plots, then one card per asset (prompt, method, seed,
status, the labelled stage strip with the key metric under each stage, turntable and a 3D viewer
of its .glb), assets of the same prompt and seed side by side across methods. Wide tables are
folded. Works from file:// with no network: images are relative links, the 3D viewer and each
.glb are classic scripts in report_files/ (`viewer`).
"""

from __future__ import annotations

import base64
import html
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from dreamflow.evaluate.metric_names import ASSET_METRICS, METHOD_NAMES, STAGE_METRICS, key_metric
from dreamflow.io import atomic_write_bytes
from dreamflow.report.tables import metric_of, readable_columns
from dreamflow.report.viewer import BUILD_HINT, glb_script, viewer_bundle
from dreamflow.stages import FINAL_STAGE, STAGES

if TYPE_CHECKING:
    from dreamflow.report.summary import SuiteTables

SHORT_KEY = {"pattern_error": "pattern", "iou": "IoU"}

STYLE = """
*{box-sizing:border-box} body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
main{max-width:1240px;margin:0 auto;padding:16px 20px} h1{font-size:1.5em;margin:.2em 0} h2{font-size:1.2em;margin:1.4em 0 .5em}
h3{font-size:1em;margin:1em 0 .4em} .note{color:#555;font-size:.92em}
table{border-collapse:collapse;font-size:13px;background:#fff} th,td{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f0f0f0;font-weight:600;text-align:center} td.text{text-align:left} .scroll{overflow-x:auto;max-width:100%}
img.plot{max-width:100%;height:auto;background:#fff;border:1px solid #ddd}
.group{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));gap:12px}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px;min-width:0}
.card header{display:flex;justify-content:space-between;align-items:baseline;gap:8px}
.card .prompt{font-weight:600} .badge{border-radius:10px;padding:1px 8px;font-size:12px;white-space:nowrap}
.ok{background:#dff3e0;color:#1b5e20} .bad{background:#fde0e0;color:#8b1a1a}
.strip img{width:100%;height:auto;image-rendering:pixelated;display:block}
.strip .keys{display:flex} .strip .keys span{flex:1;text-align:center;font-size:12px;color:#444}
.media{display:flex;gap:10px;align-items:center;margin-top:6px}
.viewer{width:200px;height:200px;border:1px solid #ddd;display:flex;align-items:center;justify-content:center;overflow:hidden}
.viewer img{width:100%;height:100%;object-fit:contain;image-rendering:pixelated}
button{font:inherit;padding:2px 10px;cursor:pointer} button:disabled{cursor:not-allowed}
details{margin:.6em 0} summary{cursor:pointer;font-weight:600}
"""

SCRIPT = """
let active = null;
function open3d(button) {
  const box = button.closest('.card').querySelector('.viewer');
  if (active) { active.handle && active.handle.dispose(); active.box.innerHTML = active.html; active.button.disabled = false; }
  const state = {box, button, html: box.innerHTML, handle: null};
  active = state; button.disabled = true; box.textContent = 'loading…';
  DreamFlowViewer.mountScript(box, button.dataset.src, button.dataset.key, {width: 198, height: 198})
    .then(h => { state.handle = h; window.viewerResult = DreamFlowViewer.describe(h.root); })
    .catch(e => { box.textContent = 'could not load the 3D model: ' + e; console.error(e); });
}
"""


def _fmt(column: str, value) -> str:
    return metric_of(column).format(value)


def html_table(frame: pd.DataFrame, identity: list[tuple[str, str]], columns: list[tuple[str, str, str]]) -> str:
    """A table whose columns of one metric (S1/S2/S3) sit under one group header."""
    groups: list[tuple[str, int, bool]] = []
    for _, group, sub in columns:
        if groups and groups[-1][0] == group and sub:
            groups[-1] = (group, groups[-1][1] + 1, True)
        else:
            groups.append((group, 1, bool(sub)))
    top = "".join(f"<th rowspan=2>{html.escape(label)}</th>" for _, label in identity)
    top += "".join(f"<th colspan={n}>{html.escape(g)}</th>" if has_sub else f"<th rowspan=2>{html.escape(g)}</th>"
                   for g, n, has_sub in groups)
    second = "".join(f"<th>{html.escape(sub)}</th>" for _, _, sub in columns if sub)
    body = []
    for _, row in frame.iterrows():
        cells = []
        for key, _ in identity:
            value = row[key]
            text = METHOD_NAMES.get(value, value) if key == "method" else value
            cells.append(f"<td class=text>{html.escape(str(text))}</td>")
        cells += [f"<td>{_fmt(key, row[key])}</td>" for key, _, _ in columns]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{top}</tr><tr>{second}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _relative(path: Path, page: Path) -> str:
    return html.escape(os.path.relpath(path, page.parent))


def asset_card(row: pd.Series, index: int, page: Path, files: Path, viewer_ready: bool, with_prompt: bool = True) -> str:
    """One asset: identity, status, labelled stage strip with its key metric, turntable, 3D viewer."""
    asset = Path(row["metrics_file"]).parent
    ok = row["status"] == "ok"
    badge = f"<span class='badge {'ok' if ok else 'bad'}'>{html.escape(str(row['status']))}</span>"
    header = (f"<header><span class=method>{html.escape(METHOD_NAMES.get(row['method'], str(row['method'])))}"
              f" · seed {html.escape(str(row['seed']))}</span>{badge}</header>")
    strip = asset / "stages.png"
    parts = [f"<div class=prompt>{html.escape(str(row['prompt']))}</div>", header] if with_prompt else [header]
    if strip.exists():
        key = key_metric(row)
        labels = (["truth"] if key else []) + [stage.label for stage in STAGES.values()]
        if key:
            values = ["truth"] + [f"{SHORT_KEY[key]} {STAGE_METRICS[key].format(row.get(f'{s}_{key}'))}"
                                  for s in STAGES]
            note = f"{STAGE_METRICS[key].header} at the final resolution"
        else:
            values, note = labels, "no ground truth for this prompt"
        parts.append(f"<div class=strip><img src='{_relative(strip, page)}' alt='{' | '.join(labels)}'>"
                     f"<div class=keys>{''.join(f'<span>{html.escape(v)}</span>' for v in values)}</div>"
                     f"<div class=note>{html.escape(note)}</div></div>")
    final = STAGES[FINAL_STAGE]
    turntable, glb = asset / final.path("turntable"), asset / final.path("mesh")
    picture = (f"<img src='{_relative(turntable, page)}' alt='turntable'>" if turntable.exists()
               else "<span class=note>no turntable</span>")
    if glb.exists() and viewer_ready:
        script = files / "glb" / f"{index}.js"
        atomic_write_bytes(script, lambda s: s.write(glb_script(glb, str(index)).encode()))
        button = (f"<button onclick='open3d(this)' data-src='{_relative(script, page)}' data-key='{index}'>"
                  f"3D view</button>")
    elif glb.exists():
        button = f"<button disabled title='3D viewer not built: run {html.escape(BUILD_HINT)}'>3D view</button>"
    else:
        button = ""
    clip, hit = ASSET_METRICS["clip_score"], row.get("r_at_1")
    retrieved = "–" if hit is None or hit != hit else ("retrieves its caption" if hit else "does not retrieve its caption")
    facts = f"{clip.header}: {clip.format(row['clip_score'])}<br>R@1: {retrieved}<br>" \
            f"{ASSET_METRICS['seconds_total'].header}: {ASSET_METRICS['seconds_total'].format(row['seconds_total'])}"
    parts.append(f"<div class=media><div class=viewer>{picture}</div><div>{button}<p class=note>{facts}</p></div></div>")
    return (f"<div class=card data-method='{html.escape(str(row['method']))}' "
            f"data-prompt='{html.escape(str(row['prompt']), quote=True)}'>{''.join(parts)}</div>")


def cells_table(cells: pd.DataFrame, empty: str, text_columns: int = 1) -> str:
    """A table of already formatted cells (the first `text_columns` left-aligned)."""
    if cells.empty:
        return f"<p class=note>{html.escape(empty)}</p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cells.columns)
    body = "".join("<tr>" + "".join(f"<td{' class=text' if i < text_columns else ''}>{html.escape(str(v))}</td>"
                                    for i, v in enumerate(row)) + "</tr>" for row in cells.itertuples(index=False))
    return f"<div class=scroll><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def write_report(suite: str, table: pd.DataFrame, tables: SuiteTables, paths: dict[str, Path],
                 notes: dict[str, str]) -> None:
    page, files = paths["html"], paths["files"]
    if files.exists():
        shutil.rmtree(files)
    files.mkdir(parents=True)
    bundle = viewer_bundle()
    if bundle is not None:
        atomic_write_bytes(files / "dreamflow-viewer.js", lambda s: s.write(bundle.encode()))
    methods = list(dict.fromkeys(table["method"]))
    failed = int((table["status"] != "ok").sum())
    cells = tables.cells
    groups, index = [], 0
    if len(methods) > 1:  # the methods side by side, one row per prompt and seed
        for (prompt, seed), group in table.groupby(["prompt", "seed"], sort=False):
            cards = []
            for _, row in group.iterrows():
                cards.append(asset_card(row, index, page, files, bundle is not None, with_prompt=False))
                index += 1
            groups.append(f"<h3>{html.escape(str(prompt))} <span class=note>seed {html.escape(str(seed))}</span></h3>"
                          f"<div class=group>{''.join(cards)}</div>")
    else:
        cards = [asset_card(row, i, page, files, bundle is not None) for i, (_, row) in enumerate(table.iterrows())]
        groups.append(f"<div class=group>{''.join(cards)}</div>")
    def embedded(path: Path, alt: str) -> str:
        return (f"<img class=plot src='data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}' "
                f"alt='{html.escape(alt)}'>")
    viewer = "<script src='report_files/dreamflow-viewer.js'></script>" if bundle is not None else ""
    asset_identity = [("prompt", "Prompt"), ("method", "Method"), ("seed", "Seed"), ("status", "Status")]
    page_text = f"""<!doctype html><html lang=en><head><meta charset="utf-8">
<meta name=viewport content="width=device-width,initial-scale=1"><title>DreamFlow · {html.escape(suite)}</title>
<style>{STYLE}</style>{viewer}<script>{SCRIPT}</script></head><body><main>
<h1>DreamFlow suite <code>{html.escape(suite)}</code></h1>
<p class=note>{len(table)} assets · {len(methods)} method(s): {html.escape(', '.join(METHOD_NAMES.get(m, m) for m in methods))}
· {len(table) - failed} ok, {failed} failed or missing. ↑ higher is better, ↓ lower is better; S1–S3 are the stages,
each scored at the final resolution against the toy world's truth (– where a prompt has none).
Machine-readable: <a href="summary.csv">summary.csv</a>, <a href="summary.md">summary.md</a>.</p>
<h2>Per method</h2><p class=note>{html.escape(notes["per_method"])}</p>
{cells_table(cells["per_method"], "No finished asset.")}
<h2>CLIP R-precision</h2><p class=note id=r-precision-protocol>{html.escape(tables.protocol)}</p>
<p class=note>R@1 (%): each seed's share over the prompts, mean ± sd over the seeds.</p>
{cells_table(cells["r_precision"], "Not measured.")}
<h2>Paired differences between methods</h2><p class=note>{html.escape(notes["paired"])}</p>
{cells_table(cells["paired"], "One method: nothing to pair.")}
<h2>Time and memory per stage</h2><p class=note>{html.escape(notes["usage"])}</p>
{cells_table(cells["usage"], "No stage recorded its time and memory.", text_columns=3)}
<h2>Per prompt and method</h2><p class=note>{html.escape(notes["per_prompt"])}</p>
{cells_table(cells["per_prompt"], "No finished asset.", text_columns=2)}
<h2>Metrics across stages</h2>{embedded(paths["stages_plot"], "metrics across stages")}
<h2>Assets</h2><p class=note>Strip: two held-out views of the truth and of stages 1–3, all at the final
resolution, with the key metric under each stage. The turntable is stage 3; “3D view” opens its .glb.</p>
{''.join(groups)}
<h2>Quality against time</h2>{embedded(paths["plot"], "quality against time")}
<h2>Per asset</h2><details><summary>Headline metrics ({len(table)} assets)</summary>
<div class=scroll>{html_table(table, asset_identity, readable_columns(headline=True))}</div></details>
<details><summary>All metrics</summary><div class=scroll>{html_table(table, asset_identity, readable_columns(headline=False))}</div></details>
</main></body></html>"""
    atomic_write_bytes(page, lambda s: s.write(page_text.encode()))
