#!js api_version=1.0 name=bench_stream_to_keys
// Recipe 3 for RedisGears 2: a stream trigger on inputStream writes each field of a
// message as a key (SET field value).
redis.registerStreamTrigger('to_keys', 'inputStream', function (client, data) {
    for (const [field, value] of data.record) {
        client.call('SET', field, value);
    }
});
