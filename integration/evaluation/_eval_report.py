from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

logger = logging.getLogger(__name__)

__all__ = ["EvalReport", "METRICS", "SYSTEMS"]

#: Metric names as they appear in the report (``ranx`` metric names).
METRICS = ("ndcg@10", "recall@100", "mrr@10")
#: The systems ``echo-splade eval`` knows, in report order.
SYSTEMS = ("bm25", "sparse", "sparse-inference-free", "hybrid")

_MARKERS = ("o", "s", "^", "D", "v", "P")
_COLOURS = {"bm25": "#7f7f7f", "sparse": "#1f77b4", "sparse-inference-free": "#2ca02c", "hybrid": "#d62728"}


@dataclasses.dataclass
class EvalReport:
    """The figures of one evaluation run and the exact configuration behind them.

    ``systems``: ``{system: {"ndcg@10", "recall@100", "mrr@10", "p50_ms"}}``;
    ``config``: model, adapter, model_rev, pruning, templates, engine version,
    analyzer, dataset, split, query count, ... (JSON-serialisable).
    """

    systems: dict[str, dict[str, float]]
    config: dict[str, Any]

    def to_dict(self) -> dict:
        return {"systems": {name: dict(figures) for name, figures in self.systems.items()}, "config": dict(self.config)}

    def save(self, path: Union[str, os.PathLike]) -> Path:
        """Write the JSON report (parent folders are created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> EvalReport:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(systems=data["systems"], config=data["config"])

    @classmethod
    def combine(cls, reports: Mapping[str, EvalReport]) -> EvalReport:
        """One report of several encoders' runs on the same dataset: ``{label: report}`` in order.

        BM25 (the same for every encoder) is kept once, from the first report that has it; every other
        system is renamed ``"<system> [<label>]"``. ``config["runs"]`` holds each run's configuration.
        """
        if not reports:
            raise ValueError("combine needs at least one report")
        systems: dict[str, dict[str, float]] = {}
        for label, report in reports.items():
            for name, figures in report.systems.items():
                key = name if name == "bm25" else f"{name} [{label}]"
                if key not in systems:
                    systems[key] = dict(figures)
        first = next(iter(reports.values())).config
        shared = {
            k: first.get(k)
            for k in (
                "dataset",
                "dataset_name",
                "split",
                "num_queries",
                "engine",
                "analyzer",
                "bm25",
                "depth",
                "self_hits",
                "hybrid",
                "truncate",
                "created",
            )
        }
        config = {**shared, "models": list(reports), "runs": {label: r.config for label, r in reports.items()}}
        return cls(systems=systems, config=config)

    def format_table(self) -> str:
        """A plain-text table: one row per system, metrics and p50 latency."""
        header = ["system", *METRICS, "p50_ms"]
        rows = [header]
        for name, figures in self.systems.items():
            rows.append([name, *(f"{figures[m]:.4f}" for m in METRICS), f"{figures['p50_ms']:.1f}"])
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = []
        for number, row in enumerate(rows):
            cells = [row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:])]
            lines.append("  ".join(cells))
            if number == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def save_plot(self, path: Union[str, os.PathLike], title: str | None = None) -> Path:
        """A PNG of quality (one panel per metric) against p50 latency, one point per system."""
        import matplotlib  # lazy: heavy, and only plots need it

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows_of_legend = (len(self.systems) + 3) // 4
        fig, axes = plt.subplots(
            1, len(METRICS), figsize=(4.2 * len(METRICS), 4.0 + 0.25 * rows_of_legend), squeeze=False
        )
        latencies = [f["p50_ms"] for f in self.systems.values()]
        log_x = bool(latencies) and min(latencies) > 0 and max(latencies) / min(latencies) > 20
        labels = list(dict.fromkeys(n.partition(" [")[2] for n in self.systems if " [" in n))
        for axis, metric in zip(axes[0], METRICS):
            for name, figures in self.systems.items():
                x, y = figures["p50_ms"], figures[metric]
                kind, _, label = name.partition(" [")
                marker = _MARKERS[labels.index(label) % len(_MARKERS)] if label else "o"
                axis.scatter([x], [y], s=70, color=_COLOURS.get(kind, "#9467bd"), marker=marker, label=name, zorder=3)
                axis.annotate(name, (x, y), textcoords="offset points", xytext=(6, 5), fontsize=8)
            axis.set_xlabel("p50 latency per query (ms, client side)")
            axis.set_ylabel(metric)
            top = max([f[metric] for f in self.systems.values()] + [0.05])
            axis.set_ylim(0, min(1.12, top * 1.25 + 0.02))  # headroom for the labels, also at 1.0
            if log_x:
                axis.set_xscale("log")
            else:
                axis.set_xlim(0, max(latencies + [1.0]) * 1.3)
            axis.grid(True, alpha=0.3)
            axis.set_title(metric, pad=8)
        handles, legend = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, legend, loc="lower center", ncol=min(len(legend), 4), frameon=False, fontsize=8)
        fig.suptitle(title or self._title(), fontsize=10)
        fig.tight_layout(rect=(0, 0.04 + 0.05 * rows_of_legend, 1, 0.94))
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path

    def _title(self) -> str:
        cfg: Mapping[str, Any] = self.config
        parts = [
            str(cfg.get("dataset_name", "")),
            f"split={cfg.get('split', '?')}",
            f"{cfg.get('num_queries', '?')} queries",
        ]
        if cfg.get("models"):
            parts.append(f"models={', '.join(cfg['models'])}")
        elif cfg.get("model"):
            parts.append(f"model={cfg['model']}")
        if cfg.get("adapter"):
            parts.append(f"adapter={Path(str(cfg['adapter'])).name}")
        parts.append(str(cfg.get("engine", "")))
        return "  ".join(p for p in parts if p)
