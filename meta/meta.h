/*
 * meta.h - the SQLite metadata database: opening it (WAL, synchronous=FULL,
 * busy timeout), the numbered schema migrations, one writer connection and a
 * pool of reader connections, each with a cache of prepared statements.
 *
 * The schema (tables buckets, bucket_config, versions, current, chunks,
 * oplog, uploads, parts, state, peers, repl_origin, damaged, keys) is defined here and only here;
 * core/ issues the queries through meta_stmt(). SQLITE_BUSY never reaches a caller: the writer is
 * unique in the process (the data dir lock keeps other processes out) and readers wait through a
 * busy timeout.
 */
#ifndef SL_META_META_H
#define SL_META_META_H

#include <sqlite3.h>
#include <stdint.h>

#include "common/err.h"

#define META_SCHEMA_VERSION 4

typedef struct meta meta;
typedef struct meta_conn meta_conn;

/* Opens (creating if missing) and migrates to META_SCHEMA_VERSION. */
int meta_open(const char *path, int nreaders, meta **out, sl_err *err);
void meta_close(meta *m);

/* The single write connection. The caller serialises its use (core's commit
 * leader, or single-threaded recovery). */
meta_conn *meta_writer(meta *m);
/* Borrows a read connection (waits if all are in use); give it back. */
meta_conn *meta_reader(meta *m);
void meta_reader_release(meta *m, meta_conn *c);

sqlite3 *meta_db(meta_conn *c);
/* A prepared statement for sql, cached per connection by the sql pointer
 * (pass string literals), reset and with bindings cleared. NULL on error. */
sqlite3_stmt *meta_stmt(meta_conn *c, const char *sql, sl_err *err);
/* Runs sql (no results). */
int meta_exec(meta_conn *c, const char *sql, sl_err *err);
/* Steps a statement expected to finish (INSERT/UPDATE/DELETE). */
int meta_done(meta_conn *c, sqlite3_stmt *st, sl_err *err);
/* Maps the connection's last error to SL_E* with message. */
int meta_fail(meta_conn *c, const char *what, sl_err *err);

/* Small key/value state table (node id, hlc, journal watermark). */
int meta_state_get_int(meta_conn *c, const char *k, int64_t *v, sl_err *err);
int meta_state_set_int(meta_conn *c, const char *k, int64_t v, sl_err *err);

#endif
