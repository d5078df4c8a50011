"""Black-box tests of every operation of SPEC.md "Operations", chains of them, the
convertToStr=False reply mapping of SPEC.md "Ids and replies", and collect=False.

Input records mostly come from a PythonReader generator over a literal list, so each test
states its data next to its expectation. Results are compared as multisets unless the
operation defines an order (sort, limit after sort, flatmap order within one record).
"""
import ast
import random
from collections import Counter

import redis

from conftest import pyexecute, run, run_ok


def script(data, chain, run_args=""):
    """A recipe reading the records of `data` (a list literal) through a PythonReader."""
    extra = f", {run_args}" if run_args else ""
    return (
        f"DATA = {data!r}\n"
        "def gen():\n"
        "    for x in DATA:\n"
        "        yield x\n"
        f"GB('PythonReader'){chain}.run(gen{extra})\n"
    )


def ops(r, data, chain, run_args=""):
    return run_ok(r, script(data, chain, run_args))


def parsed(results):
    return [ast.literal_eval(x) for x in results]


def as_groups(results):
    """groupby-style results -> {key: value}, checking each record is exactly {key, value}
    and no key comes twice."""
    out = {}
    for rec in parsed(results):
        assert isinstance(rec, dict) and set(rec) == {"key", "value"}, rec
        assert rec["key"] not in out, f"key {rec['key']!r} twice in {results}"
        out[rec["key"]] = rec["value"]
    return out


def ms(xs):
    return Counter(xs)


GROUP_DATA = [{"g": "a", "v": 1}, {"g": "b", "v": 10}, {"g": "a", "v": 2}, {"g": "c", "v": 100},
              {"g": "b", "v": 20}, {"g": "a", "v": 3}]


# ---------------------------------------------------------------------------------------
# local operations
# ---------------------------------------------------------------------------------------


def test_map(r):
    assert ms(ops(r, [1, 2, 3], ".map(lambda x: x * 10)")) == ms(["10", "20", "30"])


def test_map_result_shapes_are_str_of_python_objects(r):
    results = ops(r, [1], ".map(lambda x: {'key': 'a', 'value': 3})")
    assert results == ["{'key': 'a', 'value': 3}"]
    results = ops(r, [1], ".map(lambda x: [x, 'b', None, 2.5, True])")
    assert results == ["[1, 'b', None, 2.5, True]"]
    assert ops(r, [1], ".map(lambda x: None)") == ["None"]
    assert ops(r, [1], ".map(lambda x: 'plain')") == ["plain"]


def test_map_with_execute(r):
    r.set("k1", "one")
    r.set("k2", "two")
    assert ms(ops(r, ["k1", "k2", "k3"], ".map(lambda k: execute('get', k))")) == ms(["one", "two", "None"])


def test_flatmap_list_keeps_order_within_record(r):
    assert ops(r, [["c", "a", "b", "a"]], ".flatmap(lambda x: x)") == ["c", "a", "b", "a"]
    assert ops(r, [5], ".flatmap(lambda x: list(range(x, 0, -1)))") == ["5", "4", "3", "2", "1"]


def test_flatmap_several_records(r):
    data = [[1, 2, 3], [4], [], [5, 6]]
    assert ms(ops(r, data, ".flatmap(lambda x: x)")) == ms(str(i) for i in range(1, 7))


def test_flatmap_non_list_stays_one_record(r):
    # a string is not split into characters, a dict is not split into keys
    assert ops(r, ["abc"], ".flatmap(lambda x: x)") == ["abc"]
    assert ops(r, [{"a": 1, "b": 2}], ".flatmap(lambda x: x)") == ["{'a': 1, 'b': 2}"]
    assert ops(r, [7], ".flatmap(lambda x: x)") == ["7"]


def test_flatmap_empty_list_gives_nothing(r):
    assert ops(r, [1, 2, 3], ".flatmap(lambda x: [])") == []


def test_flatmap_large_expansion(r):
    results = ops(r, [3000], ".flatmap(lambda n: list(range(n)))")
    assert results == [str(i) for i in range(3000)]


def test_foreach_side_effect_and_records_pass_through(r):
    data = ["x", "y", "z"]
    results = ops(r, data, ".foreach(lambda k: execute('sadd', 'seen', k))")
    assert ms(results) == ms(data)
    assert r.smembers("seen") == set(data)


def test_foreach_return_value_is_ignored(r):
    assert ms(ops(r, [1, 2], ".foreach(lambda x: 'ignored')")) == ms(["1", "2"])


def test_foreach_mutation_is_seen_downstream(r):
    results = ops(r, [{"a": 1}, {"a": 2}], ".foreach(lambda d: d.update(b=d['a'] * 2)).map(lambda d: d['b'])")
    assert ms(results) == ms(["2", "4"])


def test_filter(r):
    data = list(range(20))
    assert ms(ops(r, data, ".filter(lambda x: x % 3 == 0)")) == ms(str(x) for x in data if x % 3 == 0)
    assert ops(r, data, ".filter(lambda x: False)") == []
    # truthiness, not just True/False
    assert ms(ops(r, [0, 1, "", "a", None, [], [0]], ".filter(lambda x: x)")) == ms(["1", "a", "[0]"])


def test_accumulate(r):
    assert ops(r, [1, 2, 3, 4, 5], ".accumulate(lambda a, x: (a or 0) + x)") == ["15"]


def test_accumulate_starts_with_none(r):
    results = ops(r, [1, 2, 3], ".accumulate(lambda a, x: (['first was None'] if a is None else a) + [x])")
    assert len(results) == 1
    value = ast.literal_eval(results[0])
    assert value[0] == "first was None"
    assert sorted(value[1:]) == [1, 2, 3]


def test_accumulate_no_input_no_output(r):
    assert ops(r, [], ".accumulate(lambda a, x: (a or 0) + x)") == []
    assert ops(r, [1, 2], ".filter(lambda x: False).accumulate(lambda a, x: 0)") == []


def test_accumulate_many(r):
    data = list(range(4000))
    assert ops(r, data, ".accumulate(lambda a, x: (a or 0) + x)") == [str(sum(data))]


def test_localgroupby(r):
    results = ops(r, GROUP_DATA, ".localgroupby(lambda x: x['g'], lambda k, a, x: (a or 0) + x['v'])")
    assert as_groups(results) == {"a": 6, "b": 30, "c": 100}


def test_localgroupby_reducer_gets_key_and_none_first(r):
    results = ops(
        r, GROUP_DATA,
        ".localgroupby(lambda x: x['g'], lambda k, a, x: (a if a is not None else [k]) + [x['v']])",
    )
    groups = as_groups(results)
    assert {k: (v[0], sorted(v[1:])) for k, v in groups.items()} == {
        "a": ("a", [1, 2, 3]), "b": ("b", [10, 20]), "c": ("c", [100])}


def test_limit_after_sort(r):
    data = list(range(10))
    random.Random(1).shuffle(data)
    assert ops(r, data, ".sort().limit(3)") == ["0", "1", "2"]
    assert ops(r, data, ".sort().limit(3, 2)") == ["2", "3", "4"]
    assert ops(r, data, ".sort().limit(3, offset=4)") == ["4", "5", "6"]
    assert ops(r, data, ".sort().limit(3, 8)") == ["8", "9"]
    assert ops(r, data, ".sort().limit(100)") == [str(i) for i in range(10)]
    assert ops(r, data, ".sort().limit(5, 10)") == []


def test_limit_across_batches(r):
    data = list(range(2000))
    random.Random(2).shuffle(data)
    assert ops(r, data, ".sort().limit(5, 1000)") == ["1000", "1001", "1002", "1003", "1004"]


def test_limit_without_sort(r):
    data = list(range(50))
    results = ops(r, data, ".limit(7)")
    assert len(results) == 7
    assert len(set(results)) == 7 and set(results) <= {str(i) for i in data}
    results = ops(r, data, ".limit(7, 45)")
    assert len(results) == 5 and set(results) <= {str(i) for i in data}


# ---------------------------------------------------------------------------------------
# operations that move records (one shard: collect/repartition are no-ops)
# ---------------------------------------------------------------------------------------


def test_collect_is_noop_on_one_shard(r):
    data = list(range(30))
    assert ms(ops(r, data, ".collect()")) == ms(str(x) for x in data)
    assert ms(ops(r, data, ".map(lambda x: x + 1).collect().map(lambda x: x * 2)")) == ms(
        str((x + 1) * 2) for x in data)


def test_repartition_is_noop_on_one_shard(r):
    data = [{"k": f"key{i}", "v": i} for i in range(30)]
    results = ops(r, data, ".repartition(lambda x: x['k']).map(lambda x: x['v'])")
    assert ms(results) == ms(str(i) for i in range(30))


def test_groupby(r):
    results = ops(r, GROUP_DATA, ".groupby(lambda x: x['g'], lambda k, a, x: (a or 0) + x['v'])")
    assert as_groups(results) == {"a": 6, "b": 30, "c": 100}


def test_groupby_many_records(r):
    rnd = random.Random(3)
    data = [rnd.randrange(37) for _ in range(3000)]
    results = ops(r, data, ".groupby(lambda x: x % 10, lambda k, a, x: (a or 0) + 1)")
    # group keys are str, as in RedisGears 1.2
    assert as_groups(results) == {str(k): n for k, n in Counter(x % 10 for x in data).items()}


def test_batchgroupby(r):
    results = ops(
        r, GROUP_DATA,
        ".batchgroupby(lambda x: x['g'], lambda k, recs: [k, len(recs), sorted(x['v'] for x in recs)])",
    )
    assert as_groups(results) == {"a": ["a", 3, [1, 2, 3]], "b": ["b", 2, [10, 20]], "c": ["c", 1, [100]]}


def test_aggregate(r):
    data = list(range(1, 101))
    results = ops(r, data, ".aggregate(0, lambda a, x: a + x, lambda a, x: a + x)")
    assert results == ["5050"]


def test_aggregate_zero_is_copied(r):
    """seq and comb mutate their accumulator: each must start from its own copy of zero."""
    data = list(range(600))
    results = ops(
        r, data,
        ".aggregate([], lambda a, x: (a.append(x), a)[1], lambda a, x: (a.extend(x), a)[1])"
        ".map(lambda l: [len(l), sorted(l) == list(range(600))])",
    )
    assert results == ["[600, True]"]


def test_aggregate_no_input_no_output(r):
    assert ops(r, [], ".aggregate(0, lambda a, x: a + x, lambda a, x: a + x)") == []


def test_aggregateby(r):
    results = ops(
        r, GROUP_DATA,
        ".aggregateby(lambda x: x['g'], 0, lambda k, a, x: a + x['v'], lambda k, a, x: a + x)",
    )
    assert as_groups(results) == {"a": 6, "b": 30, "c": 100}


def test_aggregateby_zero_is_copied_per_key(r):
    results = ops(
        r, GROUP_DATA,
        ".aggregateby(lambda x: x['g'], [], lambda k, a, x: (a.append(x['v']), a)[1],"
        " lambda k, a, x: (a.extend(x), a)[1]).map(lambda d: {'key': d['key'], 'value': sorted(d['value'])})",
    )
    assert as_groups(results) == {"a": [1, 2, 3], "b": [10, 20], "c": [100]}


def test_count(r):
    assert ops(r, list(range(10)), ".count()") == ["10"]
    assert ops(r, list(range(5000)), ".count()") == ["5000"]


def test_count_of_nothing_is_zero(r):
    assert ops(r, [], ".count()") == ["0"]
    assert ops(r, [1, 2], ".filter(lambda x: False).count()") == ["0"]


def test_countby_without_extract(r):
    data = ["a", "b", "a", "c", "a", "b"]
    assert as_groups(ops(r, data, ".countby()")) == {"a": 3, "b": 2, "c": 1}


def test_countby_with_extract(r):
    assert as_groups(ops(r, GROUP_DATA, ".countby(lambda x: x['g'])")) == {"a": 3, "b": 2, "c": 1}


def test_countby_int_keys_many(r):
    rnd = random.Random(4)
    data = [rnd.randrange(25) for _ in range(3000)]
    assert as_groups(ops(r, data, ".countby()")) == dict(Counter(data))


def test_distinct(r):
    data = [1, 2, 2, 3, 3, 3]
    results = ops(r, data, ".distinct()")
    assert sorted(results) == ["1", "2", "3"]
    results = ops(r, ["b", "a", "b", "c", "a"], ".distinct()")
    assert sorted(results) == ["a", "b", "c"]


def test_distinct_many(r):
    rnd = random.Random(5)
    data = [rnd.randrange(300) for _ in range(3000)]
    results = ops(r, data, ".distinct()")
    assert len(results) == len(set(data))
    assert set(results) == {str(x) for x in data}


def test_avg(r):
    assert ops(r, [1, 2, 3, 4], ".avg()") == ["2.5"]
    # the default extractor is float(): string records work
    assert ops(r, ["1", "2", "3", "4"], ".avg()") == ["2.5"]
    # always a float
    assert ops(r, [1, 2, 3], ".avg()") == ["2.0"]
    assert ops(r, [1, 2, 3], ".avg().map(lambda x: type(x).__name__)") == ["float"]


def test_avg_with_extract(r):
    assert ops(r, GROUP_DATA, ".avg(lambda x: x['v'])") == [str(sum(d["v"] for d in GROUP_DATA) / len(GROUP_DATA))]
    assert ops(r, [{"x": 1}, {"x": 2}, {"x": 3}], ".avg(lambda r: r['x'])") == ["2.0"]


def test_avg_many(r):
    data = list(range(3001))
    assert ops(r, data, ".avg()") == ["1500.0"]


def test_sort_ascending_by_default(r):
    assert ops(r, [3, 1, 2], ".sort()") == ["1", "2", "3"]
    assert ops(r, ["b", "c", "a"], ".sort()") == ["a", "b", "c"]
    assert ops(r, [3, 1, 2], ".sort(reverse=False)") == ["1", "2", "3"]


def test_sort_reverse(r):
    assert ops(r, [3, 1, 2], ".sort(reverse=True)") == ["3", "2", "1"]
    assert ops(r, [3, 1, 2], ".sort(True)") == ["3", "2", "1"]
    assert ops(r, ["b", "c", "a"], ".sort(reverse=True)") == ["c", "b", "a"]


def test_sort_mixed_int_float_like_python(r):
    assert ops(r, [3, 1.5, 2, 0.5], ".sort()") == ["0.5", "1.5", "2", "3"]


def test_sort_lists_like_python(r):
    assert ops(r, [[2, "a"], [1, "z"], [2, "b"], [1, "a"]], ".sort()") == [
        "[1, 'a']", "[1, 'z']", "[2, 'a']", "[2, 'b']"]


def test_sort_keeps_tuple_records(r):
    """A step without user code must hand on the records unchanged: a tuple stays a tuple."""
    assert ops(r, [[2, "a"], [1, "z"]], ".map(lambda l: tuple(l)).sort(reverse=True)") == [
        "(2, 'a')", "(1, 'z')"]


def test_distinct_keeps_tuple_records(r):
    results = ops(r, [[1, "a"], [1, "a"], [2, "b"]], ".map(lambda l: tuple(l)).distinct()")
    assert sorted(results) == ["(1, 'a')", "(2, 'b')"]


def test_countby_keys_are_str_as_in_12(r):
    results = ops(r, [[1, "a"], [1, "a"], [2, "b"]], ".countby(lambda l: tuple(l))")
    assert sorted(results) == ['{\'key\': "(1, \'a\')", \'value\': 2}',
                               '{\'key\': "(2, \'b\')", \'value\': 1}']


def test_sort_many_records_across_batches(r):
    data = list(range(3000))
    random.Random(6).shuffle(data)
    assert ops(r, data, ".sort()") == [str(i) for i in range(3000)]
    assert ops(r, data, ".sort(reverse=True)") == [str(i) for i in reversed(range(3000))]


def test_sort_of_nothing(r):
    assert ops(r, [], ".sort()") == []


# ---------------------------------------------------------------------------------------
# chains
# ---------------------------------------------------------------------------------------


def test_chain_keysreader_filter_groupby_sort_limit(r):
    rnd = random.Random(7)
    cities = ["paris", "rome", "oslo", "lima", "kyiv"]
    people = []
    with r.pipeline(transaction=False) as p:
        for i in range(500):
            city, age = rnd.choice(cities), rnd.randrange(1, 90)
            people.append((city, age))
            p.hset(f"person:{i}", mapping={"city": city, "age": age})
        p.set("not-a-person", "x")
        p.execute()
    code = (
        "GB('KeysReader')"
        ".map(lambda r: r['value'])"
        ".filter(lambda v: int(v['age']) >= 18)"
        ".groupby(lambda v: v['city'], lambda k, a, v: (a or 0) + 1)"
        ".map(lambda g: '%05d:%s' % (g['value'], g['key']))"
        ".sort(reverse=True)"
        ".limit(3, 1)"
        ".run('person:*')"
    )
    counts = Counter(c for c, a in people if a >= 18)
    expected = sorted(("%05d:%s" % (n, c) for c, n in counts.items()), reverse=True)[1:4]
    assert run_ok(r, code) == expected


def test_chain_flatmap_distinct_sort_limit(r):
    data = ["d,b", "a,b,c", "e", "a,e"]
    assert ops(r, data, ".flatmap(lambda s: s.split(',')).distinct().sort().limit(2, 1)") == ["b", "c"]


def test_chain_distinct_then_count(r):
    assert ops(r, [1, 1, 2, 3, 3, 3, 4], ".distinct().count()") == ["4"]


def test_chain_countby_filter_map_sort(r):
    data = list("abracadabra")
    results = ops(r, data, ".countby().filter(lambda g: g['value'] > 1).map(lambda g: g['key']).sort()")
    assert results == ["a", "b", "r"]


def test_chain_localgroupby_values_sorted_desc(r):
    results = ops(r, GROUP_DATA,
                  ".localgroupby(lambda x: x['g'], lambda k, a, x: (a or 0) + x['v'])"
                  ".map(lambda g: g['value']).sort(reverse=True)")
    assert results == ["100", "30", "6"]


def test_chain_many_python_steps_between_native_steps(r):
    data = list(range(100))
    chain = (
        ".map(lambda x: x * 2)"
        ".filter(lambda x: x % 3 != 0)"
        ".flatmap(lambda x: [x, x + 1])"
        ".foreach(lambda x: None)"
        ".distinct()"
        ".map(lambda x: x % 7)"
        ".countby()"
        ".map(lambda g: g['key'] * 100000 + g['value'])"
        ".sort()"
    )
    values = []
    for x in data:
        y = x * 2
        if y % 3 != 0:
            values += [y, y + 1]
    expected = sorted(k * 100000 + v for k, v in Counter(v % 7 for v in set(values)).items())
    assert ops(r, data, chain) == [str(e) for e in expected]


def test_chain_aggregate_after_groupby(r):
    results = ops(
        r, GROUP_DATA,
        ".groupby(lambda x: x['g'], lambda k, a, x: (a or 0) + x['v'])"
        ".aggregate(0, lambda a, g: a + g['value'], lambda a, b: a + b)",
    )
    assert results == ["136"]


def test_chain_accumulate_then_flatmap(r):
    results = ops(r, [3, 1, 2], ".accumulate(lambda a, x: (a or []) + [x]).flatmap(lambda l: sorted(l))")
    assert results == ["1", "2", "3"]


# ---------------------------------------------------------------------------------------
# errors inside steps
# ---------------------------------------------------------------------------------------


def test_exception_in_map_becomes_error_entry(r):
    results, errors = run(r, script([0, 1, 2, 4], ".map(lambda x: 1 / x)"))
    assert ms(results) == ms(["1.0", "0.5", "0.25"])
    assert len(errors) == 1, errors
    assert errors[0].startswith("ZeroDivisionError: division by zero"), errors


def test_exception_in_filter_and_count(r):
    results, errors = run(r, script([{"a": 1}, {"b": 2}, {"a": 3}, {"c": 4}], ".filter(lambda x: x['a'] > 0).count()"))
    assert results == ["2"]
    assert len(errors) == 2, errors
    assert all(e.startswith("KeyError: ") for e in errors), errors


def test_exception_in_groupby_reducer(r):
    results, errors = run(r, script([1, 2, 3], ".groupby(lambda x: 'k', lambda k, a, x: (a or 0) + x if x != 2 else {}['missing'])"))
    assert len(errors) >= 1 and all(e.startswith("KeyError: ") for e in errors), errors


# ---------------------------------------------------------------------------------------
# convertToStr=False reply mapping and collect=False
# ---------------------------------------------------------------------------------------


def raw(r, value_expr, client=None):
    """Run one record through map(lambda x: <value_expr>) with convertToStr=False."""
    code = f"GB('ShardsIDReader').map(lambda x: {value_expr}).run(convertToStr=False)"
    reply = pyexecute(client or r, code)
    assert isinstance(reply, list) and len(reply) == 2, reply
    results, errors = reply
    assert errors == [], errors
    assert len(results) == 1, results
    return results[0]


def test_no_convert_int(r):
    assert raw(r, "42") == 42
    assert raw(r, "-7") == -7
    assert raw(r, "0") == 0
    assert raw(r, "2**40") == 2**40


def test_no_convert_bool_is_integer(r):
    assert raw(r, "True") == 1 and isinstance(raw(r, "True"), int)
    assert raw(r, "False") == 0


def test_no_convert_float_is_bulk_string(r):
    v = raw(r, "2.5")
    assert isinstance(v, str) and float(v) == 2.5
    v = raw(r, "-0.125")
    assert isinstance(v, str) and float(v) == -0.125


def test_no_convert_str_is_bulk_string(r):
    assert raw(r, "'hello world'") == "hello world"
    assert raw(r, "''") == ""
    assert raw(r, "'a+b-c'") == "a+b-c"


def test_no_convert_leading_plus_is_status(r):
    # a status reply reaches redis-py without the '+'; a bulk string would keep it
    assert raw(r, "'+OK'") == "OK"
    assert raw(r, "'+some status'") == "some status"


def test_no_convert_leading_minus_is_error_element(r):
    v = raw(r, "'-GEARSERR something bad'")
    assert isinstance(v, redis.ResponseError), repr(v)
    assert "GEARSERR something bad" in str(v)


def test_no_convert_bytes_is_bulk(server, r):
    bin_client = server.client(decode_responses=False)
    try:
        assert raw(r, r"b'raw\xff\x00bytes'", client=bin_client) == b"raw\xff\x00bytes"
        assert raw(r, "b'abc'") == "abc"
    finally:
        bin_client.close()


def test_no_convert_dict_is_py_record(r):
    assert raw(r, "{'key': 'a', 'value': 3}") == "PY RECORD"


def test_no_convert_list_is_array(r):
    assert raw(r, "[1, 'a', 2.5, True, [2, 'b', []], b'x']") == [1, "a", "2.5", 1, [2, "b", []], "x"]
    assert raw(r, "[]") == []


def test_no_convert_several_records_and_count(r):
    results = ops(r, [1, 2, 3], ".map(lambda x: x)", run_args="convertToStr=False")
    assert sorted(results) == [1, 2, 3]
    assert ops(r, [1, 2, 3], ".count()", run_args="convertToStr=False") == [3]
    assert ops(r, ["b", "a"], ".sort()", run_args="convertToStr=False") == ["a", "b"]


def test_no_convert_reader_records_without_python_step(r):
    """Records straight from a PythonReader (no step in between) are Python objects too:
    they map like any other (int -> integer, str -> bulk, list -> array)."""
    assert sorted(ops(r, [1, 2, 3], "", run_args="convertToStr=False")) == [1, 2, 3]
    assert ops(r, [[1, "a"]], "", run_args="convertToStr=False") == [[1, "a"]]
    results = ops(r, [1, "a", 2.5], ".limit(10)", run_args="convertToStr=False")
    assert sorted(results, key=str) == [1, "2.5", "a"]


def test_collect_false(r):
    data = list(range(50))
    assert ms(ops(r, data, ".map(lambda x: x + 1)", run_args="collect=False")) == ms(str(x + 1) for x in data)
    assert ops(r, data, ".count()", run_args="collect=False") == ["50"]
    results = ops(r, data, ".map(lambda x: x + 1)", run_args="collect=False, convertToStr=False")
    assert sorted(results) == [x + 1 for x in data]


def test_collect_false_keysreader(r):
    for i in range(10):
        r.set(f"k{i}", i)
    results = run_ok(r, "GB().map(lambda x: x['key']).run('k*', collect=False)")
    assert sorted(results) == sorted(f"k{i}" for i in range(10))
