/*
 * repl.c - what replication needs from the core: which chunks are missing,
 * storing chunks received from peers, applying a peer's oplog entries (with
 * the peer watermark in the same transaction), peers and conflicts listings.
 * The transport (HTTP, SigV4, retries) lives in repl/; the conflict rules
 * (last-writer-wins by hlc then node, losers kept) live in apply.c.
 */
#include "core/core_internal.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

int core_chunk_has(core *c, const uint8_t hash[32], uint32_t *len)
{
	store_loc loc;
	meta_conn *r = meta_reader(c->md);
	int found = core_chunk_loc(c, r, hash, &loc, NULL) == 0;
	meta_reader_release(c->md, r);
	if (found && len)
		*len = loc.len;
	return found;
}

int core_chunk_ingest(core *c, const uint8_t hash[32], const void *data, uint32_t len, sl_err *err)
{
	uint8_t h[32];
	if (len > CORE_CHUNK_SIZE)
		return sl_err_set(err, SL_EINVAL, "chunk of %u bytes is too large", len);
	SHA256(data, len, h);
	if (memcmp(h, hash, 32) != 0)
		return sl_err_set(err, SL_ECORRUPT, "received chunk does not match its hash");
	core_chunkref ref;
	return core_chunk_store(c, data, len, h, 1, &ref, err); /* hashed once; from a peer */
}

static int op_replicable(json_t *op)
{
	const char *what = json_string_value(json_object_get(op, "op"));
	return what && (strcmp(what, "put") == 0 || strcmp(what, "vdelete") == 0 ||
			strncmp(what, "bucket-", 7) == 0);
}

int core_repl_missing(core *c, const char *const *bodies, size_t n, uint8_t **out, size_t *nout,
		      sl_err *err)
{
	*out = NULL;
	*nout = 0;
	size_t cap = 0;
	for (size_t i = 0; i < n; i++) {
		json_t *op = json_loads(bodies[i], 0, NULL);
		if (!op)
			return sl_err_set(err, SL_EINVAL, "oplog entry %zu is not JSON", i);
		size_t j;
		json_t *e;
		json_array_foreach(json_object_get(op, "chunks"), j, e)
		{
			uint8_t h[32];
			json_t *hx = json_array_get(e, 0);
			if (!json_is_string(hx) || sl_unhex(json_string_value(hx), h, 32) < 0)
				continue;
			if (core_chunk_has(c, h, NULL))
				continue;
			int dup = 0;
			for (size_t k = 0; k < *nout && !dup; k++)
				dup = memcmp(*out + 32 * k, h, 32) == 0;
			if (dup)
				continue;
			if (*nout == cap) {
				cap = cap ? cap * 2 : 64;
				uint8_t *p = realloc(*out, cap * 32);
				if (!p) {
					json_decref(op);
					return sl_err_set(err, SL_ENOMEM, "out of memory");
				}
				*out = p;
			}
			memcpy(*out + 32 * (*nout)++, h, 32);
		}
		json_decref(op);
	}
	return 0;
}

typedef struct repl_arg {
	const char *peer;
	int64_t seq;
	const char *const *bodies;
	size_t n;
	size_t applied;
} repl_arg;

typedef struct seen {
	char node[17];
	int64_t hlc;
} seen;

static int64_t origin_max(meta_conn *w, const char *node)
{
	sqlite3_stmt *st = meta_stmt(w, "SELECT hlc FROM repl_origin WHERE node=?1", NULL);
	if (!st)
		return INT64_MAX; /* cannot tell: treat as seen, the batch fails below */
	sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
	int64_t h = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	return h;
}

int core_chunks_relocate(core *c, meta_conn *w, json_t *op, const char *what, sl_err *err)
{
	size_t j;
	json_t *e;
	json_array_foreach(json_object_get(op, "chunks"), j, e)
	{
		json_t *hx = json_array_get(e, 0);
		uint8_t h[32];
		if (json_is_null(hx))
			continue;
		if (!json_is_string(hx) || sl_unhex(json_string_value(hx), h, 32) < 0)
			return sl_err_set(err, SL_EINVAL, "bad chunk hash in a %s", what);
		store_loc loc;
		if (core_chunk_loc(c, w, h, &loc, NULL) < 0)
			return sl_err_set(err, SL_ENOKEY, "chunk %s of a %s is not stored",
					  json_string_value(hx), what);
		while (json_array_size(e) > 2)
			json_array_remove(e, json_array_size(e) - 1);
		json_array_append_new(e, json_integer((json_int_t)loc.seg));
		json_array_append_new(e, json_integer((json_int_t)loc.off));
	}
	return 0;
}

static int prep_repl(core *c, meta_conn *w, core_txn *t, sl_err *err)
{
	repl_arg *a = t->arg;
	json_t *ops = json_array();
	seen *sn = calloc(a->n + 1, sizeof(*sn));
	size_t nsn = 0;
	int rc = sn ? 0 : sl_err_set(err, SL_ENOMEM, "out of memory");
	for (size_t i = 0; i < a->n && rc == 0; i++) {
		json_error_t je;
		json_t *op = json_loads(a->bodies[i], 0, &je);
		if (!op || !json_is_object(op)) {
			json_decref(op);
			rc = sl_err_set(err, SL_EINVAL,
					"replicated entry %zu is not a JSON object: %s", i,
					je.text);
			break;
		}
		json_t *jn = json_object_get(op, "node"), *jh = json_object_get(op, "hlc");
		if (!op_replicable(op) || !json_is_string(jn) || !json_is_integer(jh) ||
		    strlen(json_string_value(jn)) != 16) {
			json_decref(op);
			rc = sl_err_set(err, SL_EINVAL, "replicated entry %zu is not a valid op",
					i);
			break;
		}
		const char *node = json_string_value(jn);
		int64_t hlc = json_integer_value(jh);
		if (strcmp(node, c->node) == 0) {
			json_decref(op); /* our own op coming back around a ring */
			continue;
		}
		int64_t have = origin_max(w, node);
		size_t k;
		for (k = 0; k < nsn; k++)
			if (strcmp(sn[k].node, node) == 0)
				break;
		if (k < nsn && sn[k].hlc > have)
			have = sn[k].hlc;
		if (hlc <= have) {
			json_decref(op); /* already applied (it came by another path) */
			continue;
		}
		if (k == nsn)
			snprintf(sn[nsn++].node, 17, "%s", node);
		sn[k].hlc = hlc;
		if (hlc_observe(&c->hlc, (uint64_t)hlc) < 0) {
			rc = sl_err_set(err, SL_EINVAL,
					"entry %zu from node %s is stamped %lld s ahead of this "
					"host's "
					"clock, beyond the allowed drift "
					"(SEGLAKE_MAX_CLOCK_DRIFT_MS, "
					"%lld s): fix that host's clock",
					i, node,
					(long long)((HLC_MS(hlc) - hlc_wall_ms(&c->hlc)) / 1000),
					(long long)(c->hlc.max_drift_ms / 1000));
			json_decref(op);
			break;
		}
		if ((rc = core_chunks_relocate(c, w, op, "replicated op", err)) < 0) {
			json_decref(op);
			break;
		}
		json_array_append_new(ops, op);
	}
	free(sn);
	if (rc < 0) {
		json_decref(ops);
		return rc;
	}
	a->applied = json_array_size(ops);
	json_t *wrap = json_pack("{sssssIsIso}", "op", "repl", "peer", a->peer, "seq",
				 (json_int_t)a->seq, "ms", (json_int_t)hlc_wall_ms(&c->hlc), "ops",
				 ops);
	return core_txn_apply(c, w, t, wrap, err);
}

int core_repl_apply(core *c, const char *peer, int64_t peer_seq, const char *const *bodies,
		    size_t n, size_t *applied, sl_err *err)
{
	if (!peer || !*peer)
		return sl_err_set(err, SL_EINVAL, "no peer name");
	repl_arg a = { .peer = peer, .seq = peer_seq, .bodies = bodies, .n = n };
	int rc = core_commit(c, prep_repl, &a, err);
	if (applied)
		*applied = rc == 0 ? a.applied : 0;
	return rc;
}

int64_t core_peer_seq(core *c, const char *peer)
{
	meta_conn *r = meta_reader(c->md);
	sqlite3_stmt *st = meta_stmt(r, "SELECT seq FROM peers WHERE peer=?1", NULL);
	int64_t s = 0;
	if (st) {
		sqlite3_bind_text(st, 1, peer, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			s = sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
	}
	meta_reader_release(c->md, r);
	return s;
}

int core_peer_list(core *c, core_peer **out, size_t *n, sl_err *err)
{
	*out = NULL;
	*n = 0;
	meta_conn *r = meta_reader(c->md);
	sqlite3_stmt *st =
		meta_stmt(r, "SELECT peer, seq, updated_ms FROM peers ORDER BY peer", err);
	int rc = st ? 0 : err->code;
	size_t cap = 0;
	while (st && sqlite3_step(st) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 8;
			core_peer *p = realloc(*out, cap * sizeof(*p));
			if (!p) {
				rc = sl_err_set(err, SL_ENOMEM, "out of memory");
				break;
			}
			*out = p;
		}
		core_peer *p = &(*out)[(*n)++];
		p->peer = strdup((const char *)sqlite3_column_text(st, 0));
		p->seq = sqlite3_column_int64(st, 1);
		p->updated_ms = sqlite3_column_int64(st, 2);
	}
	if (st)
		sqlite3_reset(st);
	meta_reader_release(c->md, r);
	return rc;
}

void core_peers_free(core_peer *p, size_t n)
{
	if (!p)
		return;
	for (size_t i = 0; i < n; i++)
		free(p[i].peer);
	free(p);
}

int core_conflicts(core *c, const char *bucket, const char *after_bucket, const char *after_key,
		   int max, core_objinfo **out, size_t *n, sl_err *err)
{
	*out = NULL;
	*n = 0;
	if (max <= 0 || max > 1000)
		max = 1000;
	meta_conn *r = meta_reader(c->md);
	sqlite3_stmt *st = meta_stmt(r,
				     "SELECT " CORE_VCOLS " FROM versions v WHERE v.state=1 AND "
				     "(?1 IS NULL OR "
				     "v.bucket=?1) AND (v.bucket>?2 OR (v.bucket=?2 AND v.key>?3)) "
				     "ORDER BY v.bucket, v.key, v.hlc DESC LIMIT ?4",
				     err);
	int rc = st ? 0 : err->code;
	core_objinfo *o = rc == 0 ? calloc((size_t)max, sizeof(*o)) : NULL;
	if (rc == 0 && !o)
		rc = sl_err_set(err, SL_ENOMEM, "out of memory");
	if (rc == 0) {
		if (bucket)
			sqlite3_bind_text(st, 1, bucket, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(st, 1);
		sqlite3_bind_text(st, 2, after_bucket ? after_bucket : "", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, after_key ? after_key : "", -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 4, max);
		while (sqlite3_step(st) == SQLITE_ROW && *n < (size_t)max)
			core_row_objinfo(st, 0, &o[(*n)++], NULL, NULL);
		sqlite3_reset(st);
		*out = o;
	}
	meta_reader_release(c->md, r);
	return rc;
}

typedef struct trim_arg {
	int64_t upto;
} trim_arg;

static int prep_trim(core *c, meta_conn *w, core_txn *t, sl_err *err)
{
	(void)c;
	(void)t;
	trim_arg *a = t->arg;
	int64_t cur = 0;
	meta_state_get_int(w, "oplog_horizon", &cur, NULL);
	if (a->upto <= cur)
		return 0;
	sqlite3_stmt *st = meta_stmt(w, "DELETE FROM oplog WHERE seq<=?1", err);
	if (!st)
		return err->code;
	sqlite3_bind_int64(st, 1, a->upto);
	int rc = meta_done(w, st, err);
	if (rc == 0)
		rc = meta_state_set_int(w, "oplog_horizon", a->upto, err);
	return rc;
}

int core_oplog_trim(core *c, int64_t upto, sl_err *err)
{
	int64_t head = core_oplog_head(c);
	if (upto > head)
		upto = head;
	trim_arg a = { upto };
	return core_commit_internal(c, prep_trim, &a, err);
}

int64_t core_oplog_horizon(core *c)
{
	meta_conn *r = meta_reader(c->md);
	int64_t h = 0;
	meta_state_get_int(r, "oplog_horizon", &h, NULL);
	meta_reader_release(c->md, r);
	return h;
}
