"""The report as one self-contained HTML page: figures inlined as PNG data URIs, styles inline,
no script and no network request, so it opens anywhere and can be mailed as one file.

Per source (a sweep, or a folder of runs): the paper's claim, the budget and wall time, learning
curves with 95% bands and reference lines, the final-return table with CIs (normalised: 0 =
random, 1 = best scripted), bytes sent per round, Fig. 7's anticipation metrics where the runs
logged them, any trade-off and audit found in the folders, and every run's config.
"""

from __future__ import annotations

import base64
import csv
import html
import math
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from asfed.config import to_toml
from asfed.report import figures, stats
from asfed.report.collect import Source, audits
from asfed.report.panels import Panel, panels
from asfed.report.results import duration, verdict

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1280px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 2px solid #ccc; margin-top: 2em; }
blockquote { border-left: 4px solid #9ab; margin: 0.5em 0; padding: 0.2em 1em; color: #444;
             background: #f5f8fa; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 12.5px; max-width: 100%; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; }
th { background: #eef2f5; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.figs { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; } figcaption { font-size: 11px; color: #555; max-width: 640px; }
img.plot { max-width: 100%; border: 1px solid #ddd; }
pre { background: #f7f7f7; padding: 0.5em; font-size: 11.5px; overflow-x: auto; }
.meta, .note { color: #666; font-size: 12px; }
"""


def _e(text: Any) -> str:
    return html.escape(str(text))


def _img(png: bytes, alt: str, caption: str = "") -> str:
    data = base64.b64encode(png).decode()
    cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    src = f"data:image/png;base64,{data}"
    return f'<figure><img class="plot" alt="{_e(alt)}" src="{src}">{cap}</figure>'


def _num(x: float, digits: int = 2) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _ci(mean: float, lo: float, hi: float, digits: int = 2) -> str:
    if not math.isfinite(lo):
        return _num(mean, digits)
    return f"{_num(mean, digits)} [{_num(lo, digits)}, {_num(hi, digits)}]"


def _table(head: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{_e(c)}</td>' if i in numeric else f"<td>{_e(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _bytes(b: float) -> str:
    for unit, size in (("MB", 1e6), ("kB", 1e3)):
        if b >= size:
            return f"{b / size:.3g} {unit}"
    return f"{b:.0f} B"


def _budget(source: Source) -> str:
    if not source.runs and source.tradeoff is not None:
        return "no run folders here: the trade-off's rows were read from its archive (--archive)"
    if not source.runs:
        return "no run has completed a round yet"
    cfgs = [r.config for r in source.runs]
    rounds = sorted({len(r.team) for r in source.runs})
    target = sorted({c["rounds"] for c in cfgs})
    episodes = sorted({c.get("episodes") for c in cfgs})
    steps = sorted({c.get("episodes", 0) * c.get("horizon", 0) for c in cfgs})
    seeds = sorted({c["seed"] for c in cfgs})
    seconds = sum(s.get("wall_seconds") or 0.0 for s in source.sessions)  # None: unknown
    trained = [r.train_seconds for r in source.runs if r.train_seconds]
    wall = (
        f"; wall time {duration(seconds)} over {len(source.sessions)} session(s)"
        f" ({duration(sum(trained) / max(len(trained), 1))} of training per run on average)"
        if source.sessions
        else ""
    )
    gone = sum(1 for r in source.runs if r.diverged)
    return (
        f"{len(source.runs)} of {source.planned} runs with results"
        + (f" ({gone} diverged: their curves stop there, no final return)" if gone else "")
        + "; rounds done "
        f"{'/'.join(map(str, rounds))} (target {'/'.join(map(str, target))}); episodes a round "
        f"{'/'.join(map(str, episodes))} (up to {'/'.join(map(str, steps))} env steps); seeds "
        f"{', '.join(map(str, seeds))}{wall}"
    )


def final_rows(source: Source, ps: list[Panel]) -> list[list[str]]:
    """The final-return table's rows (see `final_table`)."""
    rows = []
    for panel in ps:
        refs = panel.references
        best = panel.best_scripted()
        for s in panel.series:
            mean, lo, hi = s.final_ci()
            norm = [panel.normalised(v) for v in (mean, lo, hi)]
            rows.append([
                panel.title, s.label,
                f"{len(s.runs)} ({s.diverged} diverged)" if s.diverged else str(len(s.runs)),
                str(s.rounds), _ci(mean, lo, hi),
                _ci(*norm), _num(refs["random"].mean),
                f"{_num(best.mean)} ({best.label})" if best else "none scripted",
                _num(refs["defect"].mean) if "defect" in refs else "n/a",
                source.claim_for(panel.env, s.method) or "-",
                verdict(source, panel, s) or "-",
            ])  # fmt: skip
    return rows


FINAL_HEAD = [
    "panel", "series", "seeds", "rounds", "final team return [95% CI]",
    "normalised [95% CI]", "random policy", "best scripted", "all selfish", "the paper says",
    "asfed vs the paper",
]  # fmt: skip


def _section(index: int, source: Source) -> tuple[str, int]:
    """One source's HTML and how many plots it holds."""
    out = [f'<section id="s{index}"><h2>{_e(source.heading)}</h2>']
    out.append(f'<p class="meta">{_e(source.path)}</p>')
    if source.claim:
        out.append(f"<blockquote><b>The paper:</b> {_e(source.claim)}</blockquote>")
    out.append(f"<p><b>Budget:</b> {_e(_budget(source))}</p>")
    plots = 0
    ps = panels(source) if source.runs else []
    if ps:
        out.append("<h3>Learning curves</h3><div class='figs'>")
        for p in ps:
            out.append(_img(figures.learning_curves(p), f"learning curves: {p.title}"))
            plots += 1
        out.append("</div>")
        out.append("<h3>Final team return</h3>")
        out.append(
            f"<p class='note'>Final team return: each run's mean over its last "
            f"{stats.FINAL_WINDOW} rounds; mean over seeds with a 95% Student-t interval. "
            "Normalised: 0 = a uniformly random policy, 1 = the best scripted policy "
            "(reference returns over 512 episodes, seed 0).</p>"
        )
        out.append(_table(FINAL_HEAD, final_rows(source, ps), {2, 3, 4, 5, 6}))
        if any(p.best_scripted() for p in ps):
            out.append(_img(figures.normalised_finals(ps), "normalised final team return"))
            plots += 1
        out.append("<h3>Communication</h3>")
        rows = [
            [p.title, s.label, _bytes(s.bytes_per_round()), _bytes(_per_episode(s))]
            for p in ps
            for s in p.series
        ]
        out.append(_table(["panel", "series", "bytes / round", "bytes / episode"], rows, {2, 3}))
        out.append(_img(figures.bytes_per_round(ps), "bytes sent per round"))
        plots += 1
        for p in ps:
            png = figures.anticipation(p)
            if png is not None:
                out.append("<h3>Anticipations (the paper's Fig. 7)</h3>")
                caption = (
                    "Read from the message log (logged rounds only), at each round's last "
                    "sharing step; mean over ordered pairs, then over seeds (95% bands)."
                )
                out.append(_img(png, f"anticipation: {p.title}", caption))
                plots += 1
    html_, n = _extras(source)
    out.append(html_)
    plots += n
    out.append(_runs(source))
    out.append("</section>")
    return "\n".join(out), plots


def _per_episode(s) -> float:
    return sum(r.bytes_total.mean() / r.config.get("episodes", 1) for r in s.runs) / len(s.runs)


def _extras(source: Source) -> tuple[str, int]:
    """Trade-off and audit results found in the source's folders."""
    out, plots = [], 0
    if source.tradeoff is not None:
        out.append("<h3>Privacy trade-off</h3>")
        for png, alt in (
            (source.tradeoff.with_suffix(".png"), "privacy trade-off"),
            (source.tradeoff.with_name("frontier.png"), "privacy-performance frontier"),
        ):
            if png.is_file():
                out.append(_img(png.read_bytes(), alt))
                plots += 1
        with open(source.tradeoff, newline="") as f:
            rows = list(csv.reader(f))
        if rows:
            body = [[_short(c) for c in r] for r in rows[1:]]
            out.append(_table(rows[0], body))
    found = audits(source)
    if found:
        out.append("<h3>Audits</h3>")
    for payload, folder in found:
        out.append(f"<p class='meta'>{_e(payload.get('command', ''))}</p>")
        if (folder / "audit.png").is_file():
            out.append(_img((folder / "audit.png").read_bytes(), "audit"))
            plots += 1
        rows = [
            [
                s["method"], s["attack"], s["attacker"], str(s["runs"]),
                _ci(*_triple(s["score"], s["score_ci"])), _num(s["chance"]),
                _ci(*_triple(s["baseline"], s["baseline_ci"])),
                _ci(*_triple(s["leakage"], s["leakage_ci"])),
                _num(s.get("extra", {}).get("auc", math.nan)), s.get("note") or s["ci_method"],
            ]
            for s in payload.get("summaries", [])
        ]  # fmt: skip
        head = ["method", "attack", "attacker", "runs", "score", "chance", "actions only"]
        out.append(_table([*head, "leakage", "AUC", "note"], rows))
        if payload.get("caveat"):
            out.append(f"<p class='note'>{_e(payload['caveat'])}</p>")
    return "\n".join(out), plots


def _triple(value, ci) -> tuple[float, float, float]:
    if value is None:
        return math.nan, math.nan, math.nan
    return (value, *ci) if ci else (value, math.nan, math.nan)


def _short(cell: str) -> str:
    try:
        x = float(cell)
    except ValueError:
        return cell
    return cell if x.is_integer() or not math.isfinite(x) else f"{x:.4g}"


def _runs(source: Source) -> str:
    out = ["<h3>Runs and their configs</h3>"]
    rows = [
        [
            r.name, str(r.config.get("seed")), f"{len(r.team)}/{r.config.get('rounds')}",
            "diverged" if r.diverged else _num(stats.final(r.team)),
            _num(r.train_seconds or math.nan, 0),
        ]
        for r in source.runs
    ]  # fmt: skip
    out.append(_table(["run", "seed", "rounds", "final team return", "train s"], rows, {1, 3, 4}))
    for r in source.runs:
        out.append(
            f"<details><summary>{_e(r.name)}: config.toml</summary>"
            f"<pre>{_e(to_toml(r.config))}</pre></details>"
        )
    if source.scenario_toml:
        out.append(
            "<details><summary>the scenario (as the sweep read it)</summary>"
            f"<pre>{_e(source.scenario_toml)}</pre></details>"
        )
    for s in source.sessions:
        out.append(
            f"<p class='meta'>session {_e(s.get('started', ''))}: "
            f"{_e(s.get('command', ''))} ({_num(s.get('wall_seconds', math.nan), 0)} s)</p>"
        )
    return "\n".join(out)


def render(sources: list[Source]) -> tuple[str, int]:
    """The page's HTML and the number of plots it shows."""
    try:
        version = metadata.version("asfed")
    except metadata.PackageNotFoundError:
        version = "?"
    sections, plots = [], 0
    for i, source in enumerate(sources):
        text, n = _section(i, source)
        sections.append(text)
        plots += n
    toc = "".join(f'<li><a href="#s{i}">{_e(s.heading)}</a></li>' for i, s in enumerate(sources))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>asfed report</title><style>{STYLE}</style></head>
<body>
<h1>asfed report</h1>
<p class="meta">asfed {_e(version)}, {_e(time.strftime("%Y-%m-%d %H:%M"))}; {plots} plots.
Reference lines: a uniformly random policy, the best scripted policy (an oracle where the env
has private parameters) and everyone selfish, each for the panel's env options
(<code>asfed.envs.references</code>).</p>
<ul>{toc}</ul>
{"".join(sections)}
</body></html>
"""
    return page, plots


def write(sources: list[Source], out: Path) -> int:
    """Write the page to `out` (atomically); returns the number of plots."""
    from asfed.atomic import atomic_write

    page, plots = render(sources)
    atomic_write(Path(out), page.encode())
    return plots
