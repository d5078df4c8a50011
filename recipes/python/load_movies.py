"""Loads generated movie hashes (movie:<id> with genres, director, startYear,
runtimeMinutes, originalTitle) into a Redis, for the README tour and benchmarks.

    python3 recipes/python/load_movies.py [--count 10000] [--port 6379] [--seed 1]
"""
import argparse
import random

import redis

GENRES = [
    "Action", "Adventure", "Animation", "Biography", "Comedy", "Crime", "Documentary",
    "Drama", "Family", "Fantasy", "History", "Horror", "Music", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Sport", "Thriller", "War", "Western",
]


def movie(rng, i):
    return {
        "genres": ",".join(rng.sample(GENRES, rng.randint(1, 3))),
        "director": f"Director {rng.randint(1, 2000)}",
        "startYear": rng.randint(1920, 2024),
        "runtimeMinutes": rng.randint(60, 200),
        "originalTitle": f"Movie {i}",
    }


def load(client, count, seed=1, batch=1000):
    """Writes `count` movies; returns {genre: number of movies with it}."""
    rng = random.Random(seed)
    expected = {}
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        m = movie(rng, i)
        for g in m["genres"].split(","):
            expected[g] = expected.get(g, 0) + 1
        pipe.hset(f"movie:tt{i:07d}", mapping=m)
        if (i + 1) % batch == 0:
            pipe.execute()
    pipe.execute()
    return expected


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--port", type=int, default=6379)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cluster", action="store_true",
                    help="the port is a node of a Redis Cluster: spread the movies over it")
    a = ap.parse_args()
    if a.cluster:
        import redis.cluster
        client = redis.cluster.RedisCluster(host=a.host, port=a.port)
    else:
        client = redis.Redis(host=a.host, port=a.port)
    counts = load(client, a.count, a.seed)
    print(f"loaded {a.count} movies; {len(counts)} genres")
