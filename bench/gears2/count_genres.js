#!js api_version=1.0 name=bench_genres
// Recipe 2 for RedisGears 2: count movies by genre, SCAN + HGET inside one TFCALL (on
// the main thread, as a RedisGears 2 function runs; like Lua, it holds the server).
redis.registerFunction('count_genres', function (client) {
    const counts = {};
    let cursor = '0';
    do {
        const res = client.call('SCAN', cursor, 'MATCH', 'movie:*', 'COUNT', '1000');
        cursor = res[0];
        for (const key of res[1]) {
            const genres = client.call('HGET', key, 'genres');
            if (genres) {
                for (const g of genres.split(',')) {
                    counts[g] = (counts[g] || 0) + 1;
                }
            }
        }
    } while (cursor !== '0');
    const out = [];
    for (const g in counts) {
        out.push(g, counts[g]);
    }
    return out;
}, {flags: [redis.functionFlags.NO_WRITES]});
