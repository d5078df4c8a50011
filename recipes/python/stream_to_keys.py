builder = GearsBuilder('StreamReader')
# one record per field/value pair of the message
builder.flatmap(lambda x: [(a[0], a[1]) for a in x['value'].items()])
# make sure each pair is written on the shard that owns its key
builder.repartition(lambda x: x[0])
builder.foreach(lambda x: execute('set', x[0], x[1]))
builder.register('inputStream')
