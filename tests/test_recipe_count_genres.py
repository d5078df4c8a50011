"""Recipe 2 of RECIPES.md (count movies by genre), sent exactly as printed.

10,000 movie hashes `movie:<id>` with 1-3 genres each (fixed seed), plus keys the recipe
must ignore; the counts the module replies must equal the counts computed here.
"""
import ast
import os
import random
from collections import Counter

import pytest

from conftest import ROOT, pyexecute

RECIPE = os.path.join(ROOT, "recipes", "python", "count_genres.py")

GENRES = [
    "Action", "Adventure", "Animation", "Biography", "Comedy", "Crime", "Documentary",
    "Drama", "Family", "Fantasy", "History", "Horror", "Music", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Sport", "Thriller", "War", "Western",
]
DIRECTORS = ["Guy Ritchie", "Agnes Varda", "Akira Kurosawa", "Jane Campion", "Bong Joon-ho",
             "Sofia Coppola", "Wong Kar-wai", "Greta Gerwig"]
N_MOVIES = 10_000


def load_movies(r, seed=20240101):
    """Write the movies with pipelines; return the expected {genre: count}."""
    rnd = random.Random(seed)
    expected = Counter()
    with r.pipeline(transaction=False) as p:
        # the example movie of RECIPES.md
        p.hset("movie:tt0208092", mapping={
            "genres": "Comedy,Crime", "director": "Guy Ritchie", "startYear": 2000,
            "runtimeMinutes": 104, "originalTitle": "Snatch"})
        expected.update(["Comedy", "Crime"])
        for i in range(1, N_MOVIES):
            genres = rnd.sample(GENRES, rnd.randint(1, 3))
            expected.update(genres)
            p.hset(f"movie:tt{1000000 + i:07d}", mapping={
                "genres": ",".join(genres),
                "director": rnd.choice(DIRECTORS),
                "startYear": rnd.randint(1920, 2023),
                "runtimeMinutes": rnd.randint(60, 240),
                "originalTitle": f"Title {i}",
            })
            if i % 1000 == 0:
                p.execute()
        # keys the recipe must not count
        p.hset("movie:tt9999999", mapping={"originalTitle": "No genres here", "startYear": 1999})
        p.hset("user:1", mapping={"genres": "Comedy,Drama", "name": "someone"})
        p.hset("movies_seen", mapping={"genres": "Horror"})
        p.set("moviegoer", "Comedy")
        p.sadd("genres:all", *GENRES)
        p.rpush("movie_queue", "tt0208092")
        p.execute()
    assert r.dbsize() == N_MOVIES + 6
    return expected


def read_recipe():
    assert os.path.exists(RECIPE), f"{RECIPE} is missing"
    with open(RECIPE) as f:
        return f.read()


def parse_counts(results):
    counts = {}
    for item in results:
        rec = ast.literal_eval(item)
        assert isinstance(rec, dict) and set(rec) == {"key", "value"}, item
        assert isinstance(rec["key"], str) and isinstance(rec["value"], int), item
        assert rec["key"] not in counts, f"genre {rec['key']!r} reported twice"
        counts[rec["key"]] = rec["value"]
    return counts


def test_recipe_file_is_recipe_2():
    code = read_recipe()
    assert "GearsBuilder('KeysOnlyReader')" in code
    assert "builder.countby()" in code
    assert "builder.run('movie:*')" in code


def test_count_genres(r):
    expected = load_movies(r)
    reply = pyexecute(r, read_recipe())
    assert isinstance(reply, list) and len(reply) == 2, reply
    results, errors = reply
    assert errors == []
    assert len(results) == len(expected)
    assert parse_counts(results) == dict(expected)
    # sanity of the data itself: every genre appears, totals add up
    assert set(expected) == set(GENRES)
    assert sum(expected.values()) >= N_MOVIES


def test_count_genres_twice_same_answer_and_data_untouched(r):
    expected = load_movies(r, seed=7)
    first = pyexecute(r, read_recipe())
    second = pyexecute(r, read_recipe())
    assert first[1] == [] and second[1] == []
    assert parse_counts(first[0]) == parse_counts(second[0]) == dict(expected)
    assert r.dbsize() == N_MOVIES + 6
    assert r.hget("movie:tt0208092", "genres") == "Comedy,Crime"


def test_count_genres_no_movies(r):
    r.set("moviegoer", "x")
    r.hset("user:1", "genres", "Comedy")
    assert pyexecute(r, read_recipe()) == [[], []]


@pytest.mark.parametrize("n", [1, 3])
def test_count_genres_small(r, n):
    for i in range(n):
        r.hset(f"movie:{i}", mapping={"genres": "Drama,War" if i % 2 else "Drama", "startYear": 1990 + i})
    expected = Counter()
    for i in range(n):
        expected.update(["Drama", "War"] if i % 2 else ["Drama"])
    results, errors = pyexecute(r, read_recipe())
    assert errors == []
    assert parse_counts(results) == dict(expected)
