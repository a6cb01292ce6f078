/*
 * state.c - a host's current state as JSON pages: buckets, every version of
 * a bucket (key, version id, ETag, size, delete marker, state, latest, and
 * optionally chunk hashes), conflict versions. Served by /v1/repl/state and
 * /v1/repl/conflicts and built locally from a data dir by the CLI, so
 * `seglake repl validate` compares two hosts through the same code. Not here:
 * the comparison itself (cli/repl.c).
 */
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "repl/repl_int.h"

int repl_state_buckets(core *c, json_t **out, sl_err *err)
{
	core_bucket *b = NULL;
	size_t n = 0;
	int rc = core_bucket_list(c, &b, &n, err);
	if (rc < 0)
		return rc;
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, json_pack("{sssi}", "name", b[i].name, "versioning",
						     b[i].versioning));
	free(b);
	*out = json_pack("{so}", "buckets", arr);
	return *out ? 0 : sl_err_set(err, SL_ENOMEM, "out of memory");
}

static json_t *repl_chunks_json(core *c, const char *bucket, const core_objinfo *oi)
{
	core_objinfo info = { 0 };
	core_chunkref *ch = NULL;
	size_t n = 0;
	json_t *arr = json_array();
	if (core_get_chunks(c, bucket, oi->key, oi->version_id, &info, &ch, &n, NULL) == 0) {
		for (size_t i = 0; i < n; i++) {
			char hx[65];
			sl_hex(ch[i].hash, 32, hx);
			json_array_append_new(arr, json_string(hx));
		}
	}
	core_objinfo_clear(&info);
	free(ch);
	return arr;
}

int repl_state_versions(core *c, const char *bucket, const char *after_key, const char *after_vid,
			int max, int chunks, json_t **out, sl_err *err)
{
	core_list_opts lo = { .versions = 1,
			      .max_keys = max > 0 && max <= 1000 ? max : 1000,
			      .start_after = after_key && *after_key ? after_key : NULL,
			      .version_marker = after_vid && *after_vid ? after_vid : NULL };
	core_list_result r;
	int rc = core_list(c, bucket, &lo, &r, err);
	if (rc < 0)
		return rc;
	json_t *arr = json_array();
	for (size_t i = 0; i < r.nobjs; i++) {
		const core_objinfo *o = &r.objs[i];
		json_t *v = json_pack("{sssssssIsbsisb}", "key", o->key, "vid", o->version_id,
				      "etag", o->etag, "size", (json_int_t)o->size, "dm",
				      o->delete_marker, "state", o->state, "latest", o->is_latest);
		if (v && chunks && !o->delete_marker)
			json_object_set_new(v, "chunks", repl_chunks_json(c, bucket, o));
		json_array_append_new(arr, v);
	}
	*out = json_pack("{so}", "versions", arr);
	if (*out && r.truncated && r.nobjs > 0) {
		json_object_set_new(*out, "next_key", json_string(r.objs[r.nobjs - 1].key));
		json_object_set_new(*out, "next_vid", json_string(r.objs[r.nobjs - 1].version_id));
	}
	core_list_result_clear(&r);
	return *out ? 0 : sl_err_set(err, SL_ENOMEM, "out of memory");
}

int repl_state_conflicts(core *c, const char *bucket, int max, json_t **out, sl_err *err)
{
	json_t *arr = json_array();
	char *ab = NULL, *ak = NULL;
	int rc = 0;
	int left = max > 0 ? max : 100000;
	while (left > 0) {
		core_objinfo *cf = NULL;
		size_t n = 0;
		rc = core_conflicts(c, bucket && *bucket ? bucket : NULL, ab, ak,
				    left < 1000 ? left : 1000, &cf, &n, err);
		if (rc < 0)
			break;
		for (size_t i = 0; i < n; i++) {
			json_array_append_new(
				arr, json_pack("{sssssssssIsIsssI}", "bucket", cf[i].bucket, "key",
					       cf[i].key, "vid", cf[i].version_id, "etag",
					       cf[i].etag, "size", (json_int_t)cf[i].size, "hlc",
					       (json_int_t)cf[i].hlc, "node", cf[i].node,
					       "mtime_ms", (json_int_t)cf[i].mtime_ms));
		}
		if (n > 0) {
			free(ab);
			free(ak);
			ab = strdup(cf[n - 1].bucket);
			ak = strdup(cf[n - 1].key);
		}
		for (size_t i = 0; i < n; i++)
			core_objinfo_clear(&cf[i]);
		free(cf);
		left -= (int)n;
		if (n < 1000 || !ab || !ak)
			break;
	}
	free(ab);
	free(ak);
	if (rc < 0) {
		json_decref(arr);
		return rc;
	}
	*out = json_pack("{so}", "conflicts", arr);
	return *out ? 0 : sl_err_set(err, SL_ENOMEM, "out of memory");
}
