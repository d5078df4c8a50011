# KeysOnlyReader pipes only key names, which is cheaper than reading every value
builder = GearsBuilder('KeysOnlyReader')
builder.map(lambda x: execute('hget', x, 'genres'))
builder.filter(lambda x: x is not None)
builder.flatmap(lambda x: x.split(','))
builder.countby()
builder.run('movie:*')
