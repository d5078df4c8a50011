#!js api_version=1.0 name=bench_all_keys
// Recipe 1 for RedisGears 2: a keyspace trigger adds every written key to the set
// all_keys. It runs synchronously, with the command that fired it.
redis.registerKeySpaceTrigger('all_keys', '', function (client, data) {
    if (data.key !== 'all_keys') {
        client.call('SADD', 'all_keys', data.key);
    }
});
