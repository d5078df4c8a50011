"""Workload 4, entry cost: nanoseconds per record of entering a language step and coming
back, at BatchSize 1, 64 and 1024.

Over N keys, `KeysOnlyReader -> map(identity) -> count()` is timed against the same job
without the map, for a Python step (RG.PYEXECUTE) and a Wasm guest step (RG.WASMRUN of
tests/guests/kitchen), in the server's CPU time (all its threads). The difference divided
by N is what a record costs: the call into
the runtime (once per batch) plus converting the record both ways. Beside it, a step that
reads each key and keeps its length (Python `len`, a guest's `map_view` over a View):
what a step that reads records pays when only a number comes back.
"""
import os

from harness import deploy_guest, interleaved

PY_BASE = "GB('KeysOnlyReader').count().run('k:*', convertToStr=False)"
PY_STEP = "GB('KeysOnlyReader').map(lambda x: x).count().run('k:*', convertToStr=False)"
PY_LEN = "GB('KeysOnlyReader').map(lambda x: len(x)).count().run('k:*', convertToStr=False)"

JOBS = {
    "python_base": ("RG.PYEXECUTE", PY_BASE),
    "python_step": ("RG.PYEXECUTE", PY_STEP),
    "wasm_base": ("RG.WASMRUN", "kitchen", "count", "k:*"),
    "wasm_step": ("RG.WASMRUN", "kitchen", "map_count", "k:*"),
    # a step that reads each key and keeps its length: Python's len(), a guest's View
    "python_len": ("RG.PYEXECUTE", PY_LEN),
    "wasm_view": ("RG.WASMRUN", "kitchen", "len_count", "k:*"),
}

# figure name -> (job, the job it is measured against)
FIGURES = {
    "python": ("python_step", "python_base"),
    "wasm": ("wasm_step", "wasm_base"),
    "python_len": ("python_len", "python_base"),
    "wasm_view": ("wasm_view", "wasm_base"),
}


def cpu_ns(pid):
    """The server's CPU time so far, all threads, in nanoseconds (schedstat: the run time
    the scheduler counted; a wall clock would add the client's round trips and whatever
    else the machine ran meanwhile, which on these VMs is more than the differences)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass  # a thread that just ended
    return total


def run(figures, server, count, rounds, batches=(1, 64, 1024)):
    c = server.client()
    c.flushall()
    default_batch = c.execute_command("RG.CONFIGGET", "BatchSize")[0]
    delete_guest = deploy_guest(c, "kitchen")
    pipe = c.pipeline(transaction=False)
    for i in range(count):
        pipe.set(f"k:{i}", i)
        if i % 10000 == 9999:
            pipe.execute()
    pipe.execute()

    def run_one(job):
        before = cpu_ns(server.proc.pid)
        reply = c.execute_command(*JOBS[job])
        took = cpu_ns(server.proc.pid) - before
        assert reply[1] == [] and int(reply[0][0]) == count, reply
        return {"cpu_ns": took}

    try:
        for batch in batches:
            c.execute_command("RG.CONFIGSET", "BatchSize", batch)
            results = interleaved(JOBS, rounds, run_one)
            for runtime, (job, against) in FIGURES.items():
                # Noise only ever adds CPU time: the least of the rounds is the cost.
                base = min(r["cpu_ns"] for r in results[against])
                step = min(r["cpu_ns"] for r in results[job])
                figures.add("entry_cost", runtime, "ns_per_record",
                            max(step - base, 0.0) / count, "ns", batch=batch,
                            records=count, rounds=rounds)
    finally:
        c.execute_command("RG.CONFIGSET", "BatchSize", default_batch)
        delete_guest()
        c.flushall()
