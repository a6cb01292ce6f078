/*
 * list.c - ListObjects / ListObjectVersions over the index. Each step is an
 * indexed range scan starting at a cursor; a common prefix is skipped with a
 * single seek past every key that shares it, so cost follows what is
 * returned, not the size of the bucket. Also core_name_stat: the point
 * lookups the FUSE front end resolves a name with.
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
 * One seek per step: the next row at or after the cursor; rows of objects
 * that follow one another are read by stepping on (no new seek), a common
 * prefix ends the run with a seek past it. The cursor is
 * (lower bound inclusive, version position); hi bounds from above
 * (exclusive). Both bounds are plain comparisons on the key so that SQLite
 * seeks to the lower one and stops at the upper one: a combined bound
 * ("key>?2 AND key>=?3", "?4 IS NULL OR key<?4") makes it pick one bound and
 * scan and filter the rest, which costs the size of the bucket, not of the
 * answer. "key > after" is written "key >= after || 0x01" (keys hold no NUL).
 */
static const char *Q_CUR = "SELECT " CORE_VCOLS " FROM current c JOIN versions v ON v.id=c.vrow "
			   "WHERE c.bucket=?1 AND c.key>=?2 AND c.key<?3 ORDER BY c.key";
static const char *Q_CUR_OPEN = "SELECT " CORE_VCOLS " FROM current c JOIN versions v ON "
				"v.id=c.vrow "
				"WHERE c.bucket=?1 AND c.key>=?2 ORDER BY c.key";
static const char *Q_VER_FIRST = "SELECT " CORE_VCOLS " FROM versions v WHERE v.bucket=?1 AND "
				 "v.key>=?2 AND v.key<?3 "
				 "AND v.state!=3 ORDER BY v.key, v.hlc DESC, v.node DESC LIMIT 1";
static const char *Q_VER_FIRST_OPEN = "SELECT " CORE_VCOLS " FROM versions v WHERE v.bucket=?1 AND "
				      "v.key>=?2 "
				      "AND v.state!=3 ORDER BY v.key, v.hlc DESC, v.node DESC "
				      "LIMIT 1";
static const char *Q_VER_SAMEKEY = "SELECT " CORE_VCOLS " FROM versions v WHERE v.bucket=?1 AND "
				   "v.key=?2 AND v.state!=3 "
				   "AND (v.hlc<?3 OR (v.hlc=?3 AND v.node<?4)) ORDER BY v.hlc "
				   "DESC, v.node DESC LIMIT 1";
static const char *Q_LATEST = "SELECT id FROM versions WHERE bucket=?1 AND key=?2 AND state IN "
			      "(0,3) "
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
	if (plen && !hi)
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	if (hi && !*hi) {
		free(hi); /* a prefix of 0xff bytes: no upper bound */
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
	char *bound = NULL; /* the current step's lower bound (after + 0x01) */
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
	sqlite3_stmt *run = NULL; /* positioned on the previous object: step on */
	while (rc == 0) {
		sqlite3_stmt *st;
		if (run) {
			st = run;
			run = NULL;
		} else if (vkey) {
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
			/* lower bound: the greater of lo and the smallest key after `after` */
			size_t al = strlen(after);
			free(bound);
			bound = malloc(al + 2);
			if (!bound) {
				rc = sl_err_set(err, SL_ENOMEM, "out of memory");
				break;
			}
			memcpy(bound, after, al);
			bound[al] = '\x01';
			bound[al + 1] = '\0';
			const char *from = strcmp(bound, lo) > 0 ? bound : lo;
			if (hi)
				st = meta_stmt(r, versions ? Q_VER_FIRST : Q_CUR, err);
			else
				st = meta_stmt(r, versions ? Q_VER_FIRST_OPEN : Q_CUR_OPEN, err);
			if (!st) {
				rc = err->code;
				break;
			}
			sqlite3_bind_text(st, 1, bucket, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, from, -1, SQLITE_STATIC);
			if (hi)
				sqlite3_bind_text(st, 3, hi, -1, SQLITE_STATIC);
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
		if (rc < 0 || versions)
			sqlite3_reset(st);
		else
			run = st; /* the next row is the next key: no new seek */
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
			if (!after) {
				rc = sl_err_set(err, SL_ENOMEM, "out of memory");
				break;
			}
		}
		free(out->next_marker);
		out->next_marker = strdup(oi->key);
	}
	if (run)
		sqlite3_reset(run);
	meta_reader_release(c->md, r);
	free(after);
	free(bound);
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

static const char *Q_NAME_FILE = "SELECT " CORE_VCOLS " FROM current c JOIN versions v "
				 "ON v.id=c.vrow WHERE c.bucket=?1 AND c.key=?2";

void core_name_info_clear(core_name_info *ni)
{
	if (!ni)
		return;
	core_objinfo_clear(&ni->file);
	core_objinfo_clear(&ni->marker);
	memset(ni, 0, sizeof(*ni));
}

int core_name_stat(core *c, const char *bucket, const char *key, int want, core_name_info *out,
		   sl_err *err)
{
	memset(out, 0, sizeof(*out));
	size_t kl = strlen(key);
	if (kl == 0 || kl + 1 > CORE_MAX_KEY)
		return sl_err_set(err, SL_EINVAL, "bad name length");
	/* "key/" .. "key0": '0' is the byte after '/', so the range holds
	 * exactly the keys starting with "key/" */
	char *lo = malloc(kl + 2), *hi = malloc(kl + 2);
	if (!lo || !hi) {
		free(lo);
		free(hi);
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	}
	memcpy(lo, key, kl);
	memcpy(hi, key, kl);
	lo[kl] = '/';
	hi[kl] = '/' + 1;
	lo[kl + 1] = hi[kl + 1] = '\0';
	meta_conn *r = meta_reader(c->md);
	int vers;
	int rc = core_bucket_versioning(r, bucket, &vers, err);
	if (rc == 0 && (want & CORE_NAME_FILE)) {
		sqlite3_stmt *st = meta_stmt(r, Q_NAME_FILE, err);
		if (!st) {
			rc = err->code;
		} else {
			sqlite3_bind_text(st, 1, bucket, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, key, (int)kl, SQLITE_STATIC);
			int s = sqlite3_step(st);
			if (s == SQLITE_ROW) {
				rc = core_row_objinfo(st, 0, &out->file, NULL, NULL);
				out->is_file = rc == 0;
				out->file.is_latest = 1;
			} else if (s != SQLITE_DONE) {
				rc = meta_fail(r, "name lookup", err);
			}
			sqlite3_reset(st);
		}
	}
	if (rc == 0 && (want & CORE_NAME_DIR)) {
		sqlite3_stmt *st = meta_stmt(r, Q_CUR, err); /* the first key under "key/" */
		if (!st) {
			rc = err->code;
		} else {
			sqlite3_bind_text(st, 1, bucket, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, lo, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 3, hi, -1, SQLITE_STATIC);
			int s = sqlite3_step(st);
			if (s == SQLITE_ROW) {
				out->is_dir = 1;
				const char *k = (const char *)sqlite3_column_text(st, 2);
				if (k && strcmp(k, lo) == 0) {
					rc = core_row_objinfo(st, 0, &out->marker, NULL, NULL);
					out->has_marker = rc == 0;
					out->marker.is_latest = 1;
				}
			} else if (s != SQLITE_DONE) {
				rc = meta_fail(r, "name lookup", err);
			}
			sqlite3_reset(st);
		}
	}
	meta_reader_release(c->md, r);
	free(lo);
	free(hi);
	if (rc < 0) {
		if (rc == SL_ENOMEM)
			sl_err_set(err, rc, "out of memory");
		core_name_info_clear(out);
	}
	return rc;
}
