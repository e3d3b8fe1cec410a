"""The results page's generated section (docs/results.md), from sweep folders
(`asfed report SWEEP... --readme PAGE`).

Per sweep: its title, the budget (rounds, episodes a round, env steps, seeds) and wall time, and
a table per panel and series of the final team return (mean and 95% CI over seeds) beside the
random policy, the best scripted policy and what the paper claims, with a plain verdict where
asfed's numbers and the paper's differ:

- against the range the paper's number implies (`[sweep.expect]`): "agrees with the paper" when
  the mean is inside it, "differs from the paper" when the 95% interval lies wholly outside it,
  else "not distinguishable from the paper" (the mean is outside, the interval reaches it);
- a 95% interval that holds the random policy's return: "indistinguishable from random";
  one entirely below it: "below random" (a learner that ends worse than acting at random);
- AS's interval entirely below another method's in the same panel: "AS below <method>"
  (the paper claims AS matches or exceeds the baselines).

The section sits between two marker lines in the page; everything between them is replaced.
"""

from __future__ import annotations

import math
from pathlib import Path

from asfed.atomic import atomic_write
from asfed.errors import AsfedError
from asfed.report import stats
from asfed.report.collect import Source
from asfed.report.panels import Panel, Series, panels

BEGIN, END = "<!-- asfed-results:begin -->", "<!-- asfed-results:end -->"


def _n(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.2f}"


def _ci(mean: float, lo: float, hi: float) -> str:
    return _n(mean) if not math.isfinite(lo) else f"{_n(mean)} [{_n(lo)}, {_n(hi)}]"


def against_random(lo: float, hi: float, rand: float) -> str:
    """What a final return's 95% interval [lo, hi] says against the random policy's `rand`:
    "indistinguishable from random", "below random", or "" (above it, or no interval)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return ""
    if lo <= rand <= hi:
        return f"indistinguishable from random ({rand:.2f})"
    return f"below random ({rand:.2f})" if hi < rand else ""


def against_paper(mean: float, lo: float, hi: float, a: float, b: float) -> str:
    """What a final return (mean, 95% interval [lo, hi]) says against the paper's [a, b]."""
    if a <= mean <= b:
        return f"agrees with the paper ({a:g} to {b:g})"
    if math.isfinite(lo) and math.isfinite(hi) and lo <= b and hi >= a:
        return f"not distinguishable from the paper ({a:g} to {b:g}): the interval reaches it"
    return f"differs from the paper ({a:g} to {b:g})"


def verdict(source: Source, panel: Panel, series: Series) -> str:
    """The plain statements for one row (see the module docstring); "" if none."""
    if series.runs and series.diverged == len(series.runs):
        return "no final return: every seed diverged"
    mean, lo, hi = series.final_ci()
    notes = []
    expect = source.expect_for(panel.env, series.method)
    if expect is not None:
        notes.append(against_paper(mean, lo, hi, *expect))
    note = against_random(lo, hi, panel.references["random"].mean)
    if note:
        notes.append(note)
    if series.method == "as" and math.isfinite(hi):
        above = [
            s.label
            for s in panel.series
            if s.method != "as" and math.isfinite(s.final_ci()[1]) and s.final_ci()[1] > hi
        ]
        if above:
            notes.append("AS below " + ", ".join(above))
    return "; ".join(notes)


def _budget(source: Source) -> str:
    cfgs = [r.config for r in source.runs]
    rounds = "/".join(str(r) for r in sorted({c["rounds"] for c in cfgs}))
    done = "/".join(str(r) for r in sorted({len(r.team) for r in source.runs}))
    episodes = "/".join(str(e) for e in sorted({c["episodes"] for c in cfgs}))
    steps = "/".join(f"{s:,}" for s in sorted({c["episodes"] * c["horizon"] for c in cfgs}))
    seeds = len({c["seed"] for c in cfgs})
    wall = sum(s.get("wall_seconds") or 0.0 for s in source.sessions)  # None: unknown
    workers = sorted({str(s.get("workers")) for s in source.sessions})
    trained = [r.train_seconds for r in source.runs if r.train_seconds]
    text = (
        f"Budget: {rounds} rounds per run ({done} done) of {episodes} episodes "
        f"(up to {steps} env steps a round), {seeds} seeds, {len(source.runs)} of "
        f"{source.planned} runs."
    )
    if source.sessions:
        per_run = sum(trained) / max(len(trained), 1)
        text += (
            f" Wall time {duration(wall)} on {'/'.join(workers)} worker(s)"
            f" ({duration(per_run)} of training per run on average)."
        )
    return text


def duration(seconds: float) -> str:
    """12 s, 3.5 min, 2.25 h."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.2f} h"


def section(source: Source) -> str:
    """One sweep's part of the results section (Markdown)."""
    lines = [f"#### {source.heading}", "", _budget(source)]
    if source.claim:
        lines += ["", f"The paper: {source.claim}"]
    lines += [
        "",
        "| panel | method | final team return [95% CI] | seeds | random policy | best scripted "
        "| the paper says | asfed vs the paper |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for panel in panels(source):
        best = panel.best_scripted()
        rand = panel.references["random"].mean
        for s in panel.series:
            lines.append(
                f"| {panel.title} | {s.label} | {_ci(*s.final_ci())} | {_seeds(s)} | "
                f"{rand:.2f} | {f'{best.mean:.2f} ({best.label})' if best else 'none'} | "
                f"{source.claim_for(panel.env, s.method) or '-'} | "
                f"{verdict(source, panel, s) or '-'} |"
            )
    return "\n".join(lines + _anticipation_lines(source))


def _seeds(series: Series) -> str:
    """A series' seed count, naming those that diverged (left out of its final return)."""
    n = len(series.runs)
    return f"{n} ({series.diverged} diverged)" if series.diverged else str(n)


def _anticipation_lines(source: Source) -> list[str]:
    """What the anticipations do (the `anticipation` post-run step's anticipation.csv): per
    series, the shared policies' entropy and the policy-anticipation MSE at the first and the
    last logged round, means over the seeds that logged both; [] where no run has them."""
    rows = []
    for panel in panels(source):
        for s in panel.series:
            logged = [r.anticipation for r in s.runs if len(r.anticipation) >= 2]
            if not logged:
                continue
            first, last = [t[0] for t in logged], [t[-1] for t in logged]
            mean = lambda ts, k: sum(float(t[k]) for t in ts) / len(ts)  # noqa: E731
            span = f"{first[0]['round']} to {'/'.join(sorted({t['round'] for t in last}))}"
            rows.append(
                f"| {panel.title} | {s.label} | {len(logged)} | {span} | "
                f"{mean(first, 'entropy'):.4f} to {mean(last, 'entropy'):.4f} | "
                f"{mean(first, 'mse'):.2g} to {mean(last, 'mse'):.2g} |"
            )
    if not rows:
        return []
    return [
        "",
        "What the anticipations do (`anticipation.csv`, means over seeds): the shared "
        "policies' entropy (uniform is log A nats) and the mean squared difference between a "
        "policy and a neighbour's anticipation of it, at the first and the last logged round.",
        "",
        "| panel | method | seeds | rounds | policy entropy | policy-anticipation MSE |",
        "|---|---|---|---|---|---|",
        *rows,
    ]


def results_markdown(sources: list[Source], command: str) -> str:
    """The whole section: a line saying how it was made, then each sweep's part."""
    sweeps = [s for s in sources if s.is_sweep and s.runs]
    if not sweeps:
        raise AsfedError("the results page comes from sweep folders; none was given with runs")
    head = (
        f"Generated by `{command}` (do not edit by hand: it is rewritten). Final team return: "
        f"each run's mean over its last {stats.FINAL_WINDOW} rounds; mean and 95% Student-t "
        "interval over seeds. Random and best scripted: reference policies' team returns for "
        "the panel's env options (512 episodes)."
    )
    return "\n\n".join([head, *(section(s) for s in sweeps)])


def markers(name: str | None = None) -> tuple[str, str]:
    """A section's marker lines: the page's main section, or a named one (`--section NAME`),
    so sweeps reported at different times each keep their own generated section."""
    if name is None:
        return BEGIN, END
    if not name.replace("-", "").isalnum():
        raise AsfedError(f"section {name!r} is invalid; accepted: letters, digits and hyphens")
    return f"<!-- asfed-results:{name}:begin -->", f"<!-- asfed-results:{name}:end -->"


def replace_section(readme: Path, text: str, name: str | None = None) -> str:
    """The page's text with the part between the markers replaced by `text` (not written)."""
    begin, end = markers(name)
    try:
        old = Path(readme).read_text()
    except FileNotFoundError:
        raise AsfedError(f"no such file: {readme}") from None
    if old.count(begin) != 1 or old.count(end) != 1 or old.index(begin) > old.index(end):
        raise AsfedError(
            f"{readme} needs one line {begin} and, after it, one line {end} where the results "
            "section goes"
        )
    head, rest = old.split(begin)
    _, tail = rest.split(end)
    return f"{head}{begin}\n{text}\n{end}{tail}"


def write_readme(readme: Path, new_text: str) -> None:
    atomic_write(Path(readme), new_text.encode())
