/*
 * sync.c - the client side of a replication round: pull (read the peer's
 * oplog after our watermark, fetch the chunks we lack as a stream, verify and
 * store each, apply the entries with the watermark in the same transaction)
 * and push (the same, driven from this side: send entries, learn which
 * chunks the peer lacks, send them in bounded batches, have it apply). Used
 * by the serve workers and by `seglake repl pull|push`. Not here: HTTP
 * details (client.c), conflict rules (core).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "repl/repl_int.h"

/* ---- chunk stream: [32-byte hash][u32 BE length][data] ... --------------- */

/* Chunk buffers on the receiving side: one being filled from the socket while
 * up to REPL_RX_DEPTH - 1 complete chunks are hashed and stored by the core's
 * background threads (core_chunk_put_async), so the SHA-256 of one chunk runs
 * beside the segment write of another. Memory: REPL_RX_DEPTH * 4 MiB per
 * fetch, whatever the object size. */
#ifndef REPL_RX_DEPTH
#define REPL_RX_DEPTH 3
#endif

typedef struct repl_chunk_rx {
	core *c;
	uint8_t hdr[36];
	size_t hdr_got;
	uint8_t *bufs[REPL_RX_DEPTH]; /* CORE_CHUNK_SIZE each, allocated on first use */
	int cur;		      /* the buffer being filled */
	uint32_t want, got;
	int in_data;
	size_t done; /* chunks of this request verified and stored */
	repl_counters *cnt;
	repl_pull_state *st; /* progress published through st->progress */
	sl_err err;
	int failed;
	/* chunks being stored in the background, oldest first */
	struct {
		core_chunk_job *job;
		int buf;
		uint32_t len;
		uint8_t hash[32];
	} q[REPL_RX_DEPTH];
	int qhead, qn;
} repl_chunk_rx;

/* Counts one chunk verified and stored, and tells the status. */
static void repl_chunk_rx_stored(repl_chunk_rx *x, uint32_t len)
{
	x->done++;
	if (x->cnt) {
		x->cnt->chunks++;
		x->cnt->chunk_bytes += len;
	}
	if (x->st) {
		x->st->fetch_done++;
		if (x->st->progress)
			x->st->progress(x->st->progress_ctx, x->st, x->cnt);
	}
}

/* Waits for the oldest chunk being stored in the background and checks that
 * its bytes hashed to the hash the peer named. */
static int repl_chunk_rx_settle_one(repl_chunk_rx *x)
{
	if (x->qn == 0)
		return 0;
	int i = x->qhead;
	core_chunkref ref;
	static const uint8_t hole[32];
	sl_err e = { 0 };
	int rc = core_chunk_job_wait(x->q[i].job, &ref, &e);
	x->q[i].job = NULL;
	x->qhead = (x->qhead + 1) % REPL_RX_DEPTH;
	x->qn--;
	if (rc == 0 && memcmp(ref.hash, x->q[i].hash, 32) != 0 && memcmp(ref.hash, hole, 32) != 0)
		rc = sl_err_set(&e, SL_ECORRUPT, "received chunk does not match its hash");
	if (rc < 0) {
		if (!x->failed)
			x->err = e;
		x->failed = 1;
		return -1;
	}
	if (!x->failed)
		repl_chunk_rx_stored(x, x->q[i].len);
	return 0;
}

/* Waits for every chunk in flight (their buffers must outlive the jobs). */
static int repl_chunk_rx_settle(repl_chunk_rx *x)
{
	int rc = 0;
	while (x->qn > 0)
		if (repl_chunk_rx_settle_one(x) < 0)
			rc = -1;
	return x->failed ? -1 : rc;
}

/* A buffer neither being filled nor in flight; NULL if out of memory. */
static int repl_chunk_rx_free_buf(repl_chunk_rx *x)
{
	for (int b = 0; b < REPL_RX_DEPTH; b++) {
		int busy = b == x->cur;
		for (int k = 0; k < x->qn && !busy; k++)
			busy = x->q[(x->qhead + k) % REPL_RX_DEPTH].buf == b;
		if (busy)
			continue;
		if (!x->bufs[b] && !(x->bufs[b] = malloc(CORE_CHUNK_SIZE)))
			return -1;
		return b;
	}
	return -1;
}

static int repl_chunk_rx_finish(repl_chunk_rx *x)
{
	/* keep one buffer free to receive into */
	if (x->qn == REPL_RX_DEPTH - 1 && repl_chunk_rx_settle_one(x) < 0)
		return -1;
	int next = x->want ? repl_chunk_rx_free_buf(x) : -1;
	core_chunk_job *j = next >= 0 ? core_chunk_put_async_cold(x->c, x->bufs[x->cur], x->want)
				      : NULL;
	if (j) {
		/* hash and store it in the background; receive into another buffer */
		int t = (x->qhead + x->qn) % REPL_RX_DEPTH;
		x->q[t].job = j;
		x->q[t].buf = x->cur;
		x->q[t].len = x->want;
		memcpy(x->q[t].hash, x->hdr, 32);
		x->qn++;
		x->cur = next;
	} else {
		/* no background slot (or an empty chunk): store it here */
		if (core_chunk_ingest(x->c, x->hdr, x->bufs[x->cur], x->want, &x->err) < 0) {
			x->failed = 1;
			return -1;
		}
		repl_chunk_rx_stored(x, x->want);
	}
	x->in_data = 0;
	x->hdr_got = 0;
	return 0;
}

static int repl_chunk_rx_feed(void *ctx, const char *data, size_t len)
{
	repl_chunk_rx *x = ctx;
	if (x->failed)
		return -1;
	while (len > 0) {
		if (!x->in_data) {
			size_t n = 36 - x->hdr_got < len ? 36 - x->hdr_got : len;
			memcpy(x->hdr + x->hdr_got, data, n);
			x->hdr_got += n;
			data += n;
			len -= n;
			if (x->hdr_got < 36)
				continue;
			x->want = (uint32_t)x->hdr[32] << 24 | (uint32_t)x->hdr[33] << 16 |
				  (uint32_t)x->hdr[34] << 8 | x->hdr[35];
			if (x->want == REPL_CHUNK_MISSING) {
				char hx[65];
				sl_hex(x->hdr, 32, hx);
				sl_err_set(&x->err, SL_ENOKEY, "the peer does not store chunk %s",
					   hx);
				x->failed = 1;
				return -1;
			}
			if (x->want > CORE_CHUNK_SIZE) {
				sl_err_set(&x->err, SL_EINVAL, "peer sent a chunk of %u bytes",
					   x->want);
				x->failed = 1;
				return -1;
			}
			x->in_data = 1;
			x->got = 0;
			if (x->want == 0 && repl_chunk_rx_finish(x) != 0)
				return -1;
			continue;
		}
		size_t n = x->want - x->got < len ? x->want - x->got : len;
		memcpy(x->bufs[x->cur] + x->got, data, n);
		x->got += (uint32_t)n;
		data += n;
		len -= n;
		if (x->got == x->want && repl_chunk_rx_finish(x) != 0)
			return -1;
	}
	return 0;
}

/* Fetches hashes (32 bytes each) from the peer in batches, storing each chunk
 * as it completes: memory is REPL_RX_DEPTH chunks whatever the batch. */
int repl_fetch_chunks(repl_client *cl, core *c, const uint8_t *hashes, size_t n, repl_counters *cnt,
		      repl_pull_state *st, sl_err *err)
{
	if (n == 0)
		return 0;
	repl_chunk_rx x = { .c = c, .cnt = cnt, .st = st };
	x.bufs[0] = malloc(CORE_CHUNK_SIZE);
	char *req = malloc(REPL_FETCH_BATCH * 65 + 1);
	if (!x.bufs[0] || !req) {
		free(x.bufs[0]);
		free(req);
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	}
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i += REPL_FETCH_BATCH) {
		size_t m = n - i < REPL_FETCH_BATCH ? n - i : REPL_FETCH_BATCH;
		size_t len = 0;
		for (size_t k = 0; k < m; k++) {
			sl_hex(hashes + 32 * (i + k), 32, req + len);
			len += 64;
			req[len++] = '\n';
		}
		x.done = 0;
		x.hdr_got = 0;
		x.in_data = 0;
		long status;
		rc = repl_http(cl, "POST", "/v1/repl/chunks", NULL, req, len, repl_chunk_rx_feed,
			       &x, NULL, 600000L, &status, err);
		repl_chunk_rx_settle(&x); /* the last chunks of the batch */
		if (x.failed) {
			*err = x.err;
			rc = x.err.code ? x.err.code : SL_EIO;
		} else if (rc == 0 && status != 200) {
			rc = sl_err_set(err, SL_EIO, "%s/v1/repl/chunks: HTTP %ld", cl->base,
					status);
		} else if (rc == 0 && x.done != m) {
			rc = sl_err_set(err, SL_EIO, "%s sent %zu of %zu chunks", cl->base, x.done,
					m);
		}
	}
	repl_chunk_rx_settle(&x);
	for (int b = 0; b < REPL_RX_DEPTH; b++)
		free(x.bufs[b]);
	free(req);
	return rc;
}

int repl_peer_info(repl_client *cl, core *c, json_t **out, sl_err *err)
{
	char q[64];
	snprintf(q, sizeof(q), "node=%s", core_node_id(c));
	int rc = repl_call_json(cl, "GET", "/v1/repl/info", q, NULL, 0, 30000L, out, err);
	if (rc < 0)
		return rc;
	const char *node = json_string_value(json_object_get(*out, "node"));
	if (!node || strlen(node) != 16) {
		json_decref(*out);
		*out = NULL;
		return sl_err_set(err, SL_EIO, "%s: info answer has no node id", cl->base);
	}
	if (strcmp(node, core_node_id(c)) == 0) {
		json_decref(*out);
		*out = NULL;
		return sl_err_set(err, SL_EINVAL, "%s is this host itself (node %s)", cl->base,
				  node);
	}
	return 0;
}

long repl_pull_step(repl_client *cl, core *c, int page, int wait_ms, repl_pull_state *st,
		    repl_counters *cnt, sl_err *err)
{
	st->watermark = core_peer_seq(c, st->node);
	char q[200];
	/* canonical order: after, max, node, wait */
	snprintf(q, sizeof(q), "after=%" PRId64 "&max=%d&node=%s&wait=%d", st->watermark,
		 page > 0 ? page : REPL_PAGE_DEFAULT, core_node_id(c), wait_ms);
	json_t *j;
	int rc = repl_call_json(cl, "GET", "/v1/repl/oplog", q, NULL, 0, (long)wait_ms + 60000L, &j,
				err);
	if (rc < 0)
		return rc;
	const char *node = json_string_value(json_object_get(j, "node"));
	if (!node || strcmp(node, st->node) != 0) {
		json_decref(j);
		return sl_err_set(err, SL_EINVAL,
				  "%s changed identity (node %s, expected %s): "
				  "it was re-created; re-bootstrap",
				  cl->base, node ? node : "?", st->node);
	}
	st->remote_head = json_integer_value(json_object_get(j, "head"));
	json_t *ents = json_object_get(j, "entries");
	size_t n = json_array_size(ents);
	if (n == 0) {
		st->lag_ms = 0;
		st->backlog_bytes = 0;
		json_decref(j);
		return 0;
	}
	const char **bodies = calloc(n, sizeof(*bodies));
	if (!bodies) {
		json_decref(j);
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	}
	int64_t last = 0;
	uint64_t backlog = 0;
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(ents, i);
		bodies[i] = json_string_value(json_object_get(e, "body"));
		int64_t seq = json_integer_value(json_object_get(e, "seq"));
		if (!bodies[i] || seq <= last || seq <= st->watermark) {
			free(bodies);
			json_decref(j);
			return sl_err_set(err, SL_EIO, "%s sent a malformed oplog page", cl->base);
		}
		last = seq;
		json_t *op = json_loads(bodies[i], 0, NULL);
		backlog += (uint64_t)json_integer_value(json_object_get(op, "size"));
		json_decref(op);
	}
	int64_t hlc0 = json_integer_value(json_object_get(json_array_get(ents, 0), "hlc"));
	st->lag_ms = repl_now_ms() - (int64_t)((uint64_t)hlc0 >> 16);
	if (st->lag_ms < 0)
		st->lag_ms = 0;
	st->backlog_bytes = backlog;
	uint8_t *miss = NULL;
	size_t nmiss = 0;
	rc = core_repl_missing(c, bodies, n, &miss, &nmiss, err);
	st->fetch_total = rc == 0 ? nmiss : 0;
	st->fetch_done = 0;
	if (rc == 0 && st->progress)
		st->progress(st->progress_ctx, st, cnt);
	if (rc == 0)
		rc = repl_fetch_chunks(cl, c, miss, nmiss, cnt, st, err);
	size_t applied = 0;
	if (rc == 0)
		rc = core_repl_apply(c, st->node, last, bodies, n, &applied, err);
	free(miss);
	free(bodies);
	json_decref(j);
	if (rc < 0)
		return rc;
	st->watermark = last;
	st->backlog_bytes = 0;
	st->fetch_total = st->fetch_done = 0;
	if (st->watermark >= st->remote_head)
		st->lag_ms = 0;
	if (cnt) {
		cnt->entries += n;
		cnt->applied += applied;
	}
	return (long)n;
}

int repl_pull_once(core *c, const char *url, const repl_creds *cr, const repl_round_opts *o,
		   repl_counters *out, sl_err *err)
{
	repl_client cl;
	repl_counters cnt = { 0 };
	int rc = repl_client_init(&cl, url, cr, err);
	if (rc < 0)
		return rc;
	cl.cnt = &cnt;
	json_t *info = NULL;
	rc = repl_peer_info(&cl, c, &info, err);
	repl_pull_state st = { 0 };
	if (rc == 0) {
		snprintf(st.node, sizeof(st.node), "%s",
			 json_string_value(json_object_get(info, "node")));
		json_decref(info);
	}
	while (rc == 0) {
		long n = repl_pull_step(&cl, c, o ? o->page : 0, 0, &st, &cnt, err);
		if (n < 0)
			rc = (int)n;
		if (o && o->progress)
			o->progress(o->progress_ctx, &cnt, st.watermark, st.remote_head);
		if (n <= 0)
			break;
	}
	repl_client_clear(&cl);
	if (out)
		*out = cnt;
	return rc;
}

/* ---- push ------------------------------------------------------------------ */

/* {"node":..,"seq":..,"entries":[body,...]} as text. */
static char *repl_push_doc(core *c, int64_t seq, const core_oplog_entry *e, size_t n)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, json_string(e[i].body));
	json_t *d = json_pack("{sssIso}", "node", core_node_id(c), "seq", (json_int_t)seq,
			      "entries", arr);
	char *s = d ? json_dumps(d, JSON_COMPACT) : NULL;
	json_decref(d);
	return s;
}

/* Sends chunks the peer lacks, in requests of at most REPL_PUSH_BATCH_BYTES
 * (the peer holds one request in memory). */
static int repl_push_chunks(repl_client *cl, core *c, json_t *missing, repl_counters *cnt,
			    sl_err *err)
{
	size_t n = json_array_size(missing);
	if (n == 0)
		return 0;
	repl_buf b = { 0 };
	int rc = 0;
	size_t i = 0;
	while (i < n && rc == 0) {
		b.len = 0;
		size_t sent = 0;
		while (i < n) {
			const char *hx = json_string_value(json_array_get(missing, i));
			core_chunkref ref;
			uint32_t len = 0;
			if (!hx || strlen(hx) != 64 || sl_unhex_n(hx, ref.hash, 32) != 0) {
				rc = sl_err_set(err, SL_EIO, "peer named a malformed chunk hash");
				break;
			}
			if (!core_chunk_has(c, ref.hash, &len)) {
				rc = sl_err_set(err, SL_ENOKEY, "chunk %s is not stored here", hx);
				break;
			}
			if (sent > 0 && b.len + 36 + len > REPL_PUSH_BATCH_BYTES)
				break;
			ref.len = len;
			uint8_t hdr[36];
			memcpy(hdr, ref.hash, 32);
			hdr[32] = (uint8_t)(len >> 24);
			hdr[33] = (uint8_t)(len >> 16);
			hdr[34] = (uint8_t)(len >> 8);
			hdr[35] = (uint8_t)len;
			if (repl_buf_add(&b, hdr, 36) != 0 || repl_buf_add(&b, NULL, len) != 0) {
				rc = sl_err_set(err, SL_ENOMEM, "out of memory");
				break;
			}
			rc = core_chunk_read(c, &ref, 0, b.p + b.len - len, len, err);
			if (rc < 0)
				break;
			sent++;
			i++;
			if (cnt) {
				cnt->chunks++;
				cnt->chunk_bytes += len;
			}
		}
		if (rc == 0 && sent > 0) {
			json_t *j;
			rc = repl_call_json(cl, "POST", "/v1/repl/push/chunks", NULL, b.p, b.len,
					    600000L, &j, err);
			json_decref(j);
		}
	}
	repl_buf_free(&b);
	return rc;
}

int repl_push_once(core *c, const char *url, const repl_creds *cr, const repl_round_opts *o,
		   repl_counters *out, sl_err *err)
{
	repl_client cl;
	repl_counters cnt = { 0 };
	int rc = repl_client_init(&cl, url, cr, err);
	if (rc < 0)
		return rc;
	cl.cnt = &cnt;
	json_t *info = NULL;
	rc = repl_peer_info(&cl, c, &info, err);
	int64_t after = rc == 0 ? json_integer_value(json_object_get(info, "peer_seq")) : 0;
	json_decref(info);
	int page = o && o->page > 0 ? o->page : REPL_PAGE_DEFAULT;
	if (rc == 0 && after < core_oplog_horizon(c))
		rc = sl_err_set(err, SL_ENOTSUP,
				"the peer has applied up to %" PRId64 " but this host's oplog is "
				"trimmed up to %" PRId64 ": re-bootstrap the peer",
				after, core_oplog_horizon(c));
	while (rc == 0) {
		core_oplog_entry *e = NULL;
		size_t n = 0;
		rc = core_oplog_read(c, after, page, &e, &n, err);
		if (rc < 0 || n == 0) {
			core_oplog_free(e, n);
			break;
		}
		/* keep a page's JSON under a few MiB */
		size_t bytes = 0, m = 0;
		while (m < n && (m == 0 || bytes + strlen(e[m].body) < (REPL_JSON_MAX / 4)))
			bytes += strlen(e[m++].body);
		int64_t last = e[m - 1].seq;
		char *doc = repl_push_doc(c, last, e, m);
		json_t *j = NULL;
		if (!doc)
			rc = sl_err_set(err, SL_ENOMEM, "out of memory");
		else
			rc = repl_call_json(&cl, "POST", "/v1/repl/push/missing", NULL, doc,
					    strlen(doc), 120000L, &j, err);
		if (rc == 0)
			rc = repl_push_chunks(&cl, c, json_object_get(j, "missing"), &cnt, err);
		json_decref(j);
		j = NULL;
		if (rc == 0)
			rc = repl_call_json(&cl, "POST", "/v1/repl/push/apply", NULL, doc,
					    strlen(doc), 600000L, &j, err);
		if (rc == 0) {
			cnt.entries += m;
			cnt.applied += (uint64_t)json_integer_value(json_object_get(j, "applied"));
			after = last;
		}
		json_decref(j);
		free(doc);
		core_oplog_free(e, n);
		if (o && o->progress)
			o->progress(o->progress_ctx, &cnt, after, core_oplog_head(c));
	}
	repl_client_clear(&cl);
	if (out)
		*out = cnt;
	return rc;
}
