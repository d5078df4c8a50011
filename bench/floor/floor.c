/*
 * The floor of recipe 2: what counting movies by genre costs when written straight
 * against the Redis module API, with nothing in between. Bench-only; not part of the
 * product. FLOOR.GENRES walks the keyspace with RedisModule_Scan on the main thread,
 * reads each movie:* hash's genres field and counts the comma-separated genres in a small
 * open-addressing table; the reply is [genre, count, ...] as the other contenders give.
 *
 * No worker thread, no lock slices, no plan, no records: the physical limit of this
 * machine for the work, and what the module's guests are measured against.
 */
#define REDISMODULE_EXPERIMENTAL_API
#include <string.h>
#include "redismodule.h"

#define SLOTS 1024 /* power of two, far more than the genres the loader writes */

typedef struct {
    char name[64];
    size_t len;
    long long count;
} Slot;

typedef struct {
    Slot slots[SLOTS];
    int used;
    int overflow; /* a genre longer than a slot's name, or the table full */
} Counts;

static unsigned hash(const char *s, size_t n) {
    unsigned h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    }
    return h;
}

static void count(Counts *c, const char *s, size_t n) {
    if (n == 0) {
        return;
    }
    if (n >= sizeof(c->slots[0].name) || c->used == SLOTS - 1) {
        c->overflow = 1;
        return;
    }
    for (unsigned i = hash(s, n) & (SLOTS - 1);; i = (i + 1) & (SLOTS - 1)) {
        Slot *slot = &c->slots[i];
        if (slot->len == 0) {
            memcpy(slot->name, s, n);
            slot->len = n;
            slot->count = 1;
            c->used++;
            return;
        }
        if (slot->len == n && memcmp(slot->name, s, n) == 0) {
            slot->count++;
            return;
        }
    }
}

static void one_key(RedisModuleCtx *ctx, RedisModuleString *keyname, RedisModuleKey *key,
                    void *privdata) {
    (void)ctx;
    size_t len;
    const char *name = RedisModule_StringPtrLen(keyname, &len);
    if (key == NULL || len < 6 || memcmp(name, "movie:", 6) != 0 ||
        RedisModule_KeyType(key) != REDISMODULE_KEYTYPE_HASH) {
        return;
    }
    RedisModuleString *genres = NULL;
    RedisModule_HashGet(key, REDISMODULE_HASH_CFIELDS, "genres", &genres, NULL);
    if (genres == NULL) {
        return;
    }
    const char *g = RedisModule_StringPtrLen(genres, &len);
    const char *end = g + len;
    while (g < end) {
        const char *comma = memchr(g, ',', end - g);
        const char *stop = comma ? comma : end;
        count(privdata, g, stop - g);
        g = stop + 1;
    }
    RedisModule_FreeString(NULL, genres);
}

static int genres_command(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    if (argc != 1) {
        return RedisModule_WrongArity(ctx);
    }
    Counts *c = RedisModule_Calloc(1, sizeof(Counts));
    RedisModuleScanCursor *cursor = RedisModule_ScanCursorCreate();
    while (RedisModule_Scan(ctx, cursor, one_key, c)) {
    }
    RedisModule_ScanCursorDestroy(cursor);
    if (c->overflow) {
        RedisModule_Free(c);
        return RedisModule_ReplyWithError(ctx, "ERR a genre did not fit the floor's table");
    }
    RedisModule_ReplyWithArray(ctx, (long)c->used * 2);
    for (int i = 0; i < SLOTS; i++) {
        if (c->slots[i].len) {
            RedisModule_ReplyWithStringBuffer(ctx, c->slots[i].name, c->slots[i].len);
            RedisModule_ReplyWithLongLong(ctx, c->slots[i].count);
        }
    }
    RedisModule_Free(c);
    return REDISMODULE_OK;
}

int RedisModule_OnLoad(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    (void)argc;
    if (RedisModule_Init(ctx, "benchfloor", 1, REDISMODULE_APIVER_1) == REDISMODULE_ERR) {
        return REDISMODULE_ERR;
    }
    return RedisModule_CreateCommand(ctx, "floor.genres", genres_command, "readonly", 0, 0, 0);
}
