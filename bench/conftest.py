"""Benchmark report: medians per workload as samples/s and as ratios to protobuf+cramjam.

pytest-benchmark does the timing; this hook prints one table per workload at the
end of the run (and writes it to bench/results.md), so every ratio comes from a
single run on one machine.
"""

from __future__ import annotations

import os
import pathlib
import platform
from typing import Any, Dict, List

REFERENCE = "protobuf+cramjam"


def _machine() -> str:
    from google.protobuf.internal import api_implementation

    cpu = ""
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu or platform.processor()}, {os.cpu_count()} cores, Python {platform.python_version()},"
        f" protobuf {api_implementation.Type()} backend"
    )


def pytest_terminal_summary(terminalreporter: Any, config: Any) -> None:
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    groups: Dict[str, List[Any]] = {}
    for bench in session.benchmarks:
        if bench.stats is None:
            continue
        groups.setdefault(bench.group or "", []).append(bench)
    timer = getattr(config.option, "benchmark_timer", None)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [f"Machine: {_machine()}; timer {timer or 'default'}; load average at the end {load}", ""]
    for group, benches in sorted(groups.items()):
        ref = next((b for b in benches if b.extra_info.get("contender") == REFERENCE), None)
        lines += [
            f"### {group}",
            "",
            "| contender | median | samples/s | vs protobuf+cramjam | wire bytes | bytes vs cramjam |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for b in sorted(benches, key=lambda b: b.stats.median):
            info = b.extra_info
            median = b.stats.median
            rate = info["samples"] / median
            speed = f"{ref.stats.median / median:.2f}x" if ref else "-"
            size = f"{info['wire_bytes'] / ref.extra_info['wire_bytes']:.3f}" if ref else "-"
            lines.append(
                f"| {info['contender']} | {median * 1000:.2f} ms | {rate:,.0f} | {speed} | {info['wire_bytes']:,} | {size} |"
            )
        lines.append("")
    text = "\n".join(lines)
    terminalreporter.write_sep("=", "promwrite benchmark (medians, one run)")
    terminalreporter.write_line(text)
    pathlib.Path(__file__).with_name("results.md").write_text(text + "\n")
