"""Workload 3, streams: recipe 3 (write each field of a message to inputStream as a key)
over a backlog of N messages of one field each, in messages per second from the moment
the consumer is up until every key is written. Starting it (registering the recipe,
uploading and compiling the guest, starting the worker) is reported apart as start_s.

- python: recipes/python/stream_to_keys.py through RG.PYEXECUTE, as printed
- wasm: the guest recipes/wasm/stream_to_keys
- worker: a redis-py consumer-group worker in its own process (XREADGROUP COUNT 100,
  then one pipeline of the SETs and the XACK)
- gears2_js: RedisGears 2's stream trigger (bench/gears2/stream_to_keys.js), on a peer
  server with the same binary, where it is installed. Loading its library consumes the
  backlog before TFUNCTION LOAD returns, so its clock includes the load.

The bench XADDs N - 1 messages (pipelines of 1000), starts the consumer, then XADDs the
last message: a backlog measures the consumer, where messages XADDed while it runs would
measure the producer (one redis-py client pipelining XADDs is no faster than the
consumers). Every key's value is checked afterwards.
"""
import multiprocessing
import time

import redis

from harness import deploy_guest, interleaved, median_of, recipe, register_python, wait_until

STREAM = "inputStream"
CONTENDERS = ["python", "wasm", "worker"]


def _work(port, ready, stop):
    c = redis.Redis(port=port, decode_responses=True)
    ready.set()
    while not stop.is_set():
        reply = c.xreadgroup("workers", "w1", {STREAM: ">"}, count=100, block=50)
        for _stream, messages in reply or []:
            pipe = c.pipeline(transaction=False)
            for _id, fields in messages:
                for k, v in fields.items():
                    pipe.set(k, v)
            pipe.xack(STREAM, "workers", *[i for i, _ in messages])
            pipe.execute()


def start(c, port, name):
    """Starts the contender's consumer; returns how to stop it."""
    if name == "python":
        return register_python(c, recipe("stream_to_keys.py"))
    if name == "wasm":
        return deploy_guest(c, "stream_to_keys")
    c.xgroup_create(STREAM, "workers", id="0", mkstream=True)
    ready, stop = multiprocessing.Event(), multiprocessing.Event()
    proc = multiprocessing.Process(target=_work, args=(port, ready, stop), daemon=True)
    proc.start()
    assert ready.wait(10), "the worker did not start"

    def halt():
        stop.set()
        proc.join(timeout=10)
    return halt


def produce(c, first, end, batch=1000):
    pipe = c.pipeline(transaction=False)
    for i in range(first, end):
        pipe.xadd(STREAM, {f"s:{i}": i})
        if (i + 1) % batch == 0:
            pipe.execute()
    pipe.execute()


def all_written(c, count):
    return c.dbsize() - c.exists(STREAM) >= count


def check_values(c, count):
    for lo in range(0, count, 10000):
        keys = [f"s:{i}" for i in range(lo, min(count, lo + 10000))]
        values = c.mget(keys)
        assert values == [str(i) for i in range(lo, lo + len(keys))], "a key is wrong"


def run(figures, server, peer, count, rounds):
    contenders = CONTENDERS + (["gears2_js"] if peer is not None else [])

    def run_one(name):
        on = peer if name == "gears2_js" else server
        c = on.client()
        c.flushall()
        produce(c, 0, count - 1)
        t0 = time.perf_counter()
        stop = peer.load("stream_to_keys") if on is peer else start(c, on.port, name)
        t = time.perf_counter()
        if on is peer:
            # TFUNCTION LOAD itself consumes the backlog (synchronously): RedisGears 2's
            # clock runs from before it; loading the JS takes milliseconds.
            t = t0
        try:
            produce(c, count - 1, count)
            wait_until(lambda: all_written(c, count), timeout=300, interval=0.002,
                       what=f"every key of the stream ({name})")
            took = time.perf_counter() - t
        finally:
            stop()
        check_values(c, count)
        return {"msgs_per_s": count / took, "seconds": took, "start_s": t - t0}

    results = interleaved(contenders, rounds, run_one)
    worker = median_of(results["worker"], "msgs_per_s")
    for name, rs in results.items():
        rate = median_of(rs, "msgs_per_s")
        params = {"messages": count, "rounds": rounds}
        figures.add("streams", name, "msgs_per_s", rate, "msg/s", **params)
        figures.add("streams", name, "ratio_to_worker", rate / worker, "x", **params)
        figures.add("streams", name, "seconds", median_of(rs, "seconds"), "s", **params)
        figures.add("streams", name, "start_s", median_of(rs, "start_s"), "s", **params)
    server.client().flushall()
