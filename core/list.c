/*
 * list.c - ListObjects / ListObjectVersions over the index. Each step is an
 * indexed range scan starting at a cursor; a common prefix is skipped with a
 * single seek past every key that shares it, so cost follows what is
 * returned, not the size of the bucket.
 */
#include "core/core_internal.h"

#include <stdlib.h>
#include <string.h>

/* Smallest string greater than every string starting with p ("" if none). */
static char *prefix_end(const char *p)
{
	size_t n = strlen(p);
	char *e = strdup(p);
	if (!e)
		return NULL;
	while (n > 0) {
		unsigned char ch = (unsigned char)e[n - 1];
		if (ch < 0xff) {
			e[n - 1] = (char)(ch + 1);
			e[n] = '\0';
			return e;
		}
		n--;
	}
	e[0] = '\0';
	return e;
}

static int add_obj(core_list_result *r, size_t *cap)
{
	if (r->nobjs == *cap) {
		*cap = *cap ? *cap * 2 : 32;
		core_objinfo *p = realloc(r->objs, *cap * sizeof(*p));
		if (!p)
			return SL_ENOMEM;
		r->objs = p;
	}
	memset(&r->objs[r->nobjs], 0, sizeof(r->objs[0]));
	return 0;
}

static int add_prefix(core_list_result *r, size_t *cap, const char *p, size_t len)
{
	if (r->nprefixes == *cap) {
		*cap = *cap ? *cap * 2 : 32;
		char **np = realloc(r->prefixes, *cap * sizeof(*np));
		if (!np)
			return SL_ENOMEM;
		r->prefixes = np;
	}
	char *s = strndup(p, len);
	if (!s)
		return SL_ENOMEM;
	r->prefixes[r->nprefixes++] = s;
	return 0;
}

void core_list_result_clear(core_list_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nobjs; i++)
		core_objinfo_clear(&r->objs[i]);
	free(r->objs);
	for (size_t i = 0; i < r->nprefixes; i++)
		free(r->prefixes[i]);
	free(r->prefixes);
	free(r->next_marker);
	free(r->next_version_marker);
	memset(r, 0, sizeof(*r));
}

/*
 * One query per step: the next row at or after the cursor. The cursor is
 * (key, after_key_exclusive, version position); lo bounds from below
 * (inclusive), hi from above (exclusive, NULL = none).
 */
static const char *Q_CUR =
	"SELECT " CORE_VCOLS " FROM current c JOIN versions v ON v.id=c.vrow "
	"WHERE c.bucket=?1 AND c.key>?2 AND c.key>=?3 AND (?4 IS NULL OR c.key<?4) "
	"ORDER BY c.key LIMIT 1";
static const char *Q_VER_FIRST =
	"SELECT " CORE_VCOLS " FROM versions v WHERE v.bucket=?1 AND v.key>?2 AND v.key>=?3 "
	"AND (?4 IS NULL OR v.key<?4) AND v.state!=3 ORDER BY v.key, v.hlc DESC, v.node DESC LIMIT 1";
static const char *Q_VER_SAMEKEY =
	"SELECT " CORE_VCOLS " FROM versions v WHERE v.bucket=?1 AND v.key=?2 AND v.state!=3 "
	"AND (v.hlc<?3 OR (v.hlc=?3 AND v.node<?4)) ORDER BY v.hlc DESC, v.node DESC LIMIT 1";
static const char *Q_LATEST =
	"SELECT id FROM versions WHERE bucket=?1 AND key=?2 AND state IN (0,3) "
	"ORDER BY hlc DESC, node DESC LIMIT 1";

int core_list(core *c, const char *bucket, const core_list_opts *o, core_list_result *out,
	      sl_err *err)
{
	memset(out, 0, sizeof(*out));
	const char *prefix = o && o->prefix ? o->prefix : "";
	const char *delim = o && o->delimiter && *o->delimiter ? o->delimiter : NULL;
	int max = o ? o->max_keys : 1000;
	int versions = o && o->versions;
	if (max < 0)
		return sl_err_set(err, SL_EINVAL, "max-keys must not be negative");
	if (max > 1000)
		max = 1000;
	size_t plen = strlen(prefix), dlen = delim ? strlen(delim) : 0;
	char *hi = plen ? prefix_end(prefix) : NULL;
	if (plen && (!hi || !*hi)) {
		free(hi);
		hi = NULL;
	}
	meta_conn *r = meta_reader(c->md);
	int vers;
	int rc = core_bucket_versioning(r, bucket, &vers, err);
	size_t ocap = 0, pcap = 0;
	int count = 0;
	/* cursor: keys > after are next; in a versions listing, vkey/vhlc/vnode
	 * resume inside one key's versions */
	char *after = strdup(o && o->start_after ? o->start_after : "");
	char *lo = strdup(prefix);
	char *vkey = NULL, *vnode = NULL;
	int64_t vhlc = 0;
	if (rc == 0 && (!after || !lo))
		rc = sl_err_set(err, SL_ENOMEM, "out of memory");
	if (rc == 0 && delim && after && strlen(after) >= plen + dlen &&
	    strncmp(after, prefix, plen) == 0 && strstr(after + plen, delim) &&
	    strcmp(strstr(after + plen, delim) + dlen, "") == 0) {
		/* the marker is a common prefix returned by an earlier page: go past it */
		char *next = prefix_end(after);
		if (next && *next && strcmp(next, lo) > 0) {
			free(lo);
			lo = next;
		} else {
			free(next);
		}
	}
	if (rc == 0 && versions && o->version_marker && *o->version_marker && after && *after) {
		/* resume after that version of key `after` */
		core_objinfo vm = { 0 };
		if (core_find_version(r, bucket, after, o->version_marker, &vm, NULL, NULL, NULL) >
		    0) {
			vkey = strdup(after);
			vnode = strdup(vm.node);
			vhlc = (int64_t)vm.hlc;
		}
		core_objinfo_clear(&vm);
	}
	while (rc == 0) {
		sqlite3_stmt *st;
		if (vkey) {
			st = meta_stmt(r, Q_VER_SAMEKEY, err);
			if (!st) {
				rc = err->code;
				break;
			}
			sqlite3_bind_text(st, 1, bucket, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, vkey, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 3, vhlc);
			sqlite3_bind_text(st, 4, vnode, -1, SQLITE_STATIC);
		} else {
			st = meta_stmt(r, versions ? Q_VER_FIRST : Q_CUR, err);
			if (!st) {
				rc = err->code;
				break;
			}
			sqlite3_bind_text(st, 1, bucket, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, after, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 3, lo, -1, SQLITE_STATIC);
			if (hi)
				sqlite3_bind_text(st, 4, hi, -1, SQLITE_STATIC);
			else
				sqlite3_bind_null(st, 4);
		}
		int s = sqlite3_step(st);
		if (s == SQLITE_DONE) {
			sqlite3_reset(st);
			if (vkey) {
				/* that key's versions are done: continue after it */
				free(after);
				after = vkey;
				vkey = NULL;
				free(vnode);
				vnode = NULL;
				continue;
			}
			break;
		}
		if (s != SQLITE_ROW) {
			rc = meta_fail(r, "list", err);
			sqlite3_reset(st);
			break;
		}
		const char *key = (const char *)sqlite3_column_text(st, 2);
		/* a common prefix? */
		const char *d = delim ? strstr(key + plen, delim) : NULL;
		if (d && !vkey) {
			size_t cplen = (size_t)(d - key) + dlen;
			if (count >= max) {
				out->truncated = 1;
				sqlite3_reset(st);
				break;
			}
			if ((rc = add_prefix(out, &pcap, key, cplen)) < 0) {
				sl_err_set(err, rc, "out of memory");
				sqlite3_reset(st);
				break;
			}
			count++;
			sqlite3_reset(st);
			char *cp = out->prefixes[out->nprefixes - 1];
			char *next = prefix_end(cp);
			free(out->next_marker);
			out->next_marker = strdup(cp);
			if (!next || !*next) {
				free(next);
				break; /* nothing can sort after it */
			}
			free(lo);
			lo = next;
			continue;
		}
		if (count >= max) {
			out->truncated = 1;
			sqlite3_reset(st);
			break;
		}
		if ((rc = add_obj(out, &ocap)) < 0) {
			sl_err_set(err, rc, "out of memory");
			sqlite3_reset(st);
			break;
		}
		core_objinfo *oi = &out->objs[out->nobjs];
		int64_t id = sqlite3_column_int64(st, 0);
		rc = core_row_objinfo(st, 0, oi, NULL, NULL);
		sqlite3_reset(st);
		if (rc < 0) {
			sl_err_set(err, rc, "bad version row");
			break;
		}
		out->nobjs++;
		count++;
		if (versions) {
			sqlite3_stmt *lt = meta_stmt(r, Q_LATEST, err);
			if (!lt) {
				rc = err->code;
				break;
			}
			sqlite3_bind_text(lt, 1, bucket, -1, SQLITE_STATIC);
			sqlite3_bind_text(lt, 2, oi->key, -1, SQLITE_STATIC);
			oi->is_latest = sqlite3_step(lt) == SQLITE_ROW &&
					sqlite3_column_int64(lt, 0) == id;
			sqlite3_reset(lt);
			free(vkey);
			free(vnode);
			vkey = strdup(oi->key);
			vnode = strdup(oi->node);
			vhlc = (int64_t)oi->hlc;
			free(out->next_version_marker);
			out->next_version_marker = strdup(oi->version_id);
		} else {
			oi->is_latest = 1;
			free(after);
			after = strdup(oi->key);
		}
		free(out->next_marker);
		out->next_marker = strdup(oi->key);
	}
	meta_reader_release(c->md, r);
	free(after);
	free(lo);
	free(hi);
	free(vkey);
	free(vnode);
	if (rc < 0)
		core_list_result_clear(out);
	else if (!out->truncated) {
		free(out->next_marker);
		out->next_marker = NULL;
		free(out->next_version_marker);
		out->next_version_marker = NULL;
	}
	return rc;
}
