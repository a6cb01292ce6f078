/*
 * bootstrap.c - snapshot bootstrap: the GET /v1/repl/snapshot endpoint (the
 * state of this lake at one oplog position, streamed from the core's
 * snapshot reader) and the client that applies such a snapshot on an empty
 * lake, so a new host can join a host whose oplog was trimmed. The stream
 * format is described in core/snapshot.c; the protocol in repl/README.md.
 * Not here: the incremental pull that follows (sync.c).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "repl/repl_int.h"
#include "s3d/s3d_int.h"

/* records per apply transaction, and logical bytes they may name */
#define REPL_SNAP_BATCH 500
#define REPL_SNAP_BATCH_BYTES (64ull << 20)

/* ---- server ------------------------------------------------------------------ */

typedef struct repl_snap_tx {
	core_snapread *s;
	const char *line;
	size_t len, off; /* off == len + 1: the newline is out too */
	int done;
} repl_snap_tx;

static void repl_snap_tx_free(void *cls)
{
	repl_snap_tx *t = cls;
	core_snapread_close(t->s);
	free(t);
}

static ssize_t repl_snap_tx_read(void *cls, uint64_t pos, char *out, size_t max)
{
	(void)pos;
	repl_snap_tx *t = cls;
	size_t w = 0;
	while (w < max) {
		if (!t->line || t->off > t->len) {
			if (t->done)
				break;
			sl_err err = { 0 };
			int rc = core_snapread_next(t->s, &t->line, &t->len, &err);
			if (rc < 0) {
				/* cut the stream: the client misses the trailer */
				fprintf(stderr, "seglake: replication snapshot: %s\n", err.msg);
				return MHD_CONTENT_READER_END_WITH_ERROR;
			}
			if (rc == 0) {
				t->done = 1;
				t->line = NULL;
				break;
			}
			t->off = 0;
		}
		if (t->off == t->len) {
			out[w++] = '\n';
			t->off++;
			continue;
		}
		size_t k = t->len - t->off < max - w ? t->len - t->off : max - w;
		memcpy(out + w, t->line + t->off, k);
		t->off += k;
		w += k;
	}
	if (w == 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	return (ssize_t)w;
}

void repl_srv_snapshot(repl *rp, struct s3d_req *r)
{
	repl_snap_tx *t = calloc(1, sizeof(*t));
	sl_err err = { 0 };
	int rc = t ? core_snapread_open(rp->core, &t->s, &err)
		   : sl_err_set(&err, SL_ENOMEM, "out of memory");
	struct MHD_Response *resp = NULL;
	if (rc == 0)
		resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024,
							 repl_snap_tx_read, t, repl_snap_tx_free);
	if (!resp) {
		if (t)
			repl_snap_tx_free(t);
		if (rc == 0)
			sl_err_set(&err, SL_ENOMEM, "out of memory");
		json_t *j = json_pack("{ssss}", "error", "InternalError", "message", err.msg);
		char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
		json_decref(j);
		struct MHD_Response *er =
			s ? MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE)
			  : NULL;
		if (!er)
			free(s);
		else
			s3d_hadd(er, "Content-Type", "application/json");
		snprintf(r->errcode, sizeof(r->errcode), "InternalError");
		s3d_respond(r, 500, er);
		return;
	}
	s3d_hadd(resp, "Content-Type", "application/x-ndjson");
	s3d_respond(r, 200, resp);
}

/* ---- client ------------------------------------------------------------------ */

static int repl_snap_sink(void *ctx, const char *data, size_t len)
{
	return fwrite(data, 1, len, (FILE *)ctx) == len ? 0 : -1;
}

/* Reads one line (without its newline) into *buf; 0 at the end of the file,
 * 1 for a complete line, -1 for a last line without newline (a cut stream). */
static int repl_snap_line(FILE *f, char **buf, size_t *cap, size_t *len)
{
	ssize_t n = getline(buf, cap, f);
	if (n <= 0)
		return 0;
	if ((*buf)[n - 1] != '\n')
		return -1;
	(*buf)[--n] = '\0';
	*len = (size_t)n;
	return 1;
}

/* Receives the snapshot into an unlinked file in the data dir (so the peer's
 * read transaction ends as fast as the link allows and memory stays bounded),
 * then checks its header and trailer. */
static int repl_snap_receive(repl_client *cl, core *c, const char *peer_node, FILE **out,
			     json_t **header, uint64_t *nrec, sl_err *err)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/snapshot.XXXXXX", core_dir(c));
	int fd = mkstemp(path);
	if (fd < 0)
		return sl_err_set(err, SL_EIO, "create a temporary file in %s: %m", core_dir(c));
	unlink(path);
	FILE *f = fdopen(fd, "w+");
	if (!f) {
		close(fd);
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	}
	long status = 0;
	int rc = repl_http(cl, "GET", "/v1/repl/snapshot", NULL, NULL, 0, repl_snap_sink, f, NULL,
			   24L * 3600 * 1000, &status, err);
	if (rc == 0 && fflush(f) != 0)
		rc = sl_err_set(err, SL_EIO, "write the snapshot to %s: %m", core_dir(c));
	rewind(f);
	char *buf = NULL;
	size_t cap = 0, len = 0;
	if (rc == 0 && status != 200) {
		char msg[300] = "";
		size_t n = fread(msg, 1, sizeof(msg) - 1, f);
		msg[n] = '\0';
		json_t *j = json_loads(msg, 0, NULL);
		rc = sl_err_set(err, status == 404 ? SL_ENOTSUP : SL_EIO,
				"%s/v1/repl/snapshot: HTTP %ld %s", cl->base, status,
				j ? json_string_value(json_object_get(j, "message")) ?: ""
				: status == 404 ? "(the peer has no snapshot endpoint)"
						: "");
		json_decref(j);
	}
	json_t *h = NULL;
	uint64_t count = 0;
	int have_end = 0;
	if (rc == 0) {
		int lr = repl_snap_line(f, &buf, &cap, &len);
		h = lr == 1 ? json_loads(buf, 0, NULL) : NULL;
		const char *t = json_string_value(json_object_get(h, "t"));
		const char *node = json_string_value(json_object_get(h, "node"));
		if (!h || !t || strcmp(t, "header") != 0)
			rc = sl_err_set(err, SL_EIO, "%s sent a snapshot without a header",
					cl->base);
		else if (json_integer_value(json_object_get(h, "format")) != 1)
			rc = sl_err_set(err, SL_ENOTSUP,
					"%s sent snapshot format %" JSON_INTEGER_FORMAT ", this "
					"seglake "
					"reads "
					"format 1",
					cl->base, json_integer_value(json_object_get(h, "format")));
		else if (!node || strcmp(node, peer_node) != 0)
			rc = sl_err_set(err, SL_EIO, "%s: snapshot of node %s, expected %s",
					cl->base, node ? node : "?", peer_node);
		else if (!json_is_object(json_object_get(h, "origins")))
			rc = sl_err_set(err, SL_EIO, "%s: snapshot header without origins",
					cl->base);
	}
	while (rc == 0) {
		int lr = repl_snap_line(f, &buf, &cap, &len);
		if (lr <= 0)
			break;
		if (have_end) {
			have_end = 0; /* records after the trailer: not ours */
			break;
		}
		if (strncmp(buf, "{\"t\":\"end\"", 10) == 0) {
			json_t *e = json_loads(buf, 0, NULL);
			have_end = json_is_integer(json_object_get(e, "count")) &&
				   (uint64_t)json_integer_value(json_object_get(e, "count")) ==
					   count;
			json_decref(e);
			if (!have_end)
				break;
			continue;
		}
		count++;
	}
	free(buf);
	if (rc == 0 && !have_end)
		rc = sl_err_set(err, SL_EIO,
				"the snapshot from %s was cut after %" PRIu64 " records (no "
				"valid trailer); nothing was applied: run the bootstrap again",
				cl->base, count);
	if (rc < 0) {
		json_decref(h);
		fclose(f);
		return rc;
	}
	rewind(f);
	*out = f;
	*header = h;
	*nrec = count;
	return 0;
}

/* Progress while a batch's chunks arrive: records done so far, chunk bytes. */
typedef struct repl_snap_prog {
	const repl_round_opts *o;
	uint64_t done, total;
} repl_snap_prog;

static void repl_snap_fetch_progress(void *ctx, const repl_pull_state *st, const repl_counters *cnt)
{
	(void)st;
	repl_snap_prog *p = ctx;
	if (p->o && p->o->progress && cnt)
		p->o->progress(p->o->progress_ctx, cnt, (int64_t)p->done, (int64_t)p->total);
}

int repl_snapshot_bootstrap(core *c, const char *url, const repl_creds *cr,
			    const repl_round_opts *o, const volatile int *stop, repl_counters *out,
			    int64_t *seq, sl_err *err)
{
	repl_client cl;
	repl_counters cnt = { 0 };
	int rc = repl_client_init(&cl, url, cr, err);
	if (rc < 0)
		return rc;
	cl.cnt = &cnt;
	cl.stop = stop;
	json_t *info = NULL, *h = NULL;
	FILE *f = NULL;
	char peer[17] = "";
	uint64_t nrec = 0, done = 0;
	rc = repl_peer_info(&cl, c, &info, err);
	if (rc == 0) {
		snprintf(peer, sizeof(peer), "%s",
			 json_string_value(json_object_get(info, "node")));
		json_decref(info);
		rc = repl_snap_receive(&cl, c, peer, &f, &h, &nrec, err);
	}
	if (rc == 0)
		rc = core_snapshot_begin(c, err);
	char **recs = calloc(REPL_SNAP_BATCH, sizeof(*recs));
	if (rc == 0 && !recs)
		rc = sl_err_set(err, SL_ENOMEM, "out of memory");
	char *buf = NULL;
	size_t cap = 0, len = 0;
	if (rc == 0)
		repl_snap_line(f, &buf, &cap, &len); /* the header, checked */
	int64_t head = json_integer_value(json_object_get(h, "head"));
	repl_snap_prog prog = { .o = o, .total = nrec };
	repl_pull_state ps = { .progress = repl_snap_fetch_progress, .progress_ctx = &prog };
	while (rc == 0) {
		if (stop && *stop) {
			rc = sl_err_set(err, SL_EIO, "stopped");
			break;
		}
		size_t n = 0;
		uint64_t bytes = 0;
		while (n < REPL_SNAP_BATCH && bytes < REPL_SNAP_BATCH_BYTES &&
		       repl_snap_line(f, &buf, &cap, &len) == 1) {
			if (strncmp(buf, "{\"t\":\"end\"", 10) == 0)
				break;
			json_t *j = json_loads(buf, 0, NULL);
			bytes += (uint64_t)json_integer_value(json_object_get(j, "size"));
			json_decref(j);
			if (!(recs[n] = strdup(buf))) {
				rc = sl_err_set(err, SL_ENOMEM, "out of memory");
				break;
			}
			n++;
		}
		if (n == 0)
			break;
		uint8_t *miss = NULL;
		size_t nmiss = 0;
		if (rc == 0)
			rc = core_repl_missing(c, (const char *const *)recs, n, &miss, &nmiss, err);
		if (rc == 0)
			rc = repl_fetch_chunks(&cl, c, miss, nmiss, &cnt, &ps, err);
		if (rc == 0)
			rc = core_snapshot_apply(c, (const char *const *)recs, n, err);
		free(miss);
		for (size_t i = 0; i < n; i++) {
			free(recs[i]);
			recs[i] = NULL;
		}
		if (rc == 0) {
			done += n;
			prog.done = done;
			cnt.entries += n;
			cnt.applied += n;
			if (o && o->progress)
				o->progress(o->progress_ctx, &cnt, (int64_t)done, (int64_t)nrec);
		}
	}
	free(buf);
	free(recs);
	if (rc == 0 && done != nrec)
		rc = sl_err_set(err, SL_EIO, "applied %" PRIu64 " of %" PRIu64 " snapshot records",
				done, nrec);
	if (rc == 0) {
		char *orig = json_dumps(json_object_get(h, "origins"), JSON_COMPACT);
		rc = orig ? core_snapshot_finish(c, peer, head, orig, err)
			  : sl_err_set(err, SL_ENOMEM, "out of memory");
		free(orig);
	}
	if (f)
		fclose(f);
	json_decref(h);
	repl_client_clear(&cl);
	if (out)
		*out = cnt;
	if (seq)
		*seq = head;
	return rc;
}
