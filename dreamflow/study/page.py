"""The blind preference-study page raters open (one file, works from file://, no network).

Shows one pair at a time (turntables side by side, left/right as drawn in the key), the question(s)
with left / tie / right buttons (keys 1 / 2 / 3), progress, and keeps the votes in the browser
(localStorage, per study) until the rater exports them as a JSON file for `dreamflow preference tally`.
Under each asset, an optional question asks whether it shows more than one face or front (the Janus
problem): yes / no / unsure, a second click on the chosen answer takes it back; these answers travel
in the same file (question `janus`, with the side).
"""

from __future__ import annotations

import html
import json

STYLE = """
*{box-sizing:border-box} body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#fafafa;color:#222}
main{max-width:1100px;margin:0 auto;padding:16px 20px} h1{font-size:1.4em;margin:.2em 0}
.bar{display:flex;gap:16px;align-items:center;flex-wrap:wrap;margin:8px 0}
.progress{height:8px;background:#e0e0e0;border-radius:4px;flex:1;min-width:200px}
.progress div{height:100%;background:#2e7d32;border-radius:4px}
.prompt{font-size:1.25em;font-weight:600;margin:12px 0;text-align:center}
.pair{display:flex;gap:20px;justify-content:center}
.side{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px;text-align:center}
.side img{width:320px;height:320px;object-fit:contain;image-rendering:pixelated;display:block}
.question{margin:14px 0 4px;text-align:center} .answers{display:flex;gap:10px;justify-content:center}
.answers button{font:inherit;padding:6px 18px;cursor:pointer;border:1px solid #888;border-radius:4px;background:#fff}
.answers button.chosen{background:#2e7d32;color:#fff;border-color:#2e7d32}
.nav{display:flex;gap:8px;justify-content:center;margin-top:14px} .note{color:#555;font-size:.9em}
.janus{margin-top:6px;font-size:.88em;max-width:320px} .janus .answers{gap:6px;margin-top:3px}
.janus .answers button{padding:2px 10px}
"""

SCRIPT = """
const STORE = 'dreamflow-study-' + STUDY.id;
let state = JSON.parse(localStorage.getItem(STORE) || 'null') || {rater: '', votes: {}, index: 0};
const questions = Object.keys(STUDY.questions);
function save() { localStorage.setItem(STORE, JSON.stringify(state)); }
function voteKey(pair, q) { return pair + '|' + q; }
function janusKey(pair, side) { return pair + '|janus|' + side; }
function answered() { return Object.values(state.votes).filter(v => v.question !== 'janus').length; }
function total() { return STUDY.pairs.length * questions.length; }
function show() {
  const pair = STUDY.pairs[state.index];
  document.getElementById('prompt').textContent = '“' + pair.prompt + '”';
  document.getElementById('left').src = pair.left;
  document.getElementById('right').src = pair.right;
  document.getElementById('position').textContent = 'Pair ' + (state.index + 1) + ' of ' + STUDY.pairs.length;
  document.body.dataset.pair = pair.pair;
  for (const q of questions) {
    const chosen = state.votes[voteKey(pair.pair, q)];
    for (const c of ['left', 'tie', 'right']) {
      document.getElementById('choose-' + q + '-' + c).classList.toggle('chosen', Boolean(chosen && chosen.choice === c));
    }
  }
  if (STUDY.janus) {
    for (const side of ['left', 'right']) {
      const chosen = state.votes[janusKey(pair.pair, side)];
      for (const c of ['yes', 'no', 'unsure']) {
        document.getElementById('janus-' + side + '-' + c).classList.toggle('chosen', Boolean(chosen && chosen.choice === c));
      }
    }
  }
  const n = answered();
  document.getElementById('progress-text').textContent = n + ' of ' + total() + ' answered';
  document.getElementById('progress-bar').style.width = (100 * n / total()) + '%';
  document.getElementById('rater').value = state.rater;
}
function choose(question, choice) {
  const pair = STUDY.pairs[state.index].pair;
  state.votes[voteKey(pair, question)] = {pair, question, choice, time: new Date().toISOString()};
  save();
  const done = questions.every(q => state.votes[voteKey(pair, q)]);
  if (done && state.index < STUDY.pairs.length - 1) state.index += 1;
  show();
}
function chooseJanus(side, choice) {
  const pair = STUDY.pairs[state.index].pair;
  const key = janusKey(pair, side);
  if (state.votes[key] && state.votes[key].choice === choice) delete state.votes[key];  // optional: take it back
  else state.votes[key] = {pair, question: 'janus', side, choice, time: new Date().toISOString()};
  save();
  show();
}
function move(step) { state.index = Math.min(STUDY.pairs.length - 1, Math.max(0, state.index + step)); save(); show(); }
function votesFile() {
  return {study: STUDY.id, suite: STUDY.suite, rater: state.rater || 'anonymous', exported: new Date().toISOString(),
          votes: Object.values(state.votes)};
}
function exportVotes() {
  const data = votesFile();
  const name = 'votes-' + STUDY.suite + '-' + (state.rater || 'anonymous').replace(/[^A-Za-z0-9_-]+/g, '_') + '.json';
  const link = document.createElement('a');
  link.href = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], {type: 'application/json'}));
  link.download = name;
  document.body.appendChild(link); link.click(); link.remove();
  document.getElementById('exported').textContent = 'Exported ' + data.votes.length + ' votes as ' + name;
}
function clearVotes() {
  if (!confirm('Delete all your votes in this browser?')) return;
  state = {rater: state.rater, votes: {}, index: 0}; save(); show();
}
document.addEventListener('keydown', e => {
  if (e.target.tagName === 'INPUT') return;
  const map = {'1': 'left', '2': 'tie', '3': 'right'};
  if (map[e.key] && questions.length === 1) choose(questions[0], map[e.key]);
  if (e.key === 'ArrowRight') move(1);
  if (e.key === 'ArrowLeft') move(-1);
});
window.addEventListener('DOMContentLoaded', () => {
  document.getElementById('rater').addEventListener('input', e => { state.rater = e.target.value; save(); });
  show();
});
"""


def janus_block(side: str, question: str) -> str:
    """The optional per-asset question under one side's turntable."""
    buttons = "".join(f"<button id='janus-{side}-{c}' onclick=\"chooseJanus('{side}','{c}')\">{c}</button>"
                      for c in ("yes", "no", "unsure"))
    return (f"<div class=janus><span>{html.escape(question)} <span class=note>(optional)</span></span>"
            f"<div class=answers>{buttons}</div></div>")


def study_page(study_id: str, suite: str, pairs: list[dict], questions: dict[str, str],
               janus: str | None = None) -> str:
    """The page's HTML. `pairs`: [{pair, prompt, left, right}] (image paths relative to the page);
    `janus`: the optional per-asset question's text (None: not asked)."""
    data = json.dumps({"id": study_id, "suite": suite, "pairs": pairs, "questions": questions, "janus": janus})
    extra = {side: janus_block(side, janus) if janus else "" for side in ("left", "right")}
    blocks = []
    for qid, text in questions.items():
        buttons = "".join(f"<button id='choose-{qid}-{c}' onclick=\"choose('{qid}','{c}')\">{label}</button>"
                          for c, label in (("left", "Left is better"), ("tie", "Tie"), ("right", "Right is better")))
        blocks.append(f"<p class=question>{html.escape(text)}</p><div class=answers>{buttons}</div>")
    return f"""<!doctype html><html lang=en><head><meta charset="utf-8"><title>Preference study · {html.escape(suite)}</title>
<style>{STYLE}</style><script>const STUDY = {data};</script><script>{SCRIPT}</script></head><body><main>
<h1>Which 3D asset is better?</h1>
<p class=note>Each pair shows two 3D assets made from the same text prompt, turning around. You are not told
how either was made, and the sides are random. Answer with the buttons or the keys 1 (left), 2 (tie), 3 (right);
← → move between pairs. Your answers stay in this browser until you export them and send the file back.{
" Under each asset you may also say whether it shows more than one face or front (answer it before the main "
"question, which moves on to the next pair)." if janus else ""}</p>
<div class=bar><label>Your name or initials <input id=rater size=14></label>
<div class=progress><div id=progress-bar></div></div><span id=progress-text></span></div>
<div class=prompt id=prompt></div>
<div class=pair><div class=side><img id=left alt="left asset"><div>Left</div>{extra["left"]}</div>
<div class=side><img id=right alt="right asset"><div>Right</div>{extra["right"]}</div></div>
{''.join(blocks)}
<div class=nav><button onclick="move(-1)">← Previous</button><span id=position class=note></span>
<button onclick="move(1)">Next →</button></div>
<div class=nav><button id=export onclick="exportVotes()">Export my votes (.json)</button>
<button onclick="clearVotes()">Start over</button></div><p class=note id=exported style="text-align:center"></p>
</main></body></html>"""
