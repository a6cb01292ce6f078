/*
 * meta.c - SQLite connection management, statement cache and schema
 * migrations (see meta.h). Migrations are numbered; each runs once inside a
 * transaction and bumps PRAGMA user_version.
 */
#include "meta/meta.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STMT_CACHE 96

struct meta_conn {
	sqlite3 *db;
	struct {
		const char *sql;
		sqlite3_stmt *st;
	} cache[STMT_CACHE];
	int busy; /* borrowed */
};

struct meta {
	meta_conn writer;
	meta_conn *readers;
	int nreaders;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

static const char *migrations[] = {
	/* 1: the initial schema */
	"CREATE TABLE state(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
	"CREATE TABLE buckets(name TEXT PRIMARY KEY, versioning INTEGER NOT NULL,"
	"  created_ms INTEGER NOT NULL, hlc INTEGER NOT NULL, node TEXT NOT NULL);"
	"CREATE TABLE bucket_config(bucket TEXT NOT NULL, name TEXT NOT NULL,"
	"  value TEXT NOT NULL, PRIMARY KEY(bucket, name)) WITHOUT ROWID;"
	"CREATE TABLE versions(id INTEGER PRIMARY KEY, bucket TEXT NOT NULL,"
	"  key TEXT NOT NULL, vid TEXT NOT NULL, hlc INTEGER NOT NULL, node TEXT NOT NULL,"
	"  dm INTEGER NOT NULL DEFAULT 0, size INTEGER NOT NULL, etag TEXT NOT NULL,"
	"  mtime_ms INTEGER NOT NULL, meta TEXT NOT NULL DEFAULT '{}',"
	"  state INTEGER NOT NULL DEFAULT 0, chunks BLOB);"
	"CREATE UNIQUE INDEX versions_vid ON versions(bucket, key, vid);"
	"CREATE INDEX versions_order ON versions(bucket, key, hlc DESC, node DESC);"
	"CREATE TABLE current(bucket TEXT NOT NULL, key TEXT NOT NULL,"
	"  vrow INTEGER NOT NULL, PRIMARY KEY(bucket, key)) WITHOUT ROWID;"
	"CREATE TABLE chunks(hash BLOB PRIMARY KEY, seg INTEGER NOT NULL,"
	"  off INTEGER NOT NULL, len INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE oplog(seq INTEGER PRIMARY KEY AUTOINCREMENT, hlc INTEGER NOT NULL,"
	"  node TEXT NOT NULL, kind TEXT NOT NULL, bucket TEXT, key TEXT, vid TEXT,"
	"  body TEXT NOT NULL);"
	"CREATE TABLE uploads(id TEXT PRIMARY KEY, bucket TEXT NOT NULL, key TEXT NOT NULL,"
	"  meta TEXT NOT NULL, created_ms INTEGER NOT NULL);"
	"CREATE INDEX uploads_bk ON uploads(bucket, key, id);"
	"CREATE TABLE parts(upload TEXT NOT NULL, num INTEGER NOT NULL, size INTEGER NOT NULL,"
	"  etag TEXT NOT NULL, mtime_ms INTEGER NOT NULL, chunks BLOB NOT NULL,"
	"  PRIMARY KEY(upload, num)) WITHOUT ROWID;",
	/* 2: replication: per-peer pull watermarks, per-origin applied maxima */
	"CREATE TABLE peers(peer TEXT PRIMARY KEY, seq INTEGER NOT NULL DEFAULT 0,"
	"  updated_ms INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
	"CREATE TABLE repl_origin(node TEXT PRIMARY KEY, hlc INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE INDEX versions_state ON versions(state) WHERE state=1;",
	/* 3: chunks found damaged by scrub */
	"CREATE TABLE damaged(hash BLOB PRIMARY KEY, found_ms INTEGER NOT NULL) WITHOUT ROWID;",
	/* 4: access keys (auth/keys.c): secrets sealed with the master key
	 * (AES-256-GCM, nonce || ciphertext || tag), identity policy as JSON */
	"CREATE TABLE keys(id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '',"
	"  secret BLOB NOT NULL, enabled INTEGER NOT NULL DEFAULT 1,"
	"  root INTEGER NOT NULL DEFAULT 0, policy TEXT, created_ms INTEGER NOT NULL,"
	"  updated_ms INTEGER NOT NULL) WITHOUT ROWID;",
	/* 5: part sizes of a version completed from a multipart upload (JSON
	 * array, NULL otherwise), for GET/HEAD ?partNumber=N */
	"ALTER TABLE versions ADD COLUMN parts TEXT;",
};

static int conn_open(meta_conn *c, const char *path, int flags, sl_err *err)
{
	memset(c, 0, sizeof(*c));
	int r = sqlite3_open_v2(path, &c->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
	if (r != SQLITE_OK) {
		sl_err_set(err, SL_EIO, "open %s: %s", path,
			   c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(r));
		sqlite3_close(c->db);
		c->db = NULL;
		return SL_EIO;
	}
	sqlite3_busy_timeout(c->db, 60000);
	sqlite3_extended_result_codes(c->db, 1);
	return 0;
}

static void conn_close(meta_conn *c)
{
	for (int i = 0; i < STMT_CACHE; i++)
		if (c->cache[i].st)
			sqlite3_finalize(c->cache[i].st);
	if (c->db)
		sqlite3_close(c->db);
	memset(c, 0, sizeof(*c));
}

int meta_fail(meta_conn *c, const char *what, sl_err *err)
{
	int e = sqlite3_extended_errcode(c->db);
	int code = SL_EIO;
	switch (e & 0xff) {
	case SQLITE_FULL:
		code = SL_ENOSPC;
		break;
	case SQLITE_NOMEM:
		code = SL_ENOMEM;
		break;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		code = SL_ECORRUPT;
		break;
	case SQLITE_CONSTRAINT:
	case SQLITE_MISUSE:
	case SQLITE_ERROR:
		code = SL_EINTERNAL;
		break;
	}
	return sl_err_set(err, code, "metadata %s: %s", what, sqlite3_errmsg(c->db));
}

int meta_exec(meta_conn *c, const char *sql, sl_err *err)
{
	char *msg = NULL;
	if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		int rc = meta_fail(c, "exec", err);
		sqlite3_free(msg);
		return rc;
	}
	return 0;
}

sqlite3_stmt *meta_stmt(meta_conn *c, const char *sql, sl_err *err)
{
	int slot = -1;
	for (int i = 0; i < STMT_CACHE; i++) {
		if (c->cache[i].sql == sql) {
			sqlite3_reset(c->cache[i].st);
			sqlite3_clear_bindings(c->cache[i].st);
			return c->cache[i].st;
		}
		if (!c->cache[i].sql && slot < 0)
			slot = i;
	}
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
		meta_fail(c, "prepare", err);
		return NULL;
	}
	if (slot >= 0) {
		c->cache[slot].sql = sql;
		c->cache[slot].st = st;
	} else {
		/* cache full (should not happen: the number of distinct queries is fixed) */
		sqlite3_finalize(c->cache[0].st);
		c->cache[0].sql = sql;
		c->cache[0].st = st;
	}
	return st;
}

int meta_done(meta_conn *c, sqlite3_stmt *st, sl_err *err)
{
	int r = sqlite3_step(st);
	if (r != SQLITE_DONE && r != SQLITE_ROW) {
		int rc = meta_fail(c, "write", err);
		sqlite3_reset(st);
		return rc;
	}
	sqlite3_reset(st);
	return 0;
}

static int migrate(meta_conn *c, sl_err *err)
{
	sqlite3_stmt *st;
	int have = 0;
	if (sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return meta_fail(c, "read schema version", err);
	if (sqlite3_step(st) == SQLITE_ROW)
		have = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	int want = (int)(sizeof(migrations) / sizeof(migrations[0]));
	if (have > want)
		return sl_err_set(err, SL_EINVAL,
				  "meta.db schema version %d is newer than this seglake (%d)", have,
				  want);
	for (int v = have; v < want; v++) {
		char bump[64];
		snprintf(bump, sizeof(bump), "PRAGMA user_version=%d", v + 1);
		int rc = meta_exec(c, "BEGIN IMMEDIATE", err);
		if (rc == 0)
			rc = meta_exec(c, migrations[v], err);
		if (rc == 0)
			rc = meta_exec(c, bump, err);
		if (rc == 0)
			rc = meta_exec(c, "COMMIT", err);
		if (rc < 0) {
			meta_exec(c, "ROLLBACK", NULL);
			return rc;
		}
	}
	return 0;
}

int meta_open(const char *path, int nreaders, meta **out, sl_err *err)
{
	meta *m = calloc(1, sizeof(*m));
	if (!m)
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	pthread_mutex_init(&m->mu, NULL);
	pthread_cond_init(&m->cv, NULL);
	int rc = conn_open(&m->writer, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, err);
	if (rc == 0)
		rc = meta_exec(&m->writer,
			       "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
			       "PRAGMA foreign_keys=OFF; PRAGMA cache_size=-16384;",
			       err);
	if (rc == 0)
		rc = migrate(&m->writer, err);
	if (rc < 0)
		goto fail;
	m->nreaders = nreaders > 0 ? nreaders : 4;
	m->readers = calloc((size_t)m->nreaders, sizeof(*m->readers));
	if (!m->readers) {
		rc = sl_err_set(err, SL_ENOMEM, "out of memory");
		goto fail;
	}
	for (int i = 0; i < m->nreaders; i++) {
		if ((rc = conn_open(&m->readers[i], path, SQLITE_OPEN_READONLY, err)) < 0)
			goto fail;
		sqlite3_exec(m->readers[i].db, "PRAGMA cache_size=-8192", NULL, NULL, NULL);
	}
	*out = m;
	return 0;
fail:
	meta_close(m);
	return rc;
}

void meta_close(meta *m)
{
	if (!m)
		return;
	if (m->readers)
		for (int i = 0; i < m->nreaders; i++)
			conn_close(&m->readers[i]);
	free(m->readers);
	if (m->writer.db) {
		sqlite3_exec(m->writer.db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
		conn_close(&m->writer);
	}
	pthread_mutex_destroy(&m->mu);
	pthread_cond_destroy(&m->cv);
	free(m);
}

meta_conn *meta_writer(meta *m)
{
	return &m->writer;
}

meta_conn *meta_reader(meta *m)
{
	pthread_mutex_lock(&m->mu);
	for (;;) {
		for (int i = 0; i < m->nreaders; i++) {
			if (!m->readers[i].busy) {
				m->readers[i].busy = 1;
				pthread_mutex_unlock(&m->mu);
				return &m->readers[i];
			}
		}
		pthread_cond_wait(&m->cv, &m->mu);
	}
}

void meta_reader_release(meta *m, meta_conn *c)
{
	pthread_mutex_lock(&m->mu);
	c->busy = 0;
	pthread_cond_signal(&m->cv);
	pthread_mutex_unlock(&m->mu);
}

sqlite3 *meta_db(meta_conn *c)
{
	return c->db;
}

int meta_state_get_int(meta_conn *c, const char *k, int64_t *v, sl_err *err)
{
	sqlite3_stmt *st = meta_stmt(c, "SELECT v FROM state WHERE k=?1", err);
	if (!st)
		return err ? err->code : SL_EIO;
	sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		*v = sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
		return 0;
	}
	sqlite3_reset(st);
	if (r == SQLITE_DONE)
		return SL_ENOKEY;
	return meta_fail(c, "read state", err);
}

int meta_state_set_int(meta_conn *c, const char *k, int64_t v, sl_err *err)
{
	sqlite3_stmt *st = meta_stmt(c,
				     "INSERT INTO state(k, v) VALUES(?1, ?2) "
				     "ON CONFLICT(k) DO UPDATE SET v=excluded.v",
				     err);
	if (!st)
		return err ? err->code : SL_EIO;
	sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, v);
	return meta_done(c, st, err);
}
