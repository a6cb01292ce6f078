/*
 * local.c - the local object commands: bucket create/list/delete, put, get,
 * stat, ls, rm, stats, rebuild-index. They open the data dir directly (which
 * fails clearly while a daemon holds it) and call the core API.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/cli.h"

typedef struct args {
	const char *data, *version_id, *content_type, *versioning;
	int recursive, versions;
	json_t *meta;
	const char *pos[4];
	int npos;
} args;

static int parse(const char *cmd, int argc, char **argv, args *a)
{
	memset(a, 0, sizeof(*a));
	a->meta = json_object();
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(s, "--data") || !strcmp(s, "--version-id") ||
		    !strcmp(s, "--content-type") || !strcmp(s, "--meta") ||
		    !strcmp(s, "--versioning")) {
			if (!val) {
				fprintf(stderr, "seglake: %s: %s needs a value\n", cmd, s);
				return -1;
			}
			i++;
			if (!strcmp(s, "--data"))
				a->data = val;
			else if (!strcmp(s, "--version-id"))
				a->version_id = val;
			else if (!strcmp(s, "--content-type"))
				a->content_type = val;
			else if (!strcmp(s, "--versioning"))
				a->versioning = val;
			else {
				const char *eq = strchr(val, '=');
				if (!eq || eq == val) {
					fprintf(stderr, "seglake: %s: --meta takes NAME=VALUE\n",
						cmd);
					return -1;
				}
				char name[256];
				snprintf(name, sizeof(name), "x-amz-meta-%.*s", (int)(eq - val),
					 val);
				for (char *p = name; *p; p++)
					if (*p >= 'A' && *p <= 'Z')
						*p = (char)(*p - 'A' + 'a');
				json_object_set_new(a->meta, name, json_string(eq + 1));
			}
		} else if (!strcmp(s, "--recursive") || !strcmp(s, "-r")) {
			a->recursive = 1;
		} else if (!strcmp(s, "--versions")) {
			a->versions = 1;
		} else if (s[0] == '-' && s[1] == '-') {
			fprintf(stderr, "seglake: %s: unknown option %s\n", cmd, s);
			return -1;
		} else if (a->npos < 4) {
			a->pos[a->npos++] = s;
		} else {
			fprintf(stderr, "seglake: %s: too many arguments\n", cmd);
			return -1;
		}
	}
	return 0;
}

/* Splits "bucket/key" (key may be empty if allow_empty). */
static int split(const char *cmd, const char *s, char *bucket, size_t bn, const char **key,
		 int allow_empty)
{
	const char *sl = strchr(s, '/');
	size_t n = sl ? (size_t)(sl - s) : strlen(s);
	if (n == 0 || n >= bn) {
		fprintf(stderr, "seglake: %s: '%s' is not BUCKET/KEY\n", cmd, s);
		return -1;
	}
	memcpy(bucket, s, n);
	bucket[n] = '\0';
	*key = sl ? sl + 1 : "";
	if (!allow_empty && !**key) {
		fprintf(stderr, "seglake: %s: '%s' names no key (BUCKET/KEY)\n", cmd, s);
		return -1;
	}
	return 0;
}

static void fmt_time(int64_t ms, char *out, size_t n)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int do_bucket(core *c, args *a)
{
	sl_err err = { 0 };
	const char *sub = a->npos > 0 ? a->pos[0] : "";
	if (!strcmp(sub, "list")) {
		core_bucket *b;
		size_t n;
		if (core_bucket_list(c, &b, &n, &err) < 0)
			return cli_fail("bucket list", &err);
		for (size_t i = 0; i < n; i++) {
			char ts[32];
			fmt_time(b[i].created_ms, ts, sizeof(ts));
			static const char *vn[] = { "unversioned", "enabled", "suspended",
						    "disabled" };
			printf("%s  %s  %s\n", ts, vn[b[i].versioning & 3], b[i].name);
		}
		free(b);
		return 0;
	}
	if (a->npos != 2 || (strcmp(sub, "create") && strcmp(sub, "delete"))) {
		fputs("usage: seglake bucket create|delete NAME | bucket list\n", stderr);
		return 2;
	}
	if (!strcmp(sub, "create")) {
		int vers = CORE_VERS_UNVERSIONED;
		if (a->versioning) {
			if (!strcmp(a->versioning, "enabled"))
				vers = CORE_VERS_ENABLED;
			else if (!strcmp(a->versioning, "disabled"))
				vers = CORE_VERS_DISABLED;
			else if (strcmp(a->versioning, "unversioned")) {
				fprintf(stderr, "seglake: bucket create: --versioning takes "
						"enabled, unversioned or disabled\n");
				return 2;
			}
		}
		if (core_bucket_create(c, a->pos[1], vers, &err) < 0)
			return cli_fail("bucket create", &err);
		return 0;
	}
	if (core_bucket_delete(c, a->pos[1], &err) < 0)
		return cli_fail("bucket delete", &err);
	return 0;
}

static int do_put(core *c, args *a)
{
	char bucket[64];
	const char *key;
	if (a->npos < 1 || a->npos > 2) {
		fputs("usage: seglake put BUCKET/KEY [FILE|-]\n", stderr);
		return 2;
	}
	if (split("put", a->pos[0], bucket, sizeof(bucket), &key, 0) < 0)
		return 2;
	const char *src = a->npos == 2 ? a->pos[1] : "-";
	int fd = strcmp(src, "-") ? open(src, O_RDONLY | O_CLOEXEC) : 0;
	if (fd < 0) {
		fprintf(stderr, "seglake: put: %s: %s\n", src, strerror(errno));
		return 1;
	}
	sl_err err = { 0 };
	core_writer *w;
	if (core_put_begin(c, bucket, key, &w, &err) < 0) {
		if (fd > 0)
			close(fd);
		return cli_fail("put", &err);
	}
	size_t cap = 1 << 20;
	char *buf = malloc(cap);
	int rc = buf ? 0 : sl_err_set(&err, SL_ENOMEM, "out of memory");
	for (;;) {
		if (rc < 0)
			break;
		ssize_t r = read(fd, buf, cap);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = sl_err_set(&err, SL_EIO, "read %s: %s", src, strerror(errno));
			break;
		}
		if (r == 0)
			break;
		rc = core_put_write(w, buf, (size_t)r, &err);
	}
	free(buf);
	if (fd > 0)
		close(fd);
	if (rc < 0) {
		core_put_abort(w);
		return cli_fail("put", &err);
	}
	if (a->content_type)
		json_object_set_new(a->meta, "content-type", json_string(a->content_type));
	char *meta = json_dumps(a->meta, JSON_COMPACT);
	core_put_opts o = { .meta = meta };
	core_objinfo oi = { 0 };
	rc = core_put_commit(w, &o, &oi, &err);
	free(meta);
	if (rc < 0)
		return cli_fail("put", &err);
	printf("%s/%s  %" PRIu64 " bytes  etag %s  version %s\n", bucket, key, oi.size, oi.etag,
	       oi.version_id);
	core_objinfo_clear(&oi);
	return 0;
}

static int do_get(core *c, args *a)
{
	char bucket[64];
	const char *key;
	if (a->npos < 1 || a->npos > 2) {
		fputs("usage: seglake get BUCKET/KEY [FILE|-]\n", stderr);
		return 2;
	}
	if (split("get", a->pos[0], bucket, sizeof(bucket), &key, 0) < 0)
		return 2;
	sl_err err = { 0 };
	core_objinfo oi = { 0 };
	core_reader *r;
	if (core_get_open(c, bucket, key, a->version_id, &oi, &r, &err) < 0)
		return cli_fail("get", &err);
	const char *dst = a->npos == 2 ? a->pos[1] : "-";
	int fd = strcmp(dst, "-") ? open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : 1;
	if (fd < 0) {
		fprintf(stderr, "seglake: get: %s: %s\n", dst, strerror(errno));
		core_reader_free(r);
		core_objinfo_clear(&oi);
		return 1;
	}
	size_t cap = 1 << 20;
	char *buf = malloc(cap);
	int rc = buf ? 0 : 1;
	uint64_t off = 0;
	while (rc == 0) {
		ssize_t n = core_read_at(r, buf, cap, off, &err);
		if (n < 0) {
			rc = cli_fail("get", &err);
			break;
		}
		if (n == 0)
			break;
		for (ssize_t w = 0; w < n;) {
			ssize_t k = write(fd, buf + w, (size_t)(n - w));
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0) {
				fprintf(stderr, "seglake: get: write %s: %s\n", dst,
					strerror(errno));
				rc = 1;
				break;
			}
			w += k;
		}
		off += (uint64_t)n;
	}
	free(buf);
	if (fd > 1 && close(fd) < 0 && rc == 0) {
		fprintf(stderr, "seglake: get: close %s: %s\n", dst, strerror(errno));
		rc = 1;
	}
	core_reader_free(r);
	core_objinfo_clear(&oi);
	return rc;
}

static int do_stat(core *c, args *a)
{
	char bucket[64];
	const char *key;
	if (a->npos != 1) {
		fputs("usage: seglake stat BUCKET/KEY [--version-id V]\n", stderr);
		return 2;
	}
	if (split("stat", a->pos[0], bucket, sizeof(bucket), &key, 0) < 0)
		return 2;
	sl_err err = { 0 };
	core_objinfo oi = { 0 };
	if (core_head(c, bucket, key, a->version_id, &oi, &err) < 0) {
		core_objinfo_clear(&oi);
		return cli_fail("stat", &err);
	}
	char ts[32];
	fmt_time(oi.mtime_ms, ts, sizeof(ts));
	printf("bucket: %s\nkey: %s\nversion: %s\nsize: %" PRIu64 "\netag: %s\n"
	       "last-modified: %s\ndelete-marker: %s\nlatest: %s\nmetadata: %s\n",
	       oi.bucket, oi.key, oi.version_id, oi.size, oi.etag, ts,
	       oi.delete_marker ? "yes" : "no", oi.is_latest ? "yes" : "no", oi.meta);
	core_objinfo_clear(&oi);
	return 0;
}

static int do_ls(core *c, args *a)
{
	sl_err err = { 0 };
	if (a->npos == 0) {
		args b = *a;
		b.pos[0] = "list";
		b.npos = 1;
		return do_bucket(c, &b);
	}
	char bucket[64];
	const char *prefix;
	if (split("ls", a->pos[0], bucket, sizeof(bucket), &prefix, 1) < 0)
		return 2;
	core_list_opts o = { .prefix = prefix,
			     .delimiter = a->recursive ? NULL : "/",
			     .max_keys = 1000,
			     .versions = a->versions };
	char *marker = NULL, *vmarker = NULL;
	for (;;) {
		core_list_result r;
		o.start_after = marker;
		o.version_marker = vmarker;
		if (core_list(c, bucket, &o, &r, &err) < 0) {
			free(marker);
			free(vmarker);
			return cli_fail("ls", &err);
		}
		for (size_t i = 0; i < r.nprefixes; i++)
			printf("%30s  %s\n", "DIR", r.prefixes[i]);
		for (size_t i = 0; i < r.nobjs; i++) {
			char ts[32];
			fmt_time(r.objs[i].mtime_ms, ts, sizeof(ts));
			if (a->versions)
				printf("%s %12" PRIu64 "  %s%s%s  %s\n", ts, r.objs[i].size,
				       r.objs[i].version_id, r.objs[i].is_latest ? " latest" : "",
				       r.objs[i].delete_marker ? " delete-marker" : "",
				       r.objs[i].key);
			else
				printf("%s %12" PRIu64 "  %s\n", ts, r.objs[i].size, r.objs[i].key);
		}
		free(marker);
		free(vmarker);
		marker = r.next_marker ? strdup(r.next_marker) : NULL;
		vmarker = r.next_version_marker ? strdup(r.next_version_marker) : NULL;
		int more = r.truncated;
		core_list_result_clear(&r);
		if (!more)
			break;
	}
	free(marker);
	free(vmarker);
	return 0;
}

static int do_rm(core *c, args *a)
{
	char bucket[64];
	const char *key;
	if (a->npos != 1) {
		fputs("usage: seglake rm BUCKET/KEY [--version-id V]\n", stderr);
		return 2;
	}
	if (split("rm", a->pos[0], bucket, sizeof(bucket), &key, 0) < 0)
		return 2;
	sl_err err = { 0 };
	core_del_result res;
	if (core_delete(c, bucket, key, a->version_id, &res, &err) < 0)
		return cli_fail("rm", &err);
	if (res.delete_marker && !a->version_id)
		printf("delete marker %s\n", res.version_id);
	return 0;
}

static int do_stats(core *c)
{
	sl_err err = { 0 };
	core_stats s;
	if (core_stats_get(c, &s, &err) < 0)
		return cli_fail("stats", &err);
	printf("node: %s\nbuckets: %" PRIu64 "\nobjects: %" PRIu64 "\nversions: %" PRIu64
	       "\nlogical bytes: %" PRIu64 "\nchunks: %" PRIu64 "\nstored bytes: %" PRIu64
	       "\nsegments: %" PRIu64 "\nsegment bytes: %" PRIu64 "\noplog head: %" PRId64 "\n",
	       core_node_id(c), s.buckets, s.objects, s.versions, s.bytes_logical, s.chunks,
	       s.bytes_stored, s.segments, s.segment_bytes, s.oplog_head);
	return 0;
}

int cli_local(const char *cmd, int argc, char **argv)
{
	args a;
	if (parse(cmd, argc, argv, &a) < 0) {
		json_decref(a.meta);
		return 2;
	}
	sl_err err = { 0 };
	const char *dir = cli_data_dir(a.data);
	int rc;
	if (!strcmp(cmd, "rebuild-index")) {
		rc = core_rebuild_index(dir, &err) < 0 ? cli_fail(cmd, &err) : 0;
		if (rc == 0)
			printf("rebuilt %s/meta.db from segments (old index kept as meta.db.old)\n",
			       dir);
		json_decref(a.meta);
		return rc;
	}
	core *c;
	if (core_open(dir, NULL, &c, &err) < 0) {
		json_decref(a.meta);
		return cli_fail(cmd, &err);
	}
	if (!strcmp(cmd, "bucket"))
		rc = do_bucket(c, &a);
	else if (!strcmp(cmd, "put"))
		rc = do_put(c, &a);
	else if (!strcmp(cmd, "get"))
		rc = do_get(c, &a);
	else if (!strcmp(cmd, "stat"))
		rc = do_stat(c, &a);
	else if (!strcmp(cmd, "ls"))
		rc = do_ls(c, &a);
	else if (!strcmp(cmd, "rm"))
		rc = do_rm(c, &a);
	else
		rc = do_stats(c);
	core_close(c);
	json_decref(a.meta);
	return rc;
}
