/*
 * repl.c - `seglake repl ...`: one pull or push round against a peer on a
 * data dir no daemon holds, bootstrap of an empty host (progress on a
 * terminal), status and conflicts (from a running daemon over HTTP or from a
 * data dir), and validate (compares two hosts' current state and prints the
 * differences). Not here: the protocol (repl/).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth/sigv4.h"
#include "cli/cli.h"
#include "cli/repl.h"
#include "repl/repl_int.h"

static const char repl_usage[] =
	"usage: seglake repl COMMAND [options]\n"
	"  pull --peer URL [--data DIR]       one round: fetch and apply what the peer has\n"
	"  push --peer URL [--data DIR]       one round: send the peer what it lacks\n"
	"  bootstrap --peer URL --data DIR [--snapshot]\n"
	"                                     create DIR (if needed) and catch up from the peer:\n"
	"                                     its history, or its snapshot (then the oplog after\n"
	"                                     it) if it trimmed its history or with --snapshot\n"
	"  status [--url URL | --data DIR] [--json]   per-peer watermark, lag, backlog, errors\n"
	"  conflicts [--url URL | --data DIR] [--bucket B] [--json]   losers of concurrent writes\n"
	"  validate --peer URL (--peer URL2 | --data DIR) [--bucket B] [--chunks]\n"
	"                                     compare two hosts; exit 1 if they differ\n"
	"Options: --peer-credentials FILE (access_key = / secret_key = lines), else\n"
	"SEGLAKE_PEER_ACCESS_KEY / SEGLAKE_PEER_SECRET_KEY; --region R (default us-east-1);\n"
	"--peer-ca FILE: PEM CA bundle https:// peers must chain to (default: system store).\n"
	"The data dir commands fail if a daemon holds DIR: use --url then.\n";

typedef struct repl_args {
	const char *peers[2];
	int npeers;
	const char *data, *url, *creds, *region, *bucket, *ca;
	int json, chunks, quiet, snapshot;
} repl_args;

static int repl_parse(int argc, char **argv, repl_args *a)
{
	memset(a, 0, sizeof(*a));
	for (int i = 2; i < argc; i++) {
		const char *s = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		const char **dst = !strcmp(s, "--data")		      ? &a->data
				   : !strcmp(s, "--url")	      ? &a->url
				   : !strcmp(s, "--peer-credentials") ? &a->creds
				   : !strcmp(s, "--region")	      ? &a->region
				   : !strcmp(s, "--peer-ca")	      ? &a->ca
				   : !strcmp(s, "--bucket")	      ? &a->bucket
								      : NULL;
		if (!strcmp(s, "--json")) {
			a->json = 1;
		} else if (!strcmp(s, "--chunks")) {
			a->chunks = 1;
		} else if (!strcmp(s, "--quiet")) {
			a->quiet = 1;
		} else if (!strcmp(s, "--snapshot")) {
			a->snapshot = 1;
		} else if (!strcmp(s, "--peer")) {
			if (!v || a->npeers == 2) {
				fprintf(stderr, "seglake repl: --peer needs a URL (at most two)\n");
				return -1;
			}
			a->peers[a->npeers++] = v;
			i++;
		} else if (dst) {
			if (!v) {
				fprintf(stderr, "seglake repl: %s needs a value\n", s);
				return -1;
			}
			*dst = v;
			i++;
		} else {
			fprintf(stderr, "seglake repl: unknown argument '%s'\n%s", s, repl_usage);
			return -1;
		}
	}
	if (!a->region)
		a->region = getenv("SEGLAKE_PEER_REGION");
	return 0;
}

/* Credentials for talking to peers (and to --url). */
typedef struct repl_cli_creds {
	char *ak, *sk;
	repl_creds cr;
} repl_cli_creds;

static int repl_cli_creds_load(const repl_args *a, repl_cli_creds *c)
{
	sl_err err = { 0 };
	memset(c, 0, sizeof(*c));
	if (repl_creds_load(a->creds, &c->ak, &c->sk, &err) < 0)
		return cli_fail("repl", &err);
	c->cr.access_key = c->ak;
	c->cr.secret_key = c->sk;
	c->cr.region = a->region;
	c->cr.ca_file = a->ca ? a->ca : getenv("SEGLAKE_PEER_CA");
	return 0;
}

static void repl_cli_creds_free(repl_cli_creds *c)
{
	if (c->sk)
		memset(c->sk, 0, strlen(c->sk));
	free(c->ak);
	free(c->sk);
}

static void repl_fmt_bytes(uint64_t b, char *out, size_t cap)
{
	const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)b;
	int i = 0;
	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	snprintf(out, cap, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

typedef struct repl_prog {
	const char *what;
	int tty;
	int64_t t0, last;
} repl_prog;

/* 1 when a progress line is due (a terminal, and 200 ms since the last). */
static int repl_prog_due(repl_prog *p, int64_t now)
{
	if (!p->tty || now - p->last < 200)
		return 0;
	p->last = now;
	return 1;
}

static void repl_progress(void *ctx, const repl_counters *c, int64_t pos, int64_t head)
{
	repl_prog *p = ctx;
	int64_t now = repl_now_ms();
	if (!repl_prog_due(p, now))
		return;
	char b[32];
	repl_fmt_bytes(c->chunk_bytes, b, sizeof(b));
	double s = (double)(now - p->t0) / 1000.0;
	fprintf(stderr,
		"\r%s: %" PRId64 "/%" PRId64 " entries, %" PRIu64 " applied, %" PRIu64 " chunks "
		"(%s) in "
		"%.1fs   ",
		p->what, pos, head, c->applied, c->chunks, b, s);
	fflush(stderr);
}

static void repl_print_counters(const char *what, const char *url, const repl_counters *c,
				int64_t ms)
{
	char b[32], w[32];
	repl_fmt_bytes(c->chunk_bytes, b, sizeof(b));
	repl_fmt_bytes(c->wire_in + c->wire_out, w, sizeof(w));
	printf("%s %s: %" PRIu64 " entries, %" PRIu64 " applied, %" PRIu64 " chunks (%s), %s on "
	       "the wire, %.2fs\n",
	       what, url, c->entries, c->applied, c->chunks, b, w, (double)ms / 1000.0);
}

static void repl_snap_progress(void *ctx, const repl_counters *c, int64_t done, int64_t total)
{
	repl_prog *p = ctx;
	int64_t now = repl_now_ms();
	if (!repl_prog_due(p, now))
		return;
	char b[32];
	repl_fmt_bytes(c->chunk_bytes, b, sizeof(b));
	fprintf(stderr,
		"\rsnapshot: %" PRId64 "/%" PRId64 " records, %" PRIu64 " chunks (%s) in %.1fs   ",
		done, total, c->chunks, b, (double)(now - p->t0) / 1000.0);
	fflush(stderr);
}

/* Bootstrap from the peer's snapshot, then the caller pulls what follows. */
static int repl_cmd_snapshot_force(core *c, const repl_args *a, const repl_cli_creds *cc,
				   repl_prog *p, sl_err *err)
{
	repl_round_opts o = { .progress = repl_snap_progress, .progress_ctx = p };
	repl_counters cnt = { 0 };
	int64_t seq = 0;
	int rc = repl_snapshot_bootstrap(c, a->peers[0], &cc->cr, &o, NULL, &cnt, &seq, err);
	if (p->tty && p->last)
		fputc('\n', stderr);
	p->last = 0;
	if (rc == 0) {
		char b[32];
		repl_fmt_bytes(cnt.chunk_bytes, b, sizeof(b));
		printf("snapshot %s: %" PRIu64 " records at oplog position %" PRId64 ", %" PRIu64
		       " chunks (%s), %.2fs\n",
		       a->peers[0], cnt.applied, seq, cnt.chunks, b,
		       (double)(repl_now_ms() - p->t0) / 1000.0);
		fflush(stdout);
	}
	return rc;
}

/* --snapshot, or a bootstrap that was cut in its snapshot: (re)start from
 * the peer's snapshot. Otherwise history first (see repl_cmd_round). */
static int repl_cmd_snapshot(core *c, const repl_args *a, const repl_cli_creds *cc, repl_prog *p,
			     sl_err *err)
{
	if (!a->snapshot && !core_snapshot_partial(c))
		return 0;
	return repl_cmd_snapshot_force(c, a, cc, p, err);
}

static int repl_cmd_round(const char *cmd, const repl_args *a)
{
	if (a->npeers != 1) {
		fprintf(stderr, "seglake repl %s: exactly one --peer URL is required\n", cmd);
		return 2;
	}
	int boot = strcmp(cmd, "bootstrap") == 0;
	const char *dir = cli_data_dir(a->data);
	repl_cli_creds cc;
	if (repl_cli_creds_load(a, &cc) != 0)
		return 1;
	sl_err err = { 0 };
	struct stat stt;
	if (boot && stat(dir, &stt) != 0) {
		if (core_init(dir, &err) < 0) {
			repl_cli_creds_free(&cc);
			return cli_fail("repl bootstrap", &err);
		}
		printf("initialised seglake data dir %s\n", dir);
	}
	core *c = NULL;
	if (core_open(dir, NULL, &c, &err) < 0) {
		repl_cli_creds_free(&cc);
		return cli_fail("repl", &err);
	}
	if (boot && core_oplog_head(c) != 0) {
		fprintf(stderr,
			"seglake repl bootstrap: %s is not empty (use `seglake repl pull`)\n", dir);
		core_close(c);
		repl_cli_creds_free(&cc);
		return 1;
	}
	repl_prog p = { .what = cmd, .tty = isatty(2) && !a->quiet, .t0 = repl_now_ms() };
	repl_round_opts o = { .progress = repl_progress, .progress_ctx = &p };
	repl_counters cnt = { 0 };
	int rc = 0;
	if (boot)
		rc = repl_cmd_snapshot(c, a, &cc, &p, &err);
	if (rc == 0)
		rc = strcmp(cmd, "push") == 0
			     ? repl_push_once(c, a->peers[0], &cc.cr, &o, &cnt, &err)
			     : repl_pull_once(c, a->peers[0], &cc.cr, &o, &cnt, &err);
	if (rc == SL_ENOTSUP && boot && core_oplog_head(c) == 0) {
		/* the peer trimmed its history: start from its snapshot */
		if (p.tty && p.last)
			fputc('\n', stderr);
		p.last = 0;
		rc = repl_cmd_snapshot_force(c, a, &cc, &p, &err);
		if (rc == 0)
			rc = repl_pull_once(c, a->peers[0], &cc.cr, &o, &cnt, &err);
	}
	if (p.tty && p.last)
		fputc('\n', stderr);
	core_close(c);
	repl_cli_creds_free(&cc);
	if (rc < 0)
		return cli_fail(cmd, &err);
	repl_print_counters(cmd, a->peers[0], &cnt, repl_now_ms() - p.t0);
	return 0;
}

/* ---- status / conflicts ---------------------------------------------------- */

static int repl_remote_json(const repl_args *a, const char *url, const char *path,
			    const char *query, json_t **out)
{
	repl_cli_creds cc;
	if (repl_cli_creds_load(a, &cc) != 0)
		return 1;
	repl_client cl;
	sl_err err = { 0 };
	int rc = repl_client_init(&cl, url, &cc.cr, &err);
	if (rc == 0) {
		rc = repl_call_json(&cl, "GET", path, query, NULL, 0, 120000L, out, &err);
		repl_client_clear(&cl);
	}
	repl_cli_creds_free(&cc);
	return rc < 0 ? cli_fail("repl", &err) : 0;
}

static void repl_print_status(json_t *j)
{
	printf("node %s: oplog head %" JSON_INTEGER_FORMAT ", horizon %" JSON_INTEGER_FORMAT "%s\n",
	       json_string_value(json_object_get(j, "node")),
	       json_integer_value(json_object_get(j, "head")),
	       json_integer_value(json_object_get(j, "horizon")),
	       json_is_true(json_object_get(j, "trim")) ? " (trimming)" : "");
	size_t i;
	json_t *w;
	json_array_foreach(json_object_get(j, "workers"), i, w)
	{
		char b[32];
		repl_fmt_bytes((uint64_t)json_integer_value(json_object_get(w, "backlog_bytes")), b,
			       sizeof(b));
		const char *le = json_string_value(json_object_get(w, "last_error"));
		printf("peer %s (node %s): watermark %" JSON_INTEGER_FORMAT " of "
		       "%" JSON_INTEGER_FORMAT ", lag %" JSON_INTEGER_FORMAT " entries / %.1fs, "
		       "backlog %s, %s%s%s\n",
		       json_string_value(json_object_get(w, "url")),
		       *json_string_value(json_object_get(w, "node"))
			       ? json_string_value(json_object_get(w, "node"))
			       : "?",
		       json_integer_value(json_object_get(w, "watermark")),
		       json_integer_value(json_object_get(w, "remote_head")),
		       json_integer_value(json_object_get(w, "lag_entries")),
		       json_real_value(json_object_get(w, "lag_seconds")), b,
		       json_is_true(json_object_get(w, "connected")) ? "connected"
								     : "not connected",
		       le && *le ? ", last error: " : "", le && *le ? le : "");
	}
	json_array_foreach(json_object_get(j, "inbound"), i, w)
		printf("applied from node %s: up to its seq %" JSON_INTEGER_FORMAT "\n",
		       json_string_value(json_object_get(w, "node")),
		       json_integer_value(json_object_get(w, "seq")));
	json_array_foreach(json_object_get(j, "acks"), i, w)
		printf("node %s has pulled everything up to seq %" JSON_INTEGER_FORMAT "\n",
		       json_string_value(json_object_get(w, "node")),
		       json_integer_value(json_object_get(w, "seq")));
}

static int repl_cmd_status(const repl_args *a)
{
	json_t *j = NULL;
	if (a->url) {
		int rc = repl_remote_json(a, a->url, "/v1/repl/status", NULL, &j);
		if (rc)
			return rc;
	} else {
		const char *dir = cli_data_dir(a->data);
		core *c = NULL;
		sl_err err = { 0 };
		if (core_open(dir, NULL, &c, &err) < 0)
			return cli_fail("repl status", &err);
		json_t *inbound = json_array();
		core_peer *p = NULL;
		size_t n = 0;
		if (core_peer_list(c, &p, &n, NULL) == 0) {
			for (size_t i = 0; i < n; i++)
				json_array_append_new(inbound,
						      json_pack("{sssI}", "node", p[i].peer, "seq",
								(json_int_t)p[i].seq));
			core_peers_free(p, n);
		}
		char ap[4200];
		snprintf(ap, sizeof(ap), "%s/repl-acks.json", dir);
		json_t *acks = json_array(), *af = json_load_file(ap, 0, NULL);
		const char *k;
		json_t *v;
		json_object_foreach(json_object_get(af, "acks"), k, v)
			json_array_append_new(acks, json_pack("{sssO}", "node", k, "seq", v));
		json_decref(af);
		j = json_pack("{sssIsIsosos[]}", "node", core_node_id(c), "head",
			      (json_int_t)core_oplog_head(c), "horizon",
			      (json_int_t)core_oplog_horizon(c), "inbound", inbound, "acks", acks,
			      "workers");
		core_close(c);
	}
	if (a->json) {
		char *s = json_dumps(j, JSON_INDENT(2));
		puts(s ? s : "{}");
		free(s);
	} else {
		repl_print_status(j);
	}
	json_decref(j);
	return 0;
}

static int repl_cmd_conflicts(const repl_args *a)
{
	json_t *j = NULL;
	if (a->url) {
		char q[300] = "";
		if (a->bucket) {
			char enc[200];
			if (sigv4_uri_encode(a->bucket, strlen(a->bucket), 0, enc, sizeof(enc)) <
			    0) {
				fprintf(stderr, "seglake repl conflicts: bucket name too long\n");
				return 2;
			}
			snprintf(q, sizeof(q), "bucket=%s", enc);
		}
		int rc = repl_remote_json(a, a->url, "/v1/repl/conflicts", q, &j);
		if (rc)
			return rc;
	} else {
		core *c = NULL;
		sl_err err = { 0 };
		if (core_open(cli_data_dir(a->data), NULL, &c, &err) < 0)
			return cli_fail("repl conflicts", &err);
		int rc = repl_state_conflicts(c, a->bucket, 0, &j, &err);
		core_close(c);
		if (rc < 0)
			return cli_fail("repl conflicts", &err);
	}
	if (a->json) {
		char *s = json_dumps(j, JSON_INDENT(2));
		puts(s ? s : "{}");
		free(s);
	} else {
		size_t i;
		json_t *v;
		json_t *arr = json_object_get(j, "conflicts");
		json_array_foreach(arr, i, v) printf("%s/%s version %s etag %s size "
						     "%" JSON_INTEGER_FORMAT " (written by node "
						     "%s)\n",
						     json_string_value(json_object_get(v, "bucke"
											  "t")),
						     json_string_value(json_object_get(v, "key")),
						     json_string_value(json_object_get(v, "vid")),
						     json_string_value(json_object_get(v, "etag")),
						     json_integer_value(json_object_get(v, "size")),
						     json_string_value(json_object_get(v, "node")));
		printf("%zu conflict version(s)\n", json_array_size(arr));
	}
	json_decref(j);
	return 0;
}

/* ---- validate ---------------------------------------------------------------- */

typedef struct repl_side {
	const char *name;
	core *c;	/* a data dir, or */
	repl_client cl; /* a peer */
	int remote;
} repl_side;

static int repl_side_buckets(repl_side *s, json_t **out, sl_err *err)
{
	if (!s->remote)
		return repl_state_buckets(s->c, out, err);
	return repl_call_json(&s->cl, "GET", "/v1/repl/state", NULL, NULL, 0, 120000L, out, err);
}

static int repl_side_page(repl_side *s, const char *bucket, const char *ak, const char *av,
			  int chunks, json_t **out, sl_err *err)
{
	if (!s->remote)
		return repl_state_versions(s->c, bucket, ak, av, 1000, chunks, out, err);
	char eb[200], ek[3200], ev[200], q[4000];
	if (sigv4_uri_encode(bucket, strlen(bucket), 0, eb, sizeof(eb)) < 0 ||
	    sigv4_uri_encode(ak ? ak : "", ak ? strlen(ak) : 0, 0, ek, sizeof(ek)) < 0 ||
	    sigv4_uri_encode(av ? av : "", av ? strlen(av) : 0, 0, ev, sizeof(ev)) < 0)
		return sl_err_set(err, SL_EINVAL, "key too long to list");
	/* canonical order */
	snprintf(q, sizeof(q), "after_key=%s&after_vid=%s&bucket=%s%s&max=1000", ek, ev, eb,
		 chunks ? "&chunks=" : "");
	return repl_call_json(&s->cl, "GET", "/v1/repl/state", q, NULL, 0, 120000L, out, err);
}

/* Every version of a bucket: object "key\nvid" -> row. */
static int repl_side_versions(repl_side *s, const char *bucket, int chunks, json_t **out,
			      sl_err *err)
{
	json_t *all = json_object();
	char *ak = NULL, *av = NULL;
	int rc = 0;
	for (;;) {
		json_t *pg;
		rc = repl_side_page(s, bucket, ak, av, chunks, &pg, err);
		if (rc < 0)
			break;
		size_t i;
		json_t *v;
		json_array_foreach(json_object_get(pg, "versions"), i, v)
		{
			const char *k = json_string_value(json_object_get(v, "key"));
			const char *id = json_string_value(json_object_get(v, "vid"));
			size_t n = strlen(k ? k : "") + strlen(id ? id : "") + 2;
			char *name = malloc(n);
			if (!name)
				continue;
			snprintf(name, n, "%s\n%s", k ? k : "", id ? id : "");
			json_object_set(all, name, v);
			free(name);
		}
		const char *nk = json_string_value(json_object_get(pg, "next_key"));
		const char *nv = json_string_value(json_object_get(pg, "next_vid"));
		free(ak);
		free(av);
		ak = nk ? strdup(nk) : NULL;
		av = nv ? strdup(nv) : NULL;
		json_decref(pg);
		if (!ak)
			break;
	}
	free(ak);
	free(av);
	if (rc < 0) {
		json_decref(all);
		return rc;
	}
	*out = all;
	return 0;
}

static void repl_row_desc(json_t *v, char *out, size_t cap)
{
	if (json_is_true(json_object_get(v, "dm")))
		snprintf(out, cap, "delete marker%s",
			 json_is_true(json_object_get(v, "latest")) ? ", latest" : "");
	else
		snprintf(out, cap, "etag %s, size %" JSON_INTEGER_FORMAT ", state %d%s",
			 json_string_value(json_object_get(v, "etag")),
			 json_integer_value(json_object_get(v, "size")),
			 (int)json_integer_value(json_object_get(v, "state")),
			 json_is_true(json_object_get(v, "latest")) ? ", latest" : "");
}

static long repl_compare_bucket(repl_side *s, const char *bucket, int chunks, long *nver,
				sl_err *err)
{
	json_t *va = NULL, *vb = NULL;
	int rc = repl_side_versions(&s[0], bucket, chunks, &va, err);
	if (rc == 0)
		rc = repl_side_versions(&s[1], bucket, chunks, &vb, err);
	if (rc < 0) {
		json_decref(va);
		return rc;
	}
	long diffs = 0;
	const char *k;
	json_t *a;
	static const char *const fields[] = { "etag", "size", "dm", "state", "latest", "chunks" };
	json_object_foreach(va, k, a)
	{
		(*nver)++;
		const char *nl = strchr(k, '\n');
		int kl = (int)(nl - k);
		json_t *b = json_object_get(vb, k);
		char da[200], db[200];
		repl_row_desc(a, da, sizeof(da));
		if (!b) {
			printf("only on %s: %s/%.*s version %s (%s)\n", s[0].name, bucket, kl, k,
			       nl + 1, da);
			diffs++;
			continue;
		}
		repl_row_desc(b, db, sizeof(db));
		for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
			if (!json_equal(json_object_get(a, fields[f]),
					json_object_get(b, fields[f])) &&
			    (json_object_get(a, fields[f]) || json_object_get(b, fields[f]))) {
				printf("differs: %s/%.*s version %s: %s: %s on %s, %s on %s\n",
				       bucket, kl, k, nl + 1, fields[f], da, s[0].name, db,
				       s[1].name);
				diffs++;
				break;
			}
		}
	}
	json_object_foreach(vb, k, a)
	{
		if (json_object_get(va, k))
			continue;
		const char *nl = strchr(k, '\n');
		char db[200];
		repl_row_desc(a, db, sizeof(db));
		printf("only on %s: %s/%.*s version %s (%s)\n", s[1].name, bucket, (int)(nl - k), k,
		       nl + 1, db);
		diffs++;
	}
	json_decref(va);
	json_decref(vb);
	return diffs;
}

static int repl_cmd_validate(const repl_args *a)
{
	if (a->npeers < 1 || (a->npeers == 1 && !a->data) || (a->npeers == 2 && a->data)) {
		fprintf(stderr, "seglake repl validate: give --peer URL and either a second --peer "
				"URL or --data DIR\n");
		return 2;
	}
	repl_cli_creds cc;
	if (repl_cli_creds_load(a, &cc) != 0)
		return 1;
	repl_side s[2];
	memset(s, 0, sizeof(s));
	sl_err err = { 0 };
	int rc = 0;
	for (int i = 0; i < 2 && rc == 0; i++) {
		if (i < a->npeers) {
			s[i].name = a->peers[i];
			s[i].remote = 1;
			rc = repl_client_init(&s[i].cl, a->peers[i], &cc.cr, &err);
		} else {
			s[i].name = a->data;
			rc = core_open(a->data, NULL, &s[i].c, &err);
		}
	}
	long diffs = 0, nver = 0, nb = 0;
	json_t *ba = NULL, *bb = NULL;
	if (rc == 0)
		rc = repl_side_buckets(&s[0], &ba, &err);
	if (rc == 0)
		rc = repl_side_buckets(&s[1], &bb, &err);
	if (rc == 0) {
		json_t *seen = json_object();
		for (int side = 0; side < 2 && rc == 0; side++) {
			json_t *mine = json_object_get(side ? bb : ba, "buckets");
			json_t *other = json_object_get(side ? ba : bb, "buckets");
			size_t i, j;
			json_t *x, *y;
			json_array_foreach(mine, i, x)
			{
				const char *name = json_string_value(json_object_get(x, "name"));
				if (json_object_get(seen, name))
					continue;
				json_object_set_new(seen, name, json_true());
				json_t *match = NULL;
				json_array_foreach(
					other, j,
					y) if (strcmp(json_string_value(json_object_get(y, "name")),
						      name) == 0) match = y;
				if (!match) {
					printf("bucket only on %s: %s\n", s[side].name, name);
					diffs++;
					continue;
				}
				nb++;
				if (!json_equal(json_object_get(x, "versioning"),
						json_object_get(match, "versioning"))) {
					printf("bucket %s: versioning differs\n", name);
					diffs++;
				}
				if (a->bucket && strcmp(a->bucket, name) != 0)
					continue;
				long d = repl_compare_bucket(s, name, a->chunks, &nver, &err);
				if (d < 0)
					rc = (int)d;
				else
					diffs += d;
			}
		}
		json_decref(seen);
	}
	json_decref(ba);
	json_decref(bb);
	for (int i = 0; i < 2; i++) {
		if (s[i].remote)
			repl_client_clear(&s[i].cl);
		core_close(s[i].c);
	}
	repl_cli_creds_free(&cc);
	if (rc < 0)
		return cli_fail("repl validate", &err);
	if (diffs) {
		printf("%ld difference(s) between %s and %s\n", diffs, s[0].name, s[1].name);
		return 1;
	}
	printf("no differences: %ld bucket(s), %ld version(s) compared%s\n", nb, nver,
	       a->chunks ? " (with chunk hashes)" : "");
	return 0;
}

int cli_repl(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help")) {
		fputs(repl_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	repl_args a;
	if (repl_parse(argc, argv, &a) != 0)
		return 2;
	const char *cmd = argv[1];
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int rc;
	if (!strcmp(cmd, "pull") || !strcmp(cmd, "push") || !strcmp(cmd, "bootstrap"))
		rc = repl_cmd_round(cmd, &a);
	else if (!strcmp(cmd, "status"))
		rc = repl_cmd_status(&a);
	else if (!strcmp(cmd, "conflicts"))
		rc = repl_cmd_conflicts(&a);
	else if (!strcmp(cmd, "validate"))
		rc = repl_cmd_validate(&a);
	else {
		fprintf(stderr, "seglake repl: unknown command '%s'\n%s", cmd, repl_usage);
		rc = 2;
	}
	curl_global_cleanup();
	return rc;
}
