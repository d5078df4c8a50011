"""Workload 4, entry cost: nanoseconds per record of entering a language step and coming
back, at BatchSize 1, 64 and 1024.

Over N keys, `KeysOnlyReader -> map(identity) -> count()` is timed against the same job
without the map, for a Python step (RG.PYEXECUTE) and a Wasm guest step (RG.WASMRUN of
tests/guests/kitchen). The difference divided by N is what a record costs: the call into
the runtime (once per batch) plus converting the record both ways. Beside it, a step that
reads each key and keeps its length (Python `len`, a guest's `map_view` over a View):
what a step that reads records pays when only a number comes back.
"""
import time

from harness import deploy_guest, interleaved, median_of

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
        t = time.perf_counter()
        reply = c.execute_command(*JOBS[job])
        took = time.perf_counter() - t
        assert reply[1] == [] and int(reply[0][0]) == count, reply
        return {"seconds": took}

    try:
        for batch in batches:
            c.execute_command("RG.CONFIGSET", "BatchSize", batch)
            results = interleaved(JOBS, rounds, run_one)
            for runtime, (job, against) in FIGURES.items():
                base = median_of(results[against], "seconds")
                step = median_of(results[job], "seconds")
                figures.add("entry_cost", runtime, "ns_per_record",
                            max(step - base, 0.0) / count * 1e9, "ns", batch=batch,
                            records=count, rounds=rounds)
    finally:
        c.execute_command("RG.CONFIGSET", "BatchSize", default_batch)
        delete_guest()
        c.flushall()
