/*
 * exec.c - the admin/ops commands as JSON requests (see ops.h): argument
 * checking, calls into core/maint.h and auth/keys.h, and JSON results. The
 * same code runs in the CLI (direct mode) and in the daemon (admin socket).
 * Not here: sockets, terminal output.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "auth/policy.h"
#include "core/maint.h"
#include "ops/metrics.h"
#include "ops/ops.h"

typedef struct exec_progress {
	ops_emit_fn emit;
	void *ctx;
	int64_t last_ms;
	char last_phase[32];
	int stop;
} exec_progress;

static int64_t exec_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* core_progress_fn: forwards at most ~5 messages a second (and every phase
 * change), returns the emitter's stop request. */
static int exec_on_progress(void *ctx, const char *phase, uint64_t done, uint64_t total)
{
	exec_progress *p = ctx;
	if (!p->emit)
		return 0;
	int64_t now = exec_now_ms();
	int changed = strncmp(p->last_phase, phase, sizeof(p->last_phase) - 1) != 0;
	if (!changed && now - p->last_ms < 200 && !(total && done >= total))
		return p->stop;
	p->last_ms = now;
	snprintf(p->last_phase, sizeof(p->last_phase), "%s", phase);
	json_t *m = json_pack("{s{sssIsI}}", "progress", "phase", phase, "done", (json_int_t)done,
			      "total", (json_int_t)total);
	if (m) {
		if (p->emit(p->ctx, m))
			p->stop = 1;
		json_decref(m);
	}
	return p->stop;
}

int64_t ops_gc_keep_after(core *c)
{
	int64_t keep = core_oplog_head(c);
	char path[4200];
	snprintf(path, sizeof(path), "%s/repl-acks.json", core_dir(c));
	json_t *j = json_load_file(path, 0, NULL);
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(j, "acks"), k, v)
	{
		if (json_is_integer(v) && json_integer_value(v) < keep)
			keep = json_integer_value(v);
	}
	json_decref(j);
	return keep;
}

static const char *arg_str(json_t *args, const char *name)
{
	return json_string_value(json_object_get(args, name));
}

static json_t *exec_key_json(const keys_info *ki)
{
	json_t *o = json_pack("{sssssbsbsIsI}", "id", ki->id, "name", ki->name, "enabled",
			      ki->enabled, "root", ki->root, "created_ms",
			      (json_int_t)ki->created_ms, "updated_ms", (json_int_t)ki->updated_ms);
	if (o)
		json_object_set_new(o, "policy",
				    ki->policy ? json_string(ki->policy) : json_null());
	return o;
}

/* ---- commands ----------------------------------------------------------------- */

static int exec_status(const ops_env *env, json_t **out, sl_err *err)
{
	core_stats st;
	int rc = core_stats_get(env->c, &st, err);
	if (rc < 0)
		return rc;
	core_gc_report gr;
	memset(&gr, 0, sizeof(gr));
	rc = core_gc(env->c, 1, 0.3, 0, ops_gc_keep_after(env->c), &gr, NULL, NULL, err);
	if (rc < 0)
		return rc;
	int64_t head = core_oplog_head(env->c), horizon = core_oplog_horizon(env->c);
	json_t *peers = json_array();
	core_peer *p = NULL;
	size_t n = 0;
	if (core_peer_list(env->c, &p, &n, NULL) == 0) {
		for (size_t i = 0; i < n; i++)
			json_array_append_new(peers, json_pack("{sssIsI}", "peer", p[i].peer, "seq",
							       (json_int_t)p[i].seq, "updated_ms",
							       (json_int_t)p[i].updated_ms));
		core_peers_free(p, n);
	}
	*out = json_pack("{sssIsIsIsIsIsIsIsIsIsIsIsIsIsbso}", "node", core_node_id(env->c),
			 "buckets", (json_int_t)st.buckets, "objects", (json_int_t)st.objects,
			 "versions", (json_int_t)st.versions, "bytes", (json_int_t)st.bytes_logical,
			 "chunks", (json_int_t)st.chunks, "bytes_stored",
			 (json_int_t)st.bytes_stored, "segments", (json_int_t)st.segments,
			 "segment_bytes", (json_int_t)st.segment_bytes, "dead_bytes",
			 (json_int_t)gr.dead_bytes, "reclaimable_bytes",
			 (json_int_t)gr.reclaim_bytes, "oplog_head", (json_int_t)head,
			 "oplog_horizon", (json_int_t)horizon, "oplog_entries",
			 (json_int_t)(head - horizon), "maintenance", core_maintenance(env->c) != 0,
			 "peers", peers);
	return *out ? 0 : sl_err_set(err, SL_ENOMEM, "out of memory");
}

/* Versions that use a chunk scrub recorded as damaged (core_fsck checks
 * metadata against segments but does not re-read data). Public API only:
 * every version of every bucket, its chunk list, core_chunk_damaged. */
static int exec_scrub_damage(const ops_env *env, exec_progress *pr, uint64_t *nver, char *first,
			     size_t cap, sl_err *err)
{
	core_bucket *bk = NULL;
	size_t nb = 0;
	int rc = core_bucket_list(env->c, &bk, &nb, err);
	for (size_t b = 0; rc == 0 && b < nb && !pr->stop; b++) {
		char *after = NULL, *vafter = NULL;
		for (;;) {
			core_list_opts lo = { .start_after = after,
					      .version_marker = vafter,
					      .max_keys = 1000,
					      .versions = 1 };
			core_list_result lr;
			memset(&lr, 0, sizeof(lr));
			if ((rc = core_list(env->c, bk[b].name, &lo, &lr, err)) < 0)
				break;
			for (size_t i = 0; i < lr.nobjs; i++) {
				core_objinfo *o = &lr.objs[i];
				core_chunkref *ch = NULL;
				size_t n = 0;
				core_objinfo info;
				memset(&info, 0, sizeof(info));
				if (o->delete_marker ||
				    core_get_chunks(env->c, o->bucket, o->key, o->version_id, &info,
						    &ch, &n, NULL) != 0)
					continue;
				int bad = 0;
				for (size_t k = 0; k < n && !bad; k++)
					bad = core_chunk_damaged(env->c, ch[k].hash);
				if (bad && (*nver)++ == 0)
					snprintf(first, cap,
						 "%s/%s (version %s) uses a chunk scrub found "
						 "damaged",
						 o->bucket, o->key, o->version_id);
				free(ch);
				core_objinfo_clear(&info);
			}
			free(after);
			free(vafter);
			after = lr.truncated && lr.next_marker ? strdup(lr.next_marker) : NULL;
			vafter = lr.truncated && lr.next_version_marker
					 ? strdup(lr.next_version_marker)
					 : NULL;
			int more = lr.truncated && after;
			core_list_result_clear(&lr);
			if (!more || exec_on_progress(pr, "damage", b, nb))
				break;
		}
		free(after);
		free(vafter);
	}
	free(bk);
	return rc;
}

static int exec_fsck(const ops_env *env, exec_progress *pr, json_t **out, sl_err *err)
{
	core_fsck_report r;
	memset(&r, 0, sizeof(r));
	int rc = core_fsck(env->c, &r, exec_on_progress, pr, err);
	if (rc < 0)
		return rc;
	uint64_t scrub_damaged = 0;
	char first_damaged[512] = "";
	if (!pr->stop && (rc = exec_scrub_damage(env, pr, &scrub_damaged, first_damaged,
						 sizeof(first_damaged), err)) < 0)
		return rc;
	r.damaged_versions += scrub_damaged;
	if (!r.first_problem[0] && first_damaged[0])
		snprintf(r.first_problem, sizeof(r.first_problem), "%s", first_damaged);
	if (env->metrics)
		ops_metrics_fsck(env->metrics, &r);
	uint64_t problems = r.missing_chunks + r.damaged_versions + r.bad_locations +
			    r.size_mismatches + r.missing_segments;
	json_error_t je;
	*out = json_pack_ex(&je, 0, "{sIsIsIsIsIsIsIsIsIsIsIsIsssb}", "versions",
			    (json_int_t)r.versions, "chunk_refs", (json_int_t)r.chunk_refs,
			    "chunks", (json_int_t)r.chunks, "segments", (json_int_t)r.segments,
			    "missing_chunks", (json_int_t)r.missing_chunks, "damaged_versions",
			    (json_int_t)r.damaged_versions, "bad_locations",
			    (json_int_t)r.bad_locations, "orphan_chunks",
			    (json_int_t)r.orphan_chunks, "orphan_bytes", (json_int_t)r.orphan_bytes,
			    "size_mismatches", (json_int_t)r.size_mismatches, "missing_segments",
			    (json_int_t)r.missing_segments, "problems", (json_int_t)problems,
			    "first_problem", r.first_problem, "stopped", pr->stop);
	return *out ? 0 : sl_err_set(err, SL_EINTERNAL, "fsck report: %s", je.text);
}

static int exec_scrub(const ops_env *env, json_t *args, exec_progress *pr, json_t **out,
		      sl_err *err)
{
	json_t *rate = json_object_get(args, "rate");
	if (rate && (!json_is_integer(rate) || json_integer_value(rate) < 0))
		return sl_err_set(err, SL_EINVAL, "rate must be a non-negative number of bytes/s");
	core_scrub_report r;
	memset(&r, 0, sizeof(r));
	int rc = core_scrub(env->c, rate ? (uint64_t)json_integer_value(rate) : 0, &r,
			    exec_on_progress, pr, err);
	if (rc < 0)
		return rc;
	if (env->metrics)
		ops_metrics_scrub(env->metrics, &r);
	*out = json_pack("{sIsIsIsIsbss}", "chunks", (json_int_t)r.chunks, "bytes",
			 (json_int_t)r.bytes, "damaged", (json_int_t)r.damaged, "damaged_versions",
			 (json_int_t)r.damaged_versions, "stopped", r.stopped, "first_damaged",
			 r.first_damaged);
	return *out ? 0 : sl_err_set(err, SL_ENOMEM, "out of memory");
}

static int exec_gc(const ops_env *env, json_t *args, exec_progress *pr, json_t **out, sl_err *err)
{
	int dry = json_is_true(json_object_get(args, "dry_run"));
	double ratio = 0.3;
	json_t *mr = json_object_get(args, "min_dead");
	if (mr) {
		if (!json_is_number(mr) || json_number_value(mr) < 0 || json_number_value(mr) > 1)
			return sl_err_set(err, SL_EINVAL,
					  "min-dead must be a ratio between 0 and 1");
		ratio = json_number_value(mr);
	}
	json_t *rate = json_object_get(args, "rate");
	if (rate && (!json_is_integer(rate) || json_integer_value(rate) < 0))
		return sl_err_set(err, SL_EINVAL, "rate must be a non-negative number of bytes/s");
	int64_t keep = ops_gc_keep_after(env->c);
	core_gc_report r;
	memset(&r, 0, sizeof(r));
	int rc = core_gc(env->c, dry, ratio, rate ? (uint64_t)json_integer_value(rate) : 0, keep,
			 &r, exec_on_progress, pr, err);
	if (rc < 0)
		return rc;
	if (env->metrics)
		ops_metrics_gc(env->metrics, &r, dry);
	*out = json_pack("{sbsfsIsIsIsIsIsIsIsIsIsIsb}", "dry_run", dry, "min_dead", ratio,
			 "keep_oplog_after", (json_int_t)keep, "segments", (json_int_t)r.segments,
			 "segment_bytes", (json_int_t)r.segment_bytes, "live_bytes",
			 (json_int_t)r.live_bytes, "dead_bytes", (json_int_t)r.dead_bytes,
			 "reclaim_segments", (json_int_t)r.reclaim_segments, "reclaim_bytes",
			 (json_int_t)r.reclaim_bytes, "moved_chunks", (json_int_t)r.moved_chunks,
			 "moved_bytes", (json_int_t)r.moved_bytes, "deleted_segments",
			 (json_int_t)r.deleted_segments, "stopped", r.stopped);
	return *out ? 0 : sl_err_set(err, SL_ENOMEM, "out of memory");
}

static int exec_mpu_gc(const ops_env *env, json_t *args, json_t **out, sl_err *err)
{
	json_t *age = json_object_get(args, "older_than_ms");
	if (!json_is_integer(age) || json_integer_value(age) < 0)
		return sl_err_set(err, SL_EINVAL, "older-than must be a non-negative duration");
	uint64_t aborted = 0;
	int rc = core_mpu_gc(env->c, json_integer_value(age), &aborted, err);
	if (rc < 0)
		return rc;
	*out = json_pack("{sIsI}", "aborted", (json_int_t)aborted, "older_than_ms",
			 json_integer_value(age));
	return *out ? 0 : sl_err_set(err, SL_ENOMEM, "out of memory");
}

static int exec_snapshot(const ops_env *env, json_t *args, exec_progress *pr, json_t **out,
			 sl_err *err)
{
	const char *dest = arg_str(args, "dest");
	if (!dest || dest[0] != '/')
		return sl_err_set(err, SL_EINVAL, "snapshot needs an absolute destination path");
	int rc = core_snapshot(env->c, dest, exec_on_progress, pr, err);
	if (rc < 0)
		return rc;
	if (pr->stop)
		return sl_err_set(err, SL_EINTERNAL, "snapshot interrupted; %s is incomplete",
				  dest);
	/* The key table is in the snapshot's meta.db, sealed: the master key
	 * goes along so a restore can use it (see docs/operations.md). */
	int mk = keys_master_copy(core_dir(env->c), dest, err);
	if (mk < 0)
		return mk;
	core_stats st;
	memset(&st, 0, sizeof(st));
	core_stats_get(env->c, &st, NULL);
	*out = json_pack("{sssIsIsb}", "dest", dest, "segments", (json_int_t)st.segments,
			 "oplog_head", (json_int_t)core_oplog_head(env->c), "master_key", mk == 0);
	return *out ? 0 : sl_err_set(err, SL_ENOMEM, "out of memory");
}

static int exec_maintenance(const ops_env *env, json_t *args, json_t **out, sl_err *err)
{
	json_t *on = json_object_get(args, "on");
	if (on && !json_is_boolean(on))
		return sl_err_set(err, SL_EINVAL, "maintenance takes on or off");
	if (on)
		core_set_maintenance(env->c, json_is_true(on));
	*out = json_pack("{sb}", "maintenance", core_maintenance(env->c) != 0);
	return *out ? 0 : sl_err_set(err, SL_ENOMEM, "out of memory");
}

static int exec_key(const ops_env *env, const char *sub, json_t *args, json_t **out, sl_err *err)
{
	if (!env->k)
		return sl_err_set(err, SL_ENOTSUP, "no key store");
	const char *id = arg_str(args, "id");
	int rc = 0;
	keys_info ki;
	memset(&ki, 0, sizeof(ki));
	char secret[KEYS_SECRET_MAX + 1] = "";
	if (strcmp(sub, "list") == 0) {
		keys_info *v = NULL;
		size_t n = 0;
		if ((rc = keys_list(env->k, &v, &n, err)) < 0)
			return rc;
		json_t *arr = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(arr, exec_key_json(&v[i]));
		keys_list_free(v, n);
		*out = json_pack("{so}", "keys", arr);
		return *out ? 0 : sl_err_set(err, SL_ENOMEM, "out of memory");
	}
	if (strcmp(sub, "create") == 0) {
		json_t *pol = json_object_get(args, "policy");
		if (pol && !json_is_string(pol) && !json_is_null(pol))
			return sl_err_set(err, SL_EINVAL,
					  "policy must be a JSON document as a string");
		rc = keys_create(env->k, arg_str(args, "name"), json_string_value(pol),
				 json_is_true(json_object_get(args, "root")), &ki, secret, err);
		if (rc < 0)
			return rc;
		*out = exec_key_json(&ki);
		json_object_set_new(*out, "secret", json_string(secret));
		OPENSSL_cleanse(secret, sizeof(secret));
		keys_info_clear(&ki);
		return 0;
	}
	if (!id || !*id)
		return sl_err_set(err, SL_EINVAL, "key %s needs a key id", sub);
	if (strcmp(sub, "show") == 0) {
		rc = keys_get(env->k, id, &ki, err);
	} else if (strcmp(sub, "enable") == 0 || strcmp(sub, "disable") == 0) {
		rc = keys_set_enabled(env->k, id, strcmp(sub, "enable") == 0, err);
		if (rc == 0)
			rc = keys_get(env->k, id, &ki, err);
	} else if (strcmp(sub, "policy") == 0) {
		json_t *pol = json_object_get(args, "policy");
		if (!pol || (!json_is_string(pol) && !json_is_null(pol)))
			return sl_err_set(err, SL_EINVAL,
					  "key policy needs a policy document or null");
		rc = keys_set_policy(env->k, id, json_string_value(pol), err);
		if (rc == 0)
			rc = keys_get(env->k, id, &ki, err);
	} else if (strcmp(sub, "delete") == 0) {
		if ((rc = keys_delete(env->k, id, err)) < 0)
			return rc;
		*out = json_pack("{sssb}", "id", id, "deleted", 1);
		return 0;
	} else if (strcmp(sub, "rotate") == 0) {
		if ((rc = keys_rotate(env->k, id, secret, err)) < 0)
			return rc;
		rc = keys_get(env->k, id, &ki, err);
		if (rc == 0) {
			*out = exec_key_json(&ki);
			json_object_set_new(*out, "secret", json_string(secret));
		}
		OPENSSL_cleanse(secret, sizeof(secret));
		keys_info_clear(&ki);
		return rc;
	} else {
		return sl_err_set(err, SL_EINVAL, "unknown key command '%s'", sub);
	}
	if (rc < 0)
		return rc;
	*out = exec_key_json(&ki);
	keys_info_clear(&ki);
	return 0;
}

int ops_exec(const ops_env *env, json_t *req, ops_emit_fn emit, void *ctx, json_t **result,
	     sl_err *err)
{
	*result = NULL;
	const char *cmd = json_string_value(json_object_get(req, "cmd"));
	json_t *args = json_object_get(req, "args");
	if (!cmd)
		return sl_err_set(err, SL_EINVAL, "request without cmd");
	if (args && !json_is_object(args))
		return sl_err_set(err, SL_EINVAL, "args must be an object");
	exec_progress pr = { .emit = emit, .ctx = ctx };
	if (strcmp(cmd, "ping") == 0) {
		*result = json_pack("{sisssb}", "pid", (int)getpid(), "node", core_node_id(env->c),
				    "maintenance", core_maintenance(env->c) != 0);
		return 0;
	}
	if (strcmp(cmd, "status") == 0)
		return exec_status(env, result, err);
	if (strcmp(cmd, "fsck") == 0)
		return exec_fsck(env, &pr, result, err);
	if (strcmp(cmd, "scrub") == 0)
		return exec_scrub(env, args, &pr, result, err);
	if (strcmp(cmd, "gc") == 0)
		return exec_gc(env, args, &pr, result, err);
	if (strcmp(cmd, "mpu-gc") == 0)
		return exec_mpu_gc(env, args, result, err);
	if (strcmp(cmd, "snapshot") == 0)
		return exec_snapshot(env, args, &pr, result, err);
	if (strcmp(cmd, "maintenance") == 0)
		return exec_maintenance(env, args, result, err);
	if (strncmp(cmd, "key-", 4) == 0)
		return exec_key(env, cmd + 4, args, result, err);
	return sl_err_set(err, SL_EINVAL, "unknown admin command '%s'", cmd);
}
