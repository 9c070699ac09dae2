"""Leaderboard text outputs: Markdown, a static HTML page and JSON, all deterministic.

Only scores, names and versions are rendered; wall time and hardware from the results files are
left out so that re-scoring on another machine gives the same bytes when the scores agree.
"""
from __future__ import annotations

import html
from html.parser import HTMLParser

from benchmark.files import canonical_json
from benchmark.leaderboard.plots import heatmap_data, scatter_data
from benchmark.leaderboard.ranking import FLOOR_FRACTION, PRIMARY, SCORE_NAMES, Anchor, Board, Interval, Row
from benchmark.leaderboard.views import (
    COLUMNS_DOC, METRICS_DOC, PAPERS, SCORE_COLUMNS, VIEWS, arrow, transfer_note, view_data,
)

COLUMNS = tuple(c.title for c in COLUMNS_DOC)  # the main table's headers, in order
FORMAT_VERSION = 3  # 3: the architecture column and each row's origin (zoo, custom, predictions)
HTML_NAME = "index.html"
JSON_NAME = "leaderboard.json"
RULES = (f"Ranked by invariance consistency (IC) averaged over every frozen set of a release, higher is better. "
         f"An entry whose clean accuracy on a dataset is below {FLOOR_FRACTION:.0%} of the best reference model's is "
         f"listed but not ranked. Walking down by IC, an entry whose 95% CI overlaps the CI of its rank group's "
         f"first entry shares that group's rank (competition ranking: 1, 1, 3). Scores from different release "
         f"versions or manifests are never ranked together.")
ANCHOR_RULE = ("Chance and reference rows (italic) are computed from the release itself by "
               "`metamer-bench leaderboard --release <folder>` (benchmark/leaderboard/panel.py) and are never ranked.")
NO_RESULTS = "No scored submissions yet: run `metamer-bench evaluate submissions/<entry>`."
NO_PANEL = ("No chance or reference rows for this release yet: run `metamer-bench leaderboard --release <release "
            "folder>` where the release is available.")


def plot_names(board: Board) -> dict[str, str]:
    """File names (inside the output folder) of ``board``'s three plots."""
    slug = board.release.slug
    return {"heatmap": f"heatmap-{slug}.png", "ic_vs_clean": f"ic-vs-clean-{slug}.png",
            "breakdown": f"breakdown-{slug}.png"}


PLOT_ALTS = {"heatmap": "metamer accuracy of each entry on each reference model's metamers",
             "ic_vs_clean": "invariance consistency against clean accuracy, labelled entries",
             "breakdown": "IC per dataset and metamer kind for every entry"}


def release_title(board: Board) -> str:
    r = board.release
    return f"Release {r.name} {r.version} (manifest sha256 {r.manifest_sha256[:12]})"


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _mean_std(interval: Interval) -> str:
    if interval.mean is None:
        return "n/a"
    return _num(interval.mean) if interval.std is None else f"{interval.mean:.3f} ± {interval.std:.3f}"


def _ic(interval: Interval) -> str:
    if interval.ci_low is None or interval.ci_high is None:
        return _num(interval.mean)
    return f"{interval.mean:.3f} [{interval.ci_low:.3f}, {interval.ci_high:.3f}]"


def _score_cells(scores: dict[str, Interval]) -> list[str]:
    return [_ic(scores[PRIMARY]), *(_mean_std(scores[c.key]) for c in SCORE_COLUMNS if c.key != PRIMARY)]


def row_cells(row: Row) -> list[str]:
    """The table's cells for ``row`` in ``COLUMNS`` order (shared by Markdown and HTML)."""
    return [str(row.rank) if row.ranked else "below floor", row.entry, *_score_cells(row.scores),
            f"{row.num_parameters:,}", str(row.seeds), row.architecture_label, row.tier_label, row.evaluator_version]


def anchor_cells(anchor: Anchor) -> list[str]:
    """Cells of a chance or reference row: its role in the rank column, no params, seeds, architecture or tier."""
    return [anchor.role, anchor.label, *_score_cells(anchor.scores), "", "", "", "", ""]


def _sort_values(scores: dict[str, Interval]) -> list[str]:
    return ["" if scores[c.key].mean is None else repr(scores[c.key].mean) for c in SCORE_COLUMNS]


def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[str], rows: list[list[str]], numeric: set[int] | None = None) -> list[str]:
    """A Markdown table; columns in ``numeric`` (default: all but the first) are right-aligned."""
    numeric = set(range(1, len(header))) if numeric is None else numeric
    lines = ["| " + " | ".join(_md_escape(h) for h in header) + " |",
             "|" + "|".join("---:" if i in numeric else "---" for i in range(len(header))) + "|"]
    return lines + ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in rows]


def _entry_links(row: Row, submissions_prefix: str) -> list[tuple[str, str]]:
    """``(text, url)``: the entry's submission folder, then its code and paper where the card has them."""
    links = [(row.entry, f"{submissions_prefix}/{row.entry}/"), ("code", row.code_url), ("paper", row.paper_url)]
    return [(text, url) for text, url in links if url]


def _entry_link_md(row: Row, submissions_prefix: str) -> str:
    return " ".join(f"[{text}]({url})" for text, url in _entry_links(row, submissions_prefix))


def _glossary_md(metrics_prefix: str) -> list[str]:
    lines = ["| column | better | definition |", "|---|---|---|"]
    for c in COLUMNS_DOC:
        title = f"[{c.title}]({metrics_prefix}#{c.anchor})" if c.anchor else c.title
        better = f"{arrow(c.better)} {c.better}" if c.better else ""
        lines.append(f"| {_md_escape(title)} | {better} | {_md_escape(c.definition)} |")
    return lines


def render_markdown(boards: list[Board], out_prefix: str = "leaderboard", root_prefix: str = ".") -> str:
    """``LEADERBOARD.md``; ``out_prefix`` is the output folder and ``root_prefix`` the repository
    root (METRICS.md, submissions/), both relative to the Markdown file."""
    metrics = f"{root_prefix}/{METRICS_DOC}" if root_prefix != "." else METRICS_DOC
    submissions = f"{root_prefix}/submissions" if root_prefix != "." else "submissions"
    lines = ["# metamer-bench leaderboard", "",
             "Generated by `metamer-bench leaderboard` from `submissions/results/*.json`; do not edit by hand "
             f"(CI runs `metamer-bench leaderboard --check`). The [HTML page]({out_prefix}/{HTML_NAME}) sorts, "
             f"filters and switches scores; all numbers are in [JSON]({out_prefix}/{JSON_NAME}).", "",
             "Papers: " + "; ".join(f"[{title}]({url})" for title, url in PAPERS) + ".", "",
             RULES, "", ANCHOR_RULE, "", "## Columns", "",
             "↑ higher is better, ↓ lower is better, · neither (a baseline). Each score is the mean over the "
             "release's frozen sets, then mean ± std over the entry's training seeds; IC has its 95% bootstrap CI. "
             f"Full definitions: [{METRICS_DOC}]({metrics}).", "", *_glossary_md(metrics), ""]
    if not boards:
        lines += [NO_RESULTS, ""]
    for board in boards:
        header = [f"{c.title} {arrow(c.better)}".strip() for c in COLUMNS_DOC]
        body = []
        for row in board.rows:
            cells = row_cells(row)
            cells[1] = _entry_link_md(row, submissions)
            body.append(cells)
        body += [[f"*{c}*" if c else "" for c in anchor_cells(a)] for a in board.anchors]
        lines += [f"## {release_title(board)}", ""]
        numeric = {i for i, c in enumerate(COLUMNS_DOC) if c.better or c.key in ("num_parameters", "seeds")}
        lines += _md_table(header, body, numeric)
        if not board.anchors:
            lines += ["", NO_PANEL]
        notes = [f"- `{row.entry}`: {row.floor_note()}" for row in board.rows if not row.ranked]
        if notes:
            lines += ["", "Listed, not ranked:", *notes]
        lines += ["", "Chance and reference rows:"] if board.anchors else []
        lines += [f"- *{a.label}*: {a.note}" for a in board.anchors]
        lines += ["", transfer_note(board)] if transfer_note(board) else []
        views = view_data(board)
        for view, title in VIEWS:
            groups = views[view]["groups"]
            values = views[view]["scores"][PRIMARY]
            label = {r.entry: r.entry for r in board.rows} | {a.entry: f"*{a.label}*" for a in board.anchors}
            body = [[label[e], *(_num(v) for v in vs)] for e, vs in values.items()]
            lines += ["", f"### {title}: IC ↑", "", *_md_table(["entry", *groups], body)]
        names = plot_names(board)
        for key in ("breakdown", "heatmap", "ic_vs_clean"):
            lines += ["", f"![{PLOT_ALTS[key]}]({out_prefix}/{names[key]})"]
        lines.append("")
    return "\n".join(lines)


_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em 2em;color:#1d1d1d;max-width:96em;line-height:1.4}
h1{margin-bottom:0.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}h3{margin:1.2em 0 0.3em}
.lede{color:#444;max-width:70em}
table{border-collapse:collapse;margin:0.6em 0;font-size:0.88em}
th,td{border:1px solid #d4d4d4;padding:0.25em 0.55em;text-align:left;white-space:nowrap}
th{background:#f1f3f5;position:sticky;top:0}th.sortable{cursor:pointer;user-select:none}
th.sortable:hover{background:#e3e8ee}th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums}tr.unranked td{color:#777}
tr.anchor td{font-style:italic;background:#fbfaf3}tr.anchor.reference td{background:#f3f7fb}
.better{color:#666;font-weight:normal;font-size:0.85em}
.wrap{overflow-x:auto;max-width:100%}
.controls{position:sticky;top:0;background:#fff;padding:0.5em 0;border-bottom:1px solid #eee;z-index:2}
.controls label{margin-right:1.2em}input[type=search]{width:16em}
table.glossary td{white-space:normal;max-width:60em}
img{max-width:100%;display:block;margin:1em 0}img.broken{display:none}
code{background:#f1f3f5;padding:0 0.2em}"""
# Sorting, filtering and score switching, in the page itself (no server, no network). The state
# also lives in the URL hash (#sort=transfer:asc&filter=gcn&score=transfer&unranked=0), so a view
# can be shared as a link, and a headless browser can be told what to do without clicking.
# Once applied, body[data-ready] is set; the onload handler marks which plots loaded.
_SCRIPT = r"""(function(){
function val(td){var v=td.getAttribute('data-sort');return v===null?td.textContent.trim():v}
function cmp(a,b,num){if(a===''&&b==='')return 0;if(a==='')return 1;if(b==='')return -1;
return num?parseFloat(a)-parseFloat(b):a.localeCompare(b)}
function sortTable(t,key,dir){var ths=t.tHead.rows[0].cells,col=-1;
for(var i=0;i<ths.length;i++){if(ths[i].dataset.key===key)col=i;ths[i].removeAttribute('aria-sort')}
if(col<0)return false;var num=ths[col].dataset.type==='num',b=t.tBodies[0],rows=Array.from(b.rows);
rows.sort(function(x,y){var c=cmp(val(x.cells[col]),val(y.cells[col]),num);
var ea=val(x.cells[col])===''||val(y.cells[col])==='';return (ea?1:(dir==='desc'?-1:1))*c||
(parseInt(x.dataset.order)-parseInt(y.dataset.order))});
rows.forEach(function(r){b.appendChild(r)});ths[col].setAttribute('aria-sort',dir==='desc'?'descending':'ascending');
return true}
var state={sort:'',filter:'',score:'invariance_consistency',unranked:'1',anchors:'1'};
function readHash(){location.hash.replace(/^#/,'').split('&').forEach(function(p){var kv=p.split('=');
if(kv[0]in state)state[kv[0]]=decodeURIComponent(kv[1]||'')})}
function writeHash(){var parts=[];for(var k in state){if(state[k]!=='')parts.push(k+'='+encodeURIComponent(state[k]))}
history.replaceState(null,'','#'+parts.join('&'))}
function apply(){var f=state.filter.toLowerCase(),shown=0;
document.querySelectorAll('table.lb tbody tr').forEach(function(r){var anchor=r.classList.contains('anchor');
var text=(r.dataset.entry||r.dataset.anchor||'')+' '+(r.dataset.arch||'');
var ok=anchor?state.anchors==='1':(text.toLowerCase().indexOf(f)>=0&&(state.unranked==='1'||r.dataset.ranked==='true'));
r.hidden=!ok;if(ok&&!anchor&&r.closest('table.board'))shown++});
document.querySelectorAll('table.view').forEach(function(t){t.closest('.viewbox').hidden=t.dataset.score!==state.score});
if(state.sort){var s=state.sort.split(':');document.querySelectorAll('table.lb').forEach(function(t){sortTable(t,s[0],s[1]||'desc')})}
var n=document.getElementById('shown');if(n)n.textContent=shown;
var i=document.getElementById('filter');if(i&&i.value!==state.filter)i.value=state.filter;
var u=document.getElementById('unranked');if(u)u.checked=state.unranked==='1';
var a=document.getElementById('anchors');if(a)a.checked=state.anchors==='1';
var sc=document.getElementById('score');if(sc)sc.value=state.score}
document.addEventListener('DOMContentLoaded',function(){readHash();
document.querySelectorAll('table.lb th.sortable').forEach(function(th){th.addEventListener('click',function(){
var cur=th.getAttribute('aria-sort');var dir=cur==='descending'?'asc':(cur==='ascending'?'desc':th.dataset.first);
state.sort=th.dataset.key+':'+dir;apply();writeHash()})});
var i=document.getElementById('filter');if(i)i.addEventListener('input',function(){state.filter=i.value;apply();writeHash()});
var u=document.getElementById('unranked');if(u)u.addEventListener('change',function(){state.unranked=u.checked?'1':'0';apply();writeHash()});
var a=document.getElementById('anchors');if(a)a.addEventListener('change',function(){state.anchors=a.checked?'1':'0';apply();writeHash()});
var sc=document.getElementById('score');if(sc)sc.addEventListener('change',function(){state.score=sc.value;apply();writeHash()});
apply();document.body.dataset.ready='1'});
window.addEventListener('load',function(){var ok=0,bad=0;
document.querySelectorAll('img').forEach(function(i){if(i.complete&&i.naturalWidth>0){ok++}else{bad++;
i.classList.add('broken');var p=document.createElement('p');p.textContent='plot missing: '+i.getAttribute('src');
i.after(p)}});document.body.dataset.imagesLoaded=ok;document.body.dataset.imagesFailed=bad;});
})();"""


def _th(key: str, title: str, kind: str, better: str = "", tip: str = "") -> str:
    """A sortable header: scores sort best-first on the first click, text ascending."""
    first = "asc" if better == "lower" or kind == "text" or key == "rank" else "desc"
    mark = f' <span class="better">{arrow(better)}</span>' if better else ""
    title_attr = f' title="{html.escape(tip)}"' if tip else ""
    return (f'<th class="sortable" data-key="{html.escape(key)}" data-type="{kind}" data-first="{first}"'
            f'{title_attr}>{html.escape(title)}{mark}</th>')


def _td(text: str, sort: str | None = None, numeric: bool = False, inner: str | None = None) -> str:
    attrs = (' class="num"' if numeric else "") + ("" if sort is None else f' data-sort="{html.escape(sort)}"')
    return f"<td{attrs}>{inner if inner is not None else html.escape(text)}</td>"


def _entry_html(row: Row) -> str:
    e = html.escape
    return " ".join(f'<a href="{e(url)}">{e(text)}</a>' for text, url in _entry_links(row, "../submissions"))


def _overall_table(board: Board) -> list[str]:
    e = html.escape
    head = []
    for c in COLUMNS_DOC:
        kind = "num" if c.better or c.key in ("rank", "num_parameters", "seeds") else "text"
        head.append(_th(c.key, c.title, kind, c.better, c.definition))
    out = [f'<div class="wrap"><table class="board lb" data-release="{e(board.release.slug)}" '
           f'data-release-name="{e(board.release.name)}" data-release-version="{e(board.release.version)}" '
           f'data-manifest-sha256="{e(board.release.manifest_sha256)}">',
           "<thead><tr>" + "".join(head) + "</tr></thead>", "<tbody>"]
    order = 0
    for row in board.rows:
        cells = row_cells(row)
        sorts = [str(row.rank) if row.ranked else "", row.entry, *_sort_values(row.scores),
                 str(row.num_parameters), str(row.seeds), row.architecture_label, row.tier_label,
                 row.evaluator_version]
        tds = [_td(cells[0], sorts[0], True), _td(cells[1], sorts[1], inner=_entry_html(row))]
        tds += [_td(c, s, True) for c, s in zip(cells[2:11], sorts[2:11])]
        tds += [_td(c) for c in cells[11:]]
        cls = "" if row.ranked else ' class="unranked"'
        title = f' title="{e(row.floor_note())}"' if not row.ranked else ""
        out.append(f'<tr data-entry="{e(row.entry)}" data-arch="{e(row.architecture_label)}" '
                   f'data-rank="{row.rank if row.ranked else ""}" data-ranked="{str(row.ranked).lower()}" '
                   f'data-order="{order}"{cls}{title}>{"".join(tds)}</tr>')
        order += 1
    for anchor in board.anchors:
        cells = anchor_cells(anchor)
        tds = [_td(cells[0], ""), _td(cells[1], anchor.label)]
        tds += [_td(c, s, True) for c, s in zip(cells[2:9], _sort_values(anchor.scores))]
        tds += [_td(c, "") for c in cells[9:]]
        out.append(f'<tr data-anchor="{e(anchor.entry)}" class="anchor {e(anchor.role)}" data-order="{order}" '
                   f'title="{e(anchor.note)}">{"".join(tds)}</tr>')
        order += 1
    out += ["</tbody>", "</table></div>"]
    return out


def _view_tables(board: Board) -> list[str]:
    e = html.escape
    views = view_data(board)
    labels = {r.entry: r.entry for r in board.rows} | {a.entry: a.label for a in board.anchors}
    ranked = {r.entry: r.ranked for r in board.rows}
    roles = {a.entry: a.role for a in board.anchors}
    out = []
    for view, title in VIEWS:
        groups = views[view]["groups"]
        out.append(f"<h3>{e(title)}</h3>")
        for column in SCORE_COLUMNS:
            values = views[view]["scores"][column.key]
            name = "IC" if column.key == PRIMARY else column.title
            head = _th("entry", "entry", "text") + "".join(_th(g, g, "num", column.better) for g in groups)
            out += [f'<div class="viewbox wrap"><table class="view lb" data-release="{e(board.release.slug)}" '
                    f'data-view="{view}" data-score="{column.key}">',
                    f"<caption>{e(name)} {arrow(column.better)} ({e(column.better)} is better; mean over the "
                    "group's sets)</caption>" if column.better != "neither" else
                    f"<caption>{e(name)} (a baseline: neither direction is better; mean over the group's "
                    "sets)</caption>",
                    f"<thead><tr>{head}</tr></thead>", "<tbody>"]
            for order, (entry, vs) in enumerate(values.items()):
                tds = _td(labels[entry], labels[entry]) + "".join(
                    _td(_num(v), "" if v is None else repr(v), True) for v in vs)
                if entry in roles:
                    attrs = f'data-anchor="{e(entry)}" class="anchor {e(roles[entry])}"'
                else:
                    attrs = (f'data-entry="{e(entry)}" data-ranked="{str(ranked[entry]).lower()}"'
                             + ("" if ranked[entry] else ' class="unranked"'))
                out.append(f'<tr {attrs} data-order="{order}">{tds}</tr>')
            out += ["</tbody>", "</table></div>"]
    return out


def _code_spans(text: str) -> str:
    """Escaped ``text`` with its `backtick` spans as <code> (the Markdown strings, shown in HTML)."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _glossary_html() -> list[str]:
    e = html.escape
    out = ['<table class="glossary"><thead><tr><th>column</th><th>better</th><th>definition</th></tr></thead><tbody>']
    for c in COLUMNS_DOC:
        title = (f'<a href="../{METRICS_DOC}#{e(c.anchor)}">{e(c.title)}</a>' if c.anchor else e(c.title))
        better = f"{arrow(c.better)} {c.better}" if c.better else ""
        out.append(f'<tr data-column="{e(c.key)}"><td>{title}</td><td>{e(better)}</td><td>{e(c.definition)}</td></tr>')
    return out + ["</tbody></table>"]


def render_html(boards: list[Board]) -> str:
    """The static page ``index.html`` (plots referenced by relative file name; links to
    ``../submissions/<entry>/`` and ``../METRICS.md`` as the repository lays them out)."""
    e = html.escape
    options = "".join(f'<option value="{e(c.key)}">{e(c.title)} {arrow(c.better)}</option>' for c in SCORE_COLUMNS)
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           "<title>metamer-bench leaderboard</title>", f"<style>{_CSS}</style>", f"<script>{_SCRIPT}</script>",
           "</head>", "<body>", "<h1>metamer-bench leaderboard</h1>",
           '<p class="lede">How far do a graph neural network\'s invariances agree with another network\'s? '
           "Each entry is scored on the frozen model metamers of a release: inputs whose hidden activations in a "
           "reference model R match the original's. Generated by <code>metamer-bench leaderboard</code>; do not "
           f'edit by hand. All numbers: <a href="{JSON_NAME}">{JSON_NAME}</a>.</p>',
           "<p>Papers: " + "; ".join(f'<a href="{e(url)}">{e(title)}</a>' for title, url in PAPERS) + ".</p>",
           f"<p>{_code_spans(RULES)} {_code_spans(ANCHOR_RULE)}</p>",
           '<div class="controls"><label>filter entries <input type="search" id="filter" '
           'placeholder="name or architecture"></label><label><input type="checkbox" id="unranked" checked> '
           'show entries below the accuracy floor</label><label><input type="checkbox" id="anchors" checked> '
           f'show chance and reference rows</label><label>score in the views <select id="score">{options}'
           '</select></label><span><span id="shown"></span> entries shown; click a column to sort</span></div>']
    if not boards:
        out.append(f'<p id="no-results">{_code_spans(NO_RESULTS)}</p>')
    for board in boards:
        r = board.release
        out += [f'<section data-release="{e(r.slug)}">', f"<h2>{e(release_title(board))}</h2>",
                *_overall_table(board)]
        if not board.anchors:
            out.append(f'<p class="no-panel">{_code_spans(NO_PANEL)}</p>')
        notes = [row for row in board.rows if not row.ranked]
        if notes:
            out.append("<p>Listed, not ranked:</p><ul>")
            out += [f"<li><code>{e(row.entry)}</code>: {e(row.floor_note())}</li>" for row in notes]
            out.append("</ul>")
        if board.anchors:
            out.append("<p>Chance and reference rows:</p><ul>")
            out += [f"<li><i>{e(a.label)}</i>: {e(a.note)}</li>" for a in board.anchors]
            out.append("</ul>")
        if transfer_note(board):
            out.append(f'<p class="transfer-note">{e(transfer_note(board))}</p>')
        out += _view_tables(board)
        names = plot_names(board)
        out.append("<h3>Plots</h3>")
        out += [f'<img src="{e(names[k])}" alt="{e(PLOT_ALTS[k])}, {e(r.slug)}">'
                for k in ("breakdown", "heatmap", "ic_vs_clean")]
        out.append("</section>")
    out += ['<h2 id="columns">Columns</h2>',
            "<p>↑ higher is better, ↓ lower is better, · neither (a baseline). Each score is the mean over the "
            "release's frozen sets, then mean ± std over the entry's training seeds; IC has its 95% bootstrap CI. "
            "Hover a column header for its definition.</p>", *_glossary_html(), "</body>", "</html>", ""]
    return "\n".join(out)


def _row_json(row: Row) -> dict:
    return {"rank": row.rank, "group": row.group, "ranked": row.ranked, "entry": row.entry, "name": row.name,
            "authors": row.authors, "architecture": row.architecture, "num_parameters": row.num_parameters,
            "seeds": row.seeds, "tier": row.tier, "origin": row.origin, "evaluator_version": row.evaluator_version,
            "code_url": row.code_url, "paper_url": row.paper_url, "submission_folder": f"submissions/{row.entry}",
            "scores": {s: row.scores[s].to_dict() for s in SCORE_NAMES},
            "clean_acc_by_dataset": row.clean_acc_by_dataset, "accuracy_floor": row.accuracy_floor,
            "floor_note": row.floor_note(), **({"prediction_only": True} if row.prediction_only else {})}


def _anchor_json(anchor: Anchor) -> dict:
    return {"entry": anchor.entry, "label": anchor.label, "role": anchor.role, "note": anchor.note,
            "scores": {s: anchor.scores[s].to_dict() for s in SCORE_NAMES}}


def render_json(boards: list[Board]) -> str:
    """``leaderboard.json``: every board with its rows, anchors, views and the data behind each plot."""
    return canonical_json({
        "format": "metamer-bench-leaderboard", "format_version": FORMAT_VERSION, "primary_score": PRIMARY,
        "floor_fraction": FLOOR_FRACTION, "rules": RULES, "columns": list(COLUMNS),
        "column_docs": [{"key": c.key, "title": c.title, "better": c.better or None, "definition": c.definition,
                         "metrics_anchor": f"{METRICS_DOC}#{c.anchor}" if c.anchor else None} for c in COLUMNS_DOC],
        "papers": [{"title": t, "url": u} for t, u in PAPERS],
        "releases": [{"name": b.release.name, "version": b.release.version,
                      "manifest_sha256": b.release.manifest_sha256, "slug": b.release.slug,
                      "plots": plot_names(b), "rows": [_row_json(r) for r in b.rows],
                      "anchors": [_anchor_json(a) for a in b.anchors], "views": view_data(b),
                      "cross_architecture": heatmap_data(b), "ic_vs_clean": scatter_data(b)} for b in boards]})


class _TableParser(HTMLParser):
    """Collects the rows of ``table.board`` (entries and anchors) and ``table.view`` tables, with
    their cell texts and whether the page's script hid them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[dict] = []
        self.anchors: list[dict] = []
        self.view_rows: list[dict] = []
        self.images: list[str] = []
        self.body: dict[str, str] = {}
        self.headers: list[dict] = []
        self._table: dict | None = None
        self._row: dict | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        classes = a.get("class", "").split()
        if tag == "body":
            self.body = a
        elif tag == "table" and ("board" in classes or "view" in classes):
            self._table = {"release": a.get("data-release", ""), "view": a.get("data-view"),
                           "score": a.get("data-score")}
        elif tag == "th" and self._table is not None and self._table["view"] is None:
            self.headers.append({"release": self._table["release"], "key": a.get("data-key", ""),
                                 "sort": a.get("aria-sort", "")})
        elif tag == "tr" and self._table is not None and ("data-entry" in a or "data-anchor" in a):
            self._row = {"release": self._table["release"], "entry": a.get("data-entry", a.get("data-anchor")),
                         "anchor": "data-anchor" in a, "rank": a.get("data-rank", ""),
                         "ranked": a.get("data-ranked") == "true", "hidden": "hidden" in a, "cells": [],
                         "view": self._table["view"], "score": self._table["score"]}
        elif tag == "td" and self._row is not None:
            self._cell = []
        elif tag == "img":
            self.images.append(a.get("src", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row is not None and self._cell is not None:
            self._row["cells"].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._row["view"] is not None:
                self.view_rows.append(self._row)
            elif self._row["anchor"]:
                self.anchors.append(self._row)
            else:
                self.rows.append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse_html(text: str) -> dict:
    """Parse a leaderboard page (as written, or as a browser's DOM dump).

    Returns ``{"rows": [{"release", "entry", "rank", "ranked", "hidden", "cells"}], "anchors": [...],
    "view_rows": [... with "view" and "score"], "headers": [{"release", "key", "sort"}] (of the main
    tables), "images": [src], "body": {attribute: value}}``; used by the tests and by
    ``scripts/check_leaderboard_browser.py``.
    """
    parser = _TableParser()
    parser.feed(text)
    parser.close()
    return {"rows": parser.rows, "anchors": parser.anchors, "view_rows": parser.view_rows,
            "headers": parser.headers, "images": parser.images, "body": parser.body}
