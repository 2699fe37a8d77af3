"""The report as one self-contained static HTML page (``report.html``) that a leaderboard site can publish as is.

No external file, font or script: the figures are PNG data URIs, the style and the table sorting (click a header;
numbers sort as numbers) are inline. Measured rows and ``reported`` rows are in separate, differently styled
blocks, and the reported block says that its numbers are the papers' own, under their own metric convention.
"""

from __future__ import annotations

import base64
import re
from html import escape
from typing import TYPE_CHECKING

from robench3d.report.markdown import CONVENTION, Table, per_attack_table, reported_table, summary_table

if TYPE_CHECKING:
    from robench3d.report.build import SectionReport
    from robench3d.report.inputs import ReportInput

__all__ = ["render"]

_NUMBER = re.compile(r"^(-?\d+(\.\d+)?( !)?|\[[\d.]+, [\d.]+\])$")

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
main{max-width:1320px;margin:0 auto;padding:24px 28px 60px}
h1{font-size:24px;margin:0 0 6px}h2{font-size:20px;margin:34px 0 4px;border-bottom:2px solid #d5d9e0;padding-bottom:4px}
h3{font-size:16px;margin:22px 0 8px}p.sub{color:#556;margin:0 0 10px}
.block{background:#fff;border:1px solid #d5d9e0;border-radius:6px;padding:14px 18px;margin:12px 0}
.measured{border-left:6px solid #2f6fbf}.reported{border-left:6px solid #c98a12;background:#fffaf0}
.tag{display:inline-block;font-size:12px;font-weight:600;padding:1px 8px;border-radius:10px;margin-right:8px;
vertical-align:middle}.tag.m{background:#dce8f8;color:#1c4f8f}.tag.r{background:#f7e2b5;color:#7a5200}
figure{margin:14px 0 22px}figure img{max-width:100%;height:auto;border:1px solid #e3e6ea;background:#fff}
figcaption{color:#445;font-size:13px;margin-top:4px}
.scroll{overflow-x:auto}table{border-collapse:collapse;font-size:13px;margin:6px 0 10px}
th,td{border:1px solid #dde1e6;padding:3px 9px;text-align:left;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums}summary{cursor:pointer;color:#7a5200;margin:6px 0}
th{background:#eef1f5;cursor:pointer;user-select:none;position:relative}
th:after{content:" \\2195";color:#99a}th.asc:after{content:" \\2191";color:#234}
th.desc:after{content:" \\2193";color:#234}
tr:nth-child(even) td{background:#fafbfc}.reported th{background:#f6e7c6}
.reported tr:nth-child(even) td{background:#fff6e3}
ul.notes{color:#445;margin:6px 0}
"""

_JS = """
document.querySelectorAll("table.sortable").forEach(function(t){
  t.querySelectorAll("th").forEach(function(th,i){
    th.addEventListener("click",function(){
      var asc=!th.classList.contains("asc");
      t.querySelectorAll("th").forEach(function(h){h.classList.remove("asc","desc")});
      th.classList.add(asc?"asc":"desc");
      var body=t.tBodies[0],rows=Array.prototype.slice.call(body.rows);
      function key(r){var s=r.cells[i].textContent.trim(),n=parseFloat(s.replace(/^\\[/,""));
        return s===""?null:(isNaN(n)||!/^[\\[\\d.-]/.test(s)?s.toLowerCase():n)}
      rows.sort(function(a,b){var x=key(a),y=key(b);if(x===y)return 0;if(x===null)return 1;if(y===null)return -1;
        if(typeof x!==typeof y){x=String(x);y=String(y)}return (x<y?-1:1)*(asc?1:-1)});
      rows.forEach(function(r){body.appendChild(r)});
    });
  });
});
"""


def _cell(value: object) -> str:
    text = escape(str(value))
    return f'<td class="num">{text}</td>' if _NUMBER.match(str(value)) else f"<td>{text}</td>"


def _table(table: Table, *, fold: int = 40) -> str:
    """A sortable table; one of more than ``fold`` rows is folded into a <details> element."""
    headers, rows = table
    head = "".join(f"<th>{escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_cell(c) for c in r) + "</tr>" for r in rows)
    html = (f'<div class="scroll"><table class="sortable"><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
            "</table></div>")
    return html if len(rows) <= fold else f"<details><summary>show all {len(rows)} rows</summary>{html}</details>"


def _section(rep: SectionReport) -> str:
    sec = rep.section
    out = [f'<h2 id="{escape(sec.slug)}">{escape(sec.title)}</h2>']
    if not rep.per_attack.empty:
        out.append(f'<div class="block measured"><span class="tag m">measured here</span>{escape(sec.subtitle())}')
        if not rep.summary.empty:
            out += ["<h3>Summary per defense and setting</h3>", _table(summary_table(rep))]
        for plot in rep.plots:
            data = base64.b64encode(rep.pngs[f"{sec.slug}-{plot.name}.png"]).decode()
            out.append(f'<figure><img alt="{escape(plot.title)}" src="data:image/png;base64,{data}">'
                       f"<figcaption>{escape(plot.caption)}</figcaption></figure>")
        for setting in sec.settings(rep.per_attack):
            out += [f"<h3>Robust accuracy per attack, {escape(setting)} (%)</h3>",
                    _table(per_attack_table(rep, setting))]
        out.append("</div>")
    if rep.notes:
        out.append('<ul class="notes">' + "".join(f"<li>{escape(n)}</li>" for n in rep.notes) + "</ul>")
    if not sec.reported.empty:
        out += ['<div class="block reported"><span class="tag r">reported, as published</span>'
                f"{len(sec.reported)} rows of papers' own numbers under their own metric convention: not measured "
                "here, not plotted, never compared with measured rows.", _table(reported_table(sec.reported)),
                "</div>"]
    return "\n".join(out)


def render(data: ReportInput, reports: list[SectionReport]) -> str:
    """The whole page."""
    toc = " · ".join(f'<a href="#{escape(r.section.slug)}">{escape(r.section.title)}</a>' for r in reports)
    notes = "".join(f"<li>{escape(n)}</li>" for n in data.notes)
    body = "\n".join(_section(r) for r in reports)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>robench3d report: {escape(data.source)}</title><style>{_CSS}</style></head>\n"
            f"<body><main><h1>robench3d report</h1><p class=\"sub\">{escape(data.source)} · {toc}</p>"
            f"<p>{escape(CONVENTION.replace('`', ''))}</p>" + (f'<ul class="notes">{notes}</ul>' if notes else "")
            + f"\n{body}\n</main><script>{_JS}</script></body></html>\n")
