"""Publishes a run of the bench: the README's tables (between its bench markers) and
bench/results/chart.png, both from one JSON lines file of bench/run.py.

    python3 bench/publish.py bench/results/full.jsonl
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
README = os.path.join(ROOT, "README.md")
CHART = os.path.join(HERE, "results", "chart.png")
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

BATCH = [("wasm", "Wasm guest (RG.WASMRUN)"), ("python", "Python recipe (RG.PYEXECUTE)"),
         ("lua", "Lua EVAL: SCAN + HGET + split + count"),
         ("lua_floor", "Lua EVAL: SCAN + HGET only (floor)"),
         ("client", "redis-py: SCAN + pipelined HGET + Counter"),
         ("gears2_js", "RedisGears 2 JS: one TFCALL, SCAN + HGET + split + count"),
         ("native_floor", "Native floor: a C module, RedisModule_Scan + HashGet")]
TRIGGERS = [("none", "no registration"), ("wasm_sync", "Wasm guest, sync"),
            ("wasm_async", "Wasm guest, async"), ("python_sync", "Python recipe, sync"),
            ("python_async", "Python recipe, async"),
            ("gears2_js", "RedisGears 2 JS keyspace trigger (sync)")]
STREAMS = [("wasm", "Wasm guest"), ("python", "Python recipe"),
           ("worker", "redis-py consumer-group worker"),
           ("gears2_js", "RedisGears 2 JS stream trigger")]


# The performance targets: (workload, contender) -> [(metric, at most?, bound)]. A bound
# that is a name is another contender of the row's workload: "ahead of" it.
TARGETS = {
    ("batch", "wasm"): [("ratio_to_lua", True, 0.75), ("ratio_to_floor", True, 1.5),
                        ("seconds", True, "gears2_js"), ("ping_p99_ms", True, 10.0)],
    ("batch", "python"): [("ratio_to_lua", True, 1.2), ("ratio_to_floor", True, 1.5),
                          ("ping_p99_ms", True, 10.0)],
    ("triggers", "wasm_sync"): [("ratio_to_none", False, 0.70),
                                ("ratio_to_none", False, "gears2_js")],
    ("triggers", "python_sync"): [("ratio_to_none", False, 0.60),
                                  ("ratio_to_none", False, "gears2_js")],
    ("triggers", "python_async"): [("ratio_to_none", False, 0.60), ("drain_s", True, 1.0)],
    ("streams", "wasm"): [("ratio_to_worker", False, 3.0), ("msgs_per_s", False, "python"),
                          ("msgs_per_s", False, "gears2_js")],
}
# Entering a step: at most this many ns per record at this batch size.
ENTRY_TARGET = (1024, 100)
UNITS = {"ratio_to_lua": "x Lua", "ratio_to_floor": "x floor", "ping_p99_ms": " ms p99",
         "ratio_to_none": "x none", "ratio_to_worker": "x worker", "drain_s": " s drain"}


def target(run, workload, contender):
    """The target of a row and whether this run meets it ('' when it has none)."""
    parts = []
    for metric, at_most, bound in TARGETS.get((workload, contender), []):
        v = run.value(workload, contender, metric)
        if isinstance(bound, str):
            other = run.value(workload, bound, metric)
            if other is None:
                continue  # that peer did not run
            met = v is not None and (v < other if at_most else v > other)
            text = f"ahead of {LABELS[workload][bound].split(':')[0]}"
        else:
            met = v is not None and (v <= bound if at_most else v >= bound)
            text = f"{'≤' if at_most else '≥'} {bound:g}{UNITS[metric]}"
        parts.append(f"{text}: {'met' if met else '**missed**'}")
    return "; ".join(parts)


# The alternatives a Redis user has, drawn apart from the module's contenders.
PEERS = {"lua", "lua_floor", "client", "none", "worker", "gears2_js", "native_floor"}
LABELS = {"batch": dict(BATCH), "triggers": dict(TRIGGERS), "streams": dict(STREAMS)}
OURS, PEER = "#4a7ab5", "#9a9a9a"


class Run:
    def __init__(self, path):
        with open(path) as f:
            self.figures = [json.loads(line) for line in f if line.strip()]
        info = self.one("machine", "this", "info")
        self.machine = info["value"]
        self.command = info["command"]
        self.sizes = info["sizes"]

    def one(self, workload, contender, metric, **params):
        for f in self.figures:
            if (f["workload"], f["contender"], f["metric"]) == (workload, contender, metric) \
                    and all(f.get(k) == v for k, v in params.items()):
                return f
        return None

    def value(self, workload, contender, metric, **params):
        f = self.one(workload, contender, metric, **params)
        return None if f is None else f["value"]


def cell(v, fmt):
    return "–" if v is None else fmt.format(v)


def tables(run):
    m = run.machine
    movies = run.sizes["movies"]
    out = [f"Measured on {m['cpu']} ({m['cores']} cores, {m['memory_gb']} GB), Redis "
           f"{m['redis']}, Python {m['python']}, on {m['date']}, by `make bench` "
           f"(`{run.command}`). Each workload's contenders ran interleaved in one process; "
           f"figures are medians of {run.sizes['rounds']} rounds. bench/README.md says how "
           "to read them; the targets are the project's (bench/README.md, Targets).", "",
           f"**Recipe 2, count movies by genre over {movies:,} hashes** "
           "(time; another client's PINGs meanwhile; redis-server RSS growth)", "",
           "| contender | time | ratio to Lua | ratio to the floor | PING p50 / p99 "
           "| RSS growth | target |",
           "|---|---|---|---|---|---|---|"]
    for key, label in BATCH:
        v = lambda metric: run.value("batch", key, metric)  # noqa: E731
        if v("seconds") is None:
            continue  # not installed where this run was made
        grow = None
        if v("seconds") is not None:
            grow = run.value("memory", key, "rss_peak_mb") - run.value(
                "memory", key, "rss_before_mb")
        out.append(f"| {label} | {cell(v('seconds'), '{:.2f} s')} | "
                   f"{cell(v('ratio_to_lua'), '{:.2f}x')} | "
                   f"{cell(v('ratio_to_floor'), '{:.2f}x')} | "
                   f"{cell(v('ping_p50_ms'), '{:.1f}')} / {cell(v('ping_p99_ms'), '{:.1f}')} ms"
                   f" | {cell(grow, '{:+.1f} MB')} | {target(run, 'batch', key)} |")
    out += ["", f"**Recipe 1 as a keyspace trigger, redis-benchmark SET "
                f"({run.sizes['set_requests']:,} requests, 50 clients, random keys)**", "",
            "| registration | SET/s | ratio to none | SET p99 | backlog drained after "
            "| all_keys complete | target |", "|---|---|---|---|---|---|---|"]
    for key, label in TRIGGERS:
        v = lambda metric: run.value("triggers", key, metric)  # noqa: E731
        if v("set_rps") is None:
            continue
        complete = v("all_keys_complete")
        out.append(f"| {label} | {cell(v('set_rps'), '{:,.0f}')} | "
                   f"{cell(v('ratio_to_none'), '{:.2f}')} | {cell(v('set_p99_ms'), '{:.1f} ms')}"
                   f" | {cell(v('drain_s'), '{:.2f} s')} | "
                   f"{'–' if complete is None else ('yes' if complete else 'NO')} | "
                   f"{target(run, 'triggers', key)} |")
    out += ["", f"**Recipe 3, stream to keys, a backlog of {run.sizes['messages']:,} "
                "messages**", "",
            "| consumer | messages/s | ratio to the worker | start | target |",
            "|---|---|---|---|---|"]
    for key, label in STREAMS:
        v = lambda metric: run.value("streams", key, metric)  # noqa: E731
        if v("msgs_per_s") is None:
            continue
        out.append(f"| {label} | {cell(v('msgs_per_s'), '{:,.0f}')} | "
                   f"{cell(v('ratio_to_worker'), '{:.2f}')} | {cell(v('start_s'), '{:.3f} s')} | "
                   f"{target(run, 'streams', key)} |")
    out += ["", "**Entry cost, ns per record entering a step and coming back**", "",
            "| batch size | Python step | Wasm guest | Python `len` step | Wasm `View` step (len) "
            "| target |", "|---|---|---|---|---|---|"]
    for batch in (1, 64, 1024):
        py = run.value("entry_cost", "python", "ns_per_record", batch=batch)
        wasm = run.value("entry_cost", "wasm", "ns_per_record", batch=batch)
        py_len = run.value("entry_cost", "python_len", "ns_per_record", batch=batch)
        view = run.value("entry_cost", "wasm_view", "ns_per_record", batch=batch)
        goal = ""
        if batch == ENTRY_TARGET[0]:
            goal = "; ".join(f"{who} ≤ {ENTRY_TARGET[1]} ns: "
                             f"{'met' if v is not None and v <= ENTRY_TARGET[1] else '**missed**'}"
                             for who, v in (("Python", py), ("Wasm", wasm)))
        out.append(f"| {batch} | {cell(py, '{:,.0f}')} | {cell(wasm, '{:,.0f}')} | "
                   f"{cell(py_len, '{:,.0f}')} | {cell(view, '{:,.0f}')} | {goal} |")
    if run.value("cluster", "python_3_masters", "seconds") is not None:
        n = run.sizes.get("cluster_movies", 0)
        out += ["", f"**Recipe 2 on a 3-master cluster against one server, {n:,} movies** "
                    "(the same cores: overhead or gain of spreading, not of more machines)",
                "", "| contender | 1 server | 3 masters | ratio |", "|---|---|---|---|"]
        for lang, label in (("python", "Python recipe"), ("wasm", "Wasm guest")):
            one = run.value("cluster", f"{lang}_1_shard", "seconds")
            three = run.value("cluster", f"{lang}_3_masters", "seconds")
            ratio = run.value("cluster", f"{lang}_3_masters", "ratio_to_1_shard")
            out.append(f"| {label} | {cell(one, '{:.2f} s')} | {cell(three, '{:.2f} s')} | "
                       f"{cell(ratio, '{:.2f}x')} |")
        frames = run.value("cluster", "repartition", "frames_per_record")
        per = run.value("cluster", "repartition", "bytes_per_record")
        out += ["", f"A repartition of every movie: {cell(frames, '{:.4f}')} link frames and "
                    f"{cell(per, '{:.0f}')} bytes per record moved."]
    out += ["", "![bench chart](bench/results/chart.png)"]
    return "\n".join(out)


def chart(run, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    panels = [
        (axes[0][0], "batch", BATCH, "ratio_to_lua",
         f"Recipe 2 over {run.sizes['movies']:,} movies:\ntime, ratio to Lua (lower is better)",
         1.0, False),
        (axes[0][1], "batch", BATCH, "ping_p99_ms",
         "Another client's PING p99 during recipe 2, ms\n(log scale, lower is better)", None,
         True),
        (axes[1][0], "triggers", TRIGGERS, "ratio_to_none",
         "SET throughput with recipe 1 registered,\nratio to none (higher is better)", 1.0,
         False),
        (axes[1][1], "streams", STREAMS, "ratio_to_worker",
         "Recipe 3 messages/s, ratio to a\nredis-py worker (higher is better)", 1.0, False),
    ]
    for ax, workload, contenders, metric, title, line, log in panels:
        labels, values = [], []
        for key, label in contenders:
            v = run.value(workload, key, metric)
            if v is not None:
                labels.append(label.replace(": ", ":\n", 1) if len(label) > 24 else label)
                values.append(v)
        colors = [PEER if key in PEERS else OURS for key, _ in contenders
                  if run.value(workload, key, metric) is not None]
        bars = ax.barh(labels, values, color=colors)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="y", labelsize=8)
        if log:
            ax.set_xscale("log")
        if line is not None:
            ax.axvline(line, color="#c03030", linewidth=1)
        for b, v in zip(bars, values):
            ax.text(b.get_width(), b.get_y() + b.get_height() / 2, f" {v:.2f}",
                    va="center", fontsize=8)
        ax.margins(x=0.18)
    m = run.machine
    fig.suptitle(f"redisgears-rs bench, {m['date']}: {m['cpu']}, {m['cores']} cores, "
                 f"Redis {m['redis']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "results", "full.jsonl")
    run = Run(path)
    with open(README) as f:
        text = f.read()
    if BEGIN not in text or END not in text:
        sys.exit(f"README.md has no {BEGIN} ... {END} section")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(README, "w") as f:
        f.write(head + BEGIN + "\n" + tables(run) + "\n" + END + tail)
    chart(run, CHART)
    print(f"README.md and {os.path.relpath(CHART, ROOT)} now show {path}")


if __name__ == "__main__":
    main()
