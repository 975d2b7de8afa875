"""Plotly figures drawn from the stats tables, and nothing else.

Each function takes a `stats.Table` and returns a figure as a plain dict (data + layout) that the
page hands to plotly.js. The colours are the Okabe-Ito palette, which stays distinguishable with
the common forms of colour blindness.
"""

from __future__ import annotations

from html import escape

import plotly.graph_objects as go

from .stats import OTHER, Table

PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
GREY = "#8C8C8C"
FONT = "system-ui, -apple-system, Segoe UI, Roboto, sans-serif"


def _layout(title: str, **extra) -> dict:
    layout = {
        "title": {"text": title, "x": 0, "xanchor": "left", "font": {"size": 16}},
        "font": {"family": FONT, "size": 13, "color": "#1d2433"},
        "margin": {"l": 56, "r": 16, "t": 48, "b": 40},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "legend": {"orientation": "h", "y": -0.18, "x": 0},
        "hovermode": "x unified",
        "xaxis": {"gridcolor": "#e6e8ee"},
        "yaxis": {"gridcolor": "#e6e8ee", "rangemode": "tozero"},
        "colorway": PALETTE,
    }
    layout.update(extra)
    return layout


def _figure(traces: list, layout: dict) -> dict:
    # Build through plotly's graph objects so that a wrong property fails here, in tests.
    return go.Figure(data=traces, layout=layout).to_plotly_json()


def _line(table: Table, column: str, name: str, color: str, **extra) -> go.Scatter:
    symbols = ["circle-open" if f else "circle" for f in table.column("incomplete")]
    return go.Scatter(
        x=table.column("period"),
        y=table.column(column),
        name=name,
        mode="lines+markers",
        line={"color": color, "width": 2},
        marker={"symbol": symbols, "size": 5},
        **extra,
    )


def runs(table: Table) -> dict:
    x = table.column("period")
    opacity = [0.45 if f else 1 for f in table.column("incomplete")]
    traces = [
        go.Bar(x=x, y=table.column("runs"), name="Runs", marker={"color": PALETTE[0], "opacity": opacity}),
        go.Bar(x=x, y=table.column("steps"), name="Steps", marker={"color": PALETTE[1], "opacity": opacity}),
        go.Scatter(
            x=x,
            y=table.column("cumulative_runs"),
            name="Cumulative runs",
            yaxis="y2",
            mode="lines",
            line={"color": PALETTE[2], "width": 2},
        ),
    ]
    layout = _layout(
        table.title,
        barmode="group",
        yaxis={"title": {"text": "per period"}, "gridcolor": "#e6e8ee", "rangemode": "tozero"},
        yaxis2={
            "title": {"text": "cumulative runs"},
            "overlaying": "y",
            "side": "right",
            "rangemode": "tozero",
            "showgrid": False,
        },
        margin={"l": 56, "r": 64, "t": 48, "b": 40},
    )
    return _figure(traces, layout)


def instances(table: Table) -> dict:
    traces = [
        _line(table, "instances", "Reporting instances", PALETTE[0]),
        go.Bar(
            x=table.column("period"),
            y=table.column("new_instances"),
            name="Newly seen",
            marker={"color": PALETTE[1]},
        ),
    ]
    return _figure(traces, _layout(table.title))


def users(table: Table) -> dict:
    traces = [
        _line(table, "users", "Users", PALETTE[0]),
        _line(table, "active_users", "Active users (90 days)", PALETTE[1]),
        _line(table, "monthly_active_users", "Monthly active users", PALETTE[2]),
    ]
    return _figure(traces, _layout(table.title))


def projects(table: Table) -> dict:
    traces = [
        _line(table, "projects", "Projects", PALETTE[0]),
        _line(table, "workflows", "Workflows", PALETTE[1]),
        _line(table, "jobs", "Jobs", PALETTE[2]),
    ]
    return _figure(traces, _layout(table.title))


def versions(table: Table) -> dict:
    groups = [c for c in table.columns if c not in ("period", "incomplete")]
    traces = [
        go.Scatter(
            x=table.column("period"),
            y=table.column(group),
            name=group if group == OTHER else f"v{group}",
            stackgroup="versions",
            mode="lines",
            line={"width": 0.5, "color": GREY if group == OTHER else PALETTE[i % len(PALETTE)]},
        )
        for i, group in enumerate(groups)
    ]
    return _figure(
        traces, _layout(table.title, yaxis={"title": {"text": "instances"}, "rangemode": "tozero"})
    )


def operating_systems(table: Table) -> dict:
    names = table.column("operating_system")
    traces = [
        go.Bar(
            x=table.column("instances"),
            # plotly.js reads a few HTML tags in labels; reported strings must show as text.
            y=[escape(n) for n in names],
            orientation="h",
            marker={"color": [GREY if n == OTHER else PALETTE[0] for n in names]},
            name="Instances",
        )
    ]
    layout = _layout(
        table.title,
        yaxis={"autorange": "reversed"},
        hovermode="closest",
        showlegend=False,
        margin={"l": 96, "r": 16, "t": 48, "b": 40},
    )
    return _figure(traces, layout)


def countries(table: Table) -> dict:
    rows = [r for r in table.rows if r[1]]  # "Other" has no place on a map
    traces = [
        go.Choropleth(
            locations=[r[1] for r in rows],
            z=[r[3] for r in rows],
            text=[r[2] for r in rows],
            locationmode="ISO-3",
            colorscale="Blues",
            marker={"line": {"color": "#ffffff", "width": 0.5}},
            colorbar={"title": {"text": "instances"}, "thickness": 12},
            hovertemplate="%{text}: %{z} instances<extra></extra>",
        )
    ]
    layout = _layout(
        table.title,
        geo={
            "projection": {"type": "natural earth"},
            "lonaxis": {"range": [-180, 180]},
            "lataxis": {"range": [-58, 85]},
            "showframe": False,
            "showcoastlines": False,
            "showcountries": True,
            "countrycolor": "#c9ced8",
            "landcolor": "#eef0f4",
            "showland": True,
            "bgcolor": "rgba(0,0,0,0)",
        },
        margin={"l": 0, "r": 0, "t": 48, "b": 0},
        hovermode="closest",
    )
    return _figure(traces, layout)


FIGURES = {
    "runs": runs,
    "instances": instances,
    "users": users,
    "projects": projects,
    "versions": versions,
    "os": operating_systems,
    "countries": countries,
}


def figure(table: Table) -> dict:
    return FIGURES[table.name](table)
