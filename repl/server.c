/*
 * server.c - the /v1/repl/... endpoints, called by the S3 daemon (s3d/)
 * after SigV4 verification through s3d_opts.repl_route. Each handler
 * translates one request into core calls and one JSON (or chunk stream)
 * answer; the protocol is described in repl/README.md. Not here: parsing,
 * SigV4 and body framing (s3d/), client logic (sync.c), conflict rules (core).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "repl/repl_int.h"
#include "s3d/s3d_int.h"

/* Who may replicate. Until access control lands: the root key only. This is
 * the one place a ReplicationRead / ReplicationWrite permission plugs in. */
/* s3d has already checked the key's seglake:ReplicationRead (GET) or
 * seglake:ReplicationWrite (push) permission (s3d/access.c); anonymous
 * requests never replicate, whatever a policy says. */
static int repl_srv_allowed(const s3d_req *r, int write)
{
	(void)write;
	return !r->anonymous && r->auth.access_key[0] != '\0';
}

static void repl_srv_json(s3d_req *r, unsigned status, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!s) {
		s3d_respond(r, 500, NULL);
		return;
	}
	size_t n = strlen(s);
	struct MHD_Response *resp = MHD_create_response_from_buffer(n, s, MHD_RESPMEM_MUST_FREE);
	if (!resp)
		free(s);
	else
		s3d_hadd(resp, "Content-Type", "application/json");
	r->bytes_out += n;
	s3d_respond(r, status, resp);
}

static void repl_srv_error(s3d_req *r, unsigned status, const char *code, const char *msg)
{
	snprintf(r->errcode, sizeof(r->errcode), "%s", code);
	repl_srv_json(r, status, json_pack("{ssss}", "error", code, "message", msg));
}

static void repl_srv_error_sl(s3d_req *r, int code, const sl_err *err)
{
	unsigned status = code == SL_EINVAL	? 400
			  : code == SL_ENOKEY	? 409
			  : code == SL_ECORRUPT ? 400
			  : code == SL_ENOSPC	? 507
						: 500;
	repl_srv_error(r, status, sl_code_name(code),
		       err && err->msg[0] ? err->msg : sl_code_name(code));
}

static int repl_srv_int(const s3d_req *r, const char *name, int64_t def, int64_t *out)
{
	const char *v = s3d_arg_get(r, name);
	*out = def;
	if (!v || !*v)
		return 0;
	char *end;
	errno = 0;
	long long x = strtoll(v, &end, 10);
	if (errno || *end || x < 0)
		return -1;
	*out = x;
	return 0;
}

static int repl_node_valid(const char *s)
{
	if (!s || strlen(s) != 16)
		return 0;
	for (const char *p = s; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return 0;
	return 1;
}

/* ---- reads ---------------------------------------------------------------- */

static void repl_srv_info(repl *rp, s3d_req *r)
{
	const char *node = s3d_arg_get(r, "node");
	json_t *j = json_pack("{sssIsI}", "node", core_node_id(rp->core), "head",
			      (json_int_t)core_oplog_head(rp->core), "horizon",
			      (json_int_t)core_oplog_horizon(rp->core));
	if (j && node && repl_node_valid(node))
		json_object_set_new(j, "peer_seq", json_integer(core_peer_seq(rp->core, node)));
	repl_srv_json(r, 200, j);
}

static void repl_srv_oplog(repl *rp, s3d_req *r)
{
	int64_t after, max, wait;
	if (repl_srv_int(r, "after", 0, &after) ||
	    repl_srv_int(r, "max", REPL_PAGE_DEFAULT, &max) || repl_srv_int(r, "wait", 0, &wait)) {
		repl_srv_error(r, 400, "InvalidArgument",
			       "after, max and wait must be non-negative integers");
		return;
	}
	if (max < 1 || max > REPL_PAGE_MAX)
		max = max < 1 ? 1 : REPL_PAGE_MAX;
	if (wait > REPL_LONGPOLL_MS)
		wait = REPL_LONGPOLL_MS;
	const char *node = s3d_arg_get(r, "node");
	if (node && !repl_node_valid(node)) {
		repl_srv_error(r, 400, "InvalidArgument", "node must be a 16-hex-digit node id");
		return;
	}
	core *c = rp->core;
	int64_t horizon = core_oplog_horizon(c);
	/* the host this one was bootstrapped from has the snapshot's state */
	if (after < horizon && !(after == 0 && node && horizon <= core_snapshot_source(c, node))) {
		char m[256];
		snprintf(m, sizeof(m),
			 "entries after %" PRId64 " were trimmed (oplog horizon %" PRId64
			 "): this host cannot catch up incrementally; re-bootstrap it from an "
			 "empty data dir",
			 after, horizon);
		repl_srv_error(r, 410, "OplogTrimmed", m);
		return;
	}
	if (node)
		repl_ack_record(rp, node, after);
	if (core_oplog_head(c) <= after && wait > 0 && !rp->stopping)
		core_oplog_wait(c, after, (int)wait);
	core_oplog_entry *e = NULL;
	size_t n = 0;
	sl_err err = { 0 };
	int rc = core_oplog_read(c, after, (int)max, &e, &n, &err);
	if (rc < 0) {
		repl_srv_error_sl(r, rc, &err);
		return;
	}
	json_t *arr = json_array();
	size_t bytes = 0;
	for (size_t i = 0; i < n; i++) {
		size_t bl = strlen(e[i].body);
		if (i > 0 && bytes + bl > REPL_JSON_MAX / 4)
			break; /* the rest comes with the next page */
		bytes += bl;
		json_array_append_new(arr, json_pack("{sIsIssssss}", "seq", (json_int_t)e[i].seq,
						     "hlc", (json_int_t)e[i].hlc, "node", e[i].node,
						     "kind", e[i].kind, "body", e[i].body));
	}
	core_oplog_free(e, n);
	repl_srv_json(r, 200,
		      json_pack("{sssIsIso}", "node", core_node_id(c), "head",
				(json_int_t)core_oplog_head(c), "horizon", (json_int_t)horizon,
				"entries", arr));
}

/* Streams [hash][u32 BE len][data] for each requested hash. The data comes
 * through a core reader over the stored ones, which checks each chunk's CRC
 * and reads the next chunk in the background while this one is sent; the
 * large chunks it reads with O_DIRECT (those of an upload were written past
 * the page cache, and a peer reads them once). A hash not stored here gets
 * len 0xffffffff and no data. */
typedef struct repl_chunk_tx {
	uint8_t *hashes;
	uint32_t *lens;
	size_t n, idx;	     /* the record being sent is idx - 1 */
	uint8_t hdr[36];     /* its header */
	size_t hoff;	     /* header bytes sent */
	uint64_t dleft;	     /* its data bytes still to send */
	core_reader *rd;     /* over the stored chunks among hashes, in order */
	uint64_t pos;	     /* next byte of rd */
	core_chunkref *refs; /* for rd */
} repl_chunk_tx;

static void repl_chunk_tx_free(void *cls)
{
	repl_chunk_tx *t = cls;
	core_reader_free(t->rd);
	free(t->hashes);
	free(t->lens);
	free(t->refs);
	free(t);
}

static ssize_t repl_chunk_tx_read(void *cls, uint64_t pos, char *out, size_t max)
{
	(void)pos;
	repl_chunk_tx *t = cls;
	size_t w = 0;
	while (w < max) {
		if (t->hoff == sizeof(t->hdr) && t->dleft == 0) {
			if (t->idx == t->n)
				break;
			uint32_t len = t->lens[t->idx];
			memcpy(t->hdr, t->hashes + 32 * t->idx, 32);
			t->hdr[32] = (uint8_t)(len >> 24);
			t->hdr[33] = (uint8_t)(len >> 16);
			t->hdr[34] = (uint8_t)(len >> 8);
			t->hdr[35] = (uint8_t)len;
			t->hoff = 0;
			t->dleft = len == REPL_CHUNK_MISSING ? 0 : len;
			t->idx++;
		}
		if (t->hoff < sizeof(t->hdr)) {
			size_t k = sizeof(t->hdr) - t->hoff < max - w ? sizeof(t->hdr) - t->hoff
								      : max - w;
			memcpy(out + w, t->hdr + t->hoff, k);
			t->hoff += k;
			w += k;
			continue;
		}
		size_t k = t->dleft < max - w ? (size_t)t->dleft : max - w;
		ssize_t got = core_read_at(t->rd, out + w, k, t->pos, NULL);
		if (got <= 0)
			return w > 0 ? (ssize_t)w : MHD_CONTENT_READER_END_WITH_ERROR;
		t->pos += (uint64_t)got;
		t->dleft -= (uint64_t)got;
		w += (size_t)got;
	}
	if (w == 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	return (ssize_t)w;
}

static void repl_srv_chunks_finish(s3d_req *r)
{
	repl *rp = r->srv->o.repl_ctx;
	const char *p = r->mem.p ? r->mem.p : "";
	size_t len = r->mem.len;
	repl_chunk_tx *t = calloc(1, sizeof(*t));
	size_t cap = len / 64 + 1;
	if (!t || !(t->hashes = malloc(cap * 32)) || !(t->lens = malloc(cap * sizeof(uint32_t))) ||
	    !(t->refs = malloc(cap * sizeof(*t->refs)))) {
		if (t)
			repl_chunk_tx_free(t);
		repl_srv_error(r, 503, "SlowDown", "out of memory");
		return;
	}
	t->hoff = sizeof(t->hdr); /* no record started */
	uint64_t total = 0;
	size_t nref = 0;
	size_t off = 0;
	while (off < len) {
		size_t ln = strcspn(p + off, "\n");
		if (ln == 0) {
			off++;
			continue;
		}
		if (ln != 64 || t->n == cap ||
		    sl_unhex_n(p + off, t->hashes + 32 * t->n, 32) != 0) {
			repl_chunk_tx_free(t);
			repl_srv_error(r, 400, "InvalidArgument",
				       "the body must be chunk hashes, 64 hex digits per line");
			return;
		}
		uint32_t cl = 0;
		if (!core_chunk_has(rp->core, t->hashes + 32 * t->n, &cl)) {
			cl = REPL_CHUNK_MISSING;
		} else if (cl > 0) {
			memcpy(t->refs[nref].hash, t->hashes + 32 * t->n, 32);
			t->refs[nref++].len = cl;
		}
		t->lens[t->n++] = cl;
		total += 36 + (cl == REPL_CHUNK_MISSING ? 0 : cl);
		off += ln;
	}
	if (t->n > REPL_FETCH_BATCH * 4) {
		repl_chunk_tx_free(t);
		repl_srv_error(r, 400, "InvalidArgument", "too many hashes in one request");
		return;
	}
	sl_err err = { 0 };
	if (core_chunks_open(rp->core, t->refs, nref, &t->rd, &err) < 0) {
		repl_chunk_tx_free(t);
		repl_srv_error_sl(r, SL_ENOMEM, &err);
		return;
	}
	struct MHD_Response *resp = MHD_create_response_from_callback(
		total, 256 * 1024, repl_chunk_tx_read, t, repl_chunk_tx_free);
	if (!resp) {
		repl_chunk_tx_free(t);
		repl_srv_error(r, 503, "SlowDown", "out of memory");
		return;
	}
	s3d_hadd(resp, "Content-Type", "application/octet-stream");
	r->bytes_out += total;
	s3d_respond(r, 200, resp);
}

static void repl_srv_status(repl *rp, s3d_req *r)
{
	repl_srv_json(r, 200, repl_status_json(rp));
}

static void repl_srv_conflicts(repl *rp, s3d_req *r)
{
	int64_t max;
	if (repl_srv_int(r, "max", 100000, &max)) {
		repl_srv_error(r, 400, "InvalidArgument", "bad max");
		return;
	}
	json_t *j;
	sl_err err = { 0 };
	int rc = repl_state_conflicts(rp->core, s3d_arg_get(r, "bucket"), (int)max, &j, &err);
	if (rc < 0)
		repl_srv_error_sl(r, rc, &err);
	else
		repl_srv_json(r, 200, j);
}

static void repl_srv_state(repl *rp, s3d_req *r)
{
	const char *bucket = s3d_arg_get(r, "bucket");
	json_t *j;
	sl_err err = { 0 };
	int rc;
	if (!bucket || !*bucket) {
		rc = repl_state_buckets(rp->core, &j, &err);
	} else {
		int64_t max;
		if (repl_srv_int(r, "max", 1000, &max)) {
			repl_srv_error(r, 400, "InvalidArgument", "bad max");
			return;
		}
		rc = repl_state_versions(rp->core, bucket, s3d_arg_get(r, "after_key"),
					 s3d_arg_get(r, "after_vid"), (int)max,
					 s3d_arg_has(r, "chunks"), &j, &err);
	}
	if (rc < 0) {
		if (rc == SL_ENOBUCKET)
			repl_srv_error(r, 404, "NoSuchBucket", err.msg);
		else
			repl_srv_error_sl(r, rc, &err);
	} else {
		repl_srv_json(r, 200, j);
	}
}

/* ---- push (writes) ---------------------------------------------------------- */

/* Parses {"node","seq","entries":[body...]}; answers and returns -1 if bad.
 * *bodies borrow from *doc. */
static int repl_srv_push_doc(repl *rp, s3d_req *r, json_t **doc, const char ***bodies, size_t *n)
{
	*doc = r->mem.p ? json_loadb(r->mem.p, r->mem.len, 0, NULL) : NULL;
	json_t *ents = json_object_get(*doc, "entries");
	const char *node = json_string_value(json_object_get(*doc, "node"));
	if (!*doc || !json_is_array(ents) || !repl_node_valid(node) ||
	    !json_is_integer(json_object_get(*doc, "seq"))) {
		json_decref(*doc);
		repl_srv_error(r, 400, "InvalidArgument",
			       "expected {\"node\":ID,\"seq\":N,\"entries\":[...]}");
		return -1;
	}
	if (strcmp(node, core_node_id(rp->core)) == 0) {
		json_decref(*doc);
		repl_srv_error(r, 400, "InvalidArgument", "a host cannot push to itself");
		return -1;
	}
	*n = json_array_size(ents);
	*bodies = calloc(*n + 1, sizeof(**bodies));
	if (!*bodies) {
		json_decref(*doc);
		repl_srv_error(r, 503, "SlowDown", "out of memory");
		return -1;
	}
	for (size_t i = 0; i < *n; i++) {
		(*bodies)[i] = json_string_value(json_array_get(ents, i));
		if (!(*bodies)[i]) {
			free(*bodies);
			json_decref(*doc);
			repl_srv_error(r, 400, "InvalidArgument", "entries must be strings");
			return -1;
		}
	}
	return 0;
}

static void repl_srv_push_missing_finish(s3d_req *r)
{
	repl *rp = r->srv->o.repl_ctx;
	json_t *doc;
	const char **bodies;
	size_t n;
	if (repl_srv_push_doc(rp, r, &doc, &bodies, &n) != 0)
		return;
	uint8_t *miss = NULL;
	size_t nm = 0;
	sl_err err = { 0 };
	int rc = core_repl_missing(rp->core, bodies, n, &miss, &nm, &err);
	if (rc < 0) {
		repl_srv_error_sl(r, rc, &err);
	} else {
		json_t *arr = json_array();
		for (size_t i = 0; i < nm; i++) {
			char hx[65];
			sl_hex(miss + 32 * i, 32, hx);
			json_array_append_new(arr, json_string(hx));
		}
		repl_srv_json(r, 200, json_pack("{so}", "missing", arr));
	}
	free(miss);
	free(bodies);
	json_decref(doc);
}

static void repl_srv_push_apply_finish(s3d_req *r)
{
	repl *rp = r->srv->o.repl_ctx;
	json_t *doc;
	const char **bodies;
	size_t n;
	if (repl_srv_push_doc(rp, r, &doc, &bodies, &n) != 0)
		return;
	const char *node = json_string_value(json_object_get(doc, "node"));
	int64_t seq = json_integer_value(json_object_get(doc, "seq"));
	size_t applied = 0;
	sl_err err = { 0 };
	int rc = n ? core_repl_apply(rp->core, node, seq, bodies, n, &applied, &err) : 0;
	if (rc < 0)
		repl_srv_error_sl(r, rc, &err);
	else
		repl_srv_json(r, 200,
			      json_pack("{sIsI}", "applied", (json_int_t)applied, "head",
					(json_int_t)core_oplog_head(rp->core)));
	free(bodies);
	json_decref(doc);
}

static void repl_srv_push_chunks_finish(s3d_req *r)
{
	repl *rp = r->srv->o.repl_ctx;
	const uint8_t *p = (const uint8_t *)r->mem.p;
	size_t len = r->mem.len, off = 0, stored = 0;
	while (off < len) {
		if (len - off < 36) {
			repl_srv_error(r, 400, "InvalidArgument", "truncated chunk record");
			return;
		}
		uint32_t cl = (uint32_t)p[off + 32] << 24 | (uint32_t)p[off + 33] << 16 |
			      (uint32_t)p[off + 34] << 8 | p[off + 35];
		if (cl > CORE_CHUNK_SIZE || len - off - 36 < cl) {
			repl_srv_error(r, 400, "InvalidArgument", "bad chunk record length");
			return;
		}
		sl_err err = { 0 };
		int rc = core_chunk_ingest(rp->core, p + off, p + off + 36, cl, &err);
		if (rc < 0) {
			repl_srv_error_sl(r, rc, &err);
			return;
		}
		off += 36 + cl;
		stored++;
	}
	repl_srv_json(r, 200, json_pack("{sI}", "stored", (json_int_t)stored));
}

/* ---- routing ------------------------------------------------------------------ */

static void repl_srv_body(s3d_req *r, uint64_t max, s3d_finish_fn fn)
{
	if (s3d_body_setup(r, S3D_BODY_MEM, max) != 0)
		return;
	r->finish = fn;
}

void repl_route(void *ctx, struct s3d_req *r)
{
	repl *rp = ctx;
	const char *p = r->raw_path + strlen("/v1/repl");
	const char *m = r->method;
	int get = strcmp(m, "GET") == 0, post = strcmp(m, "POST") == 0;
	int write = strncmp(p, "/push/", 6) == 0;
	if (!repl_srv_allowed(r, write)) {
		repl_srv_error(r, 403, "AccessDenied", "this key may not replicate");
		return;
	}
	if (get && strcmp(p, "/info") == 0)
		repl_srv_info(rp, r);
	else if (get && strcmp(p, "/oplog") == 0)
		repl_srv_oplog(rp, r);
	else if (get && strcmp(p, "/status") == 0)
		repl_srv_status(rp, r);
	else if (get && strcmp(p, "/conflicts") == 0)
		repl_srv_conflicts(rp, r);
	else if (get && strcmp(p, "/state") == 0)
		repl_srv_state(rp, r);
	else if (get && strcmp(p, "/snapshot") == 0)
		repl_srv_snapshot(rp, r); /* bootstrap.c */
	else if (post && strcmp(p, "/chunks") == 0)
		repl_srv_body(r, REPL_FETCH_BATCH * 4 * 65, repl_srv_chunks_finish);
	else if (post && strcmp(p, "/push/missing") == 0)
		repl_srv_body(r, REPL_JSON_MAX, repl_srv_push_missing_finish);
	else if (post && strcmp(p, "/push/apply") == 0)
		repl_srv_body(r, REPL_JSON_MAX, repl_srv_push_apply_finish);
	else if (post && strcmp(p, "/push/chunks") == 0)
		repl_srv_body(r, REPL_PUSH_BATCH_BYTES + 64 * 1024, repl_srv_push_chunks_finish);
	else
		repl_srv_error(r, 404, "NoSuchResource", "unknown replication endpoint");
}
