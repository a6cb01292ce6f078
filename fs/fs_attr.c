/*
 * fs_attr.c - POSIX attributes and xattrs kept in object metadata, in the
 * names s3fs uses: x-amz-meta-mode (decimal st_mode with type bits; a value
 * with a leading 0 is read as octal), -uid, -gid, -mtime/-ctime/-atime
 * (decimal seconds, optionally ".nnnnnnnnn"), and x-amz-meta-xattr
 * (urlencoded JSON of name -> base64 value). Pure functions on JSON text;
 * no core calls, no FUSE calls.
 */
#include "fs/fs_int.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <time.h>

/* Parses "123", "123.5", "0644" (octal); returns 0 if it parsed. */
static int fs_parseUint(const char *s, int allow_octal, uint64_t *out)
{
	if (!s || !isdigit((unsigned char)s[0]))
		return -1;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, allow_octal && s[0] == '0' ? 8 : 10);
	if (errno || (*end != '\0' && *end != '.'))
		return -1;
	*out = v;
	return 0;
}

static int fs_parseTime(const char *s, struct timespec *ts)
{
	uint64_t sec;
	if (fs_parseUint(s, 0, &sec) < 0 || sec > (uint64_t)INT64_MAX / 2)
		return -1;
	ts->tv_sec = (time_t)sec;
	ts->tv_nsec = 0;
	const char *dot = strchr(s, '.');
	if (dot) {
		long ns = 0;
		int digits = 0;
		for (const char *p = dot + 1; isdigit((unsigned char)*p) && digits < 9;
		     p++, digits++)
			ns = ns * 10 + (*p - '0');
		for (; digits < 9; digits++)
			ns *= 10;
		ts->tv_nsec = ns;
	}
	return 0;
}

void fs_attr_dir_default(fs_ctx *m, int64_t mtime_ms, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = S_IFDIR | 0755;
	st->st_nlink = 2;
	st->st_uid = m->uid;
	st->st_gid = m->gid;
	st->st_size = 4096;
	st->st_blksize = 131072;
	st->st_mtim.tv_sec = mtime_ms / 1000;
	st->st_mtim.tv_nsec = (mtime_ms % 1000) * 1000000;
	st->st_ctim = st->st_atim = st->st_mtim;
}

/* The attribute members of object metadata, in the order fs_attrApply takes. */
static const char *const fs_attrNames[] = { "x-amz-meta-mode",	"x-amz-meta-uid",
					    "x-amz-meta-gid",	"x-amz-meta-mtime",
					    "x-amz-meta-ctime", "x-amz-meta-atime" };
#define FS_NATTR (sizeof(fs_attrNames) / sizeof(fs_attrNames[0]))

/* Applies the attribute values v[i] (NULL: absent) over st's defaults. */
static void fs_attrApply(const char *const v[FS_NATTR], int is_dir, struct stat *st)
{
	uint64_t n;
	if (fs_parseUint(v[0], 1, &n) == 0) {
		mode_t perm = (mode_t)(n & 07777), type = (mode_t)(n & S_IFMT);
		if (is_dir)
			st->st_mode = S_IFDIR | perm;
		else if (type == S_IFLNK)
			st->st_mode = S_IFLNK | 0777;
		else
			st->st_mode = S_IFREG | perm; /* other types are shown as files */
	}
	if (fs_parseUint(v[1], 0, &n) == 0 && n < UINT32_MAX)
		st->st_uid = (uid_t)n;
	if (fs_parseUint(v[2], 0, &n) == 0 && n < UINT32_MAX)
		st->st_gid = (gid_t)n;
	struct timespec ts;
	if (fs_parseTime(v[3], &ts) == 0)
		st->st_mtim = ts;
	st->st_atim = st->st_ctim = st->st_mtim;
	if (fs_parseTime(v[4], &ts) == 0)
		st->st_ctim = ts;
	if (fs_parseTime(v[5], &ts) == 0)
		st->st_atim = ts;
}

void fs_attr_from_meta(fs_ctx *m, const char *meta, uint64_t size, int64_t mtime_ms, int is_dir,
		       struct stat *st)
{
	fs_attr_dir_default(m, mtime_ms, st);
	if (!is_dir) {
		st->st_mode = S_IFREG | 0644;
		st->st_nlink = 1;
		st->st_size = (off_t)size;
	}
	const char *v[FS_NATTR] = { NULL };
	/* the plain case without building a JSON object: listings and getattr
	 * of many files spent most of their time in the parser */
	char vals[FS_NATTR][CORE_META_FIELD_MAX];
	unsigned found;
	if (meta && core_meta_fields(meta, fs_attrNames, FS_NATTR, vals, &found)) {
		for (size_t i = 0; i < FS_NATTR; i++)
			v[i] = found & (1u << i) ? vals[i] : NULL;
		fs_attrApply(v, is_dir, st);
	} else if (meta) {
		json_t *j = json_loads(meta, 0, NULL);
		if (j && json_is_object(j)) {
			for (size_t i = 0; i < FS_NATTR; i++)
				v[i] = json_string_value(json_object_get(j, fs_attrNames[i]));
			fs_attrApply(v, is_dir, st);
		}
		json_decref(j);
	}
	st->st_blocks = (st->st_size + 511) / 512;
}

void fs_attr_from_info(fs_ctx *m, const core_objinfo *oi, int is_dir, struct stat *st)
{
	fs_attr_from_meta(m, oi->meta, oi->size, oi->mtime_ms, is_dir, st);
}

char *fs_meta_set(const char *meta, const char *name, const char *value)
{
	json_t *j = meta && *meta ? json_loads(meta, 0, NULL) : NULL;
	if (!j || !json_is_object(j)) {
		json_decref(j);
		j = json_object();
		if (!j)
			return NULL;
	}
	if (value)
		json_object_set_new(j, name, json_string(value));
	else
		json_object_del(j, name);
	char *out = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return out;
}

static void fs_timeStr(const struct timespec *ts, char *buf, size_t n)
{
	if (ts->tv_nsec)
		snprintf(buf, n, "%lld.%09ld", (long long)ts->tv_sec, ts->tv_nsec);
	else
		snprintf(buf, n, "%lld", (long long)ts->tv_sec);
}

char *fs_meta_set_time(const char *meta, const char *name, const struct timespec *ts)
{
	char buf[48];
	fs_timeStr(ts, buf, sizeof(buf));
	return fs_meta_set(meta, name, buf);
}

char *fs_meta_new(mode_t mode, uid_t uid, gid_t gid)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	char m[24], u[24], g[24], t[48];
	snprintf(m, sizeof(m), "%u", (unsigned)mode);
	snprintf(u, sizeof(u), "%u", (unsigned)uid);
	snprintf(g, sizeof(g), "%u", (unsigned)gid);
	fs_timeStr(&now, t, sizeof(t));
	json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s}", "x-amz-meta-mode", m, "x-amz-meta-uid", u,
			      "x-amz-meta-gid", g, "x-amz-meta-mtime", t, "x-amz-meta-ctime", t);
	if (!j)
		return NULL;
	char *out = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return out;
}

/* ---- xattrs ---------------------------------------------------------------- */

static char *fs_urlDecode(const char *s)
{
	size_t n = strlen(s);
	char *out = malloc(n + 1), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n && isxdigit((unsigned char)s[i + 1]) &&
		    isxdigit((unsigned char)s[i + 2])) {
			char hex[3] = { s[i + 1], s[i + 2], 0 };
			*o++ = (char)strtol(hex, NULL, 16);
			i += 2;
		} else if (s[i] == '+') {
			*o++ = ' ';
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
}

static char *fs_urlEncode(const char *s)
{
	size_t n = strlen(s);
	char *out = malloc(n * 3 + 1), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
			*o++ = (char)ch;
		} else {
			sprintf(o, "%%%02X", ch);
			o += 3;
		}
	}
	*o = '\0';
	return out;
}

/* The xattr map of meta as a JSON object (new reference, never NULL on success). */
static json_t *fs_xattrMap(const char *meta)
{
	json_t *j = meta ? json_loads(meta, 0, NULL) : NULL;
	const char *enc = j ? json_string_value(json_object_get(j, FS_META_XATTR)) : NULL;
	json_t *map = NULL;
	if (enc) {
		char *dec = fs_urlDecode(enc);
		if (dec)
			map = json_loads(dec, 0, NULL);
		free(dec);
	}
	json_decref(j);
	if (!map || !json_is_object(map)) {
		json_decref(map);
		map = json_object();
	}
	return map;
}

static int fs_b64Decode(const char *in, void *out, size_t cap, size_t *len)
{
	size_t n = strlen(in);
	if (n % 4)
		return -EIO;
	unsigned char *tmp = malloc(n / 4 * 3 + 1);
	if (!tmp)
		return -ENOMEM;
	int r = EVP_DecodeBlock(tmp, (const unsigned char *)in, (int)n);
	if (r < 0) {
		free(tmp);
		return -EIO;
	}
	size_t pad = 0;
	if (n && in[n - 1] == '=')
		pad++;
	if (n > 1 && in[n - 2] == '=')
		pad++;
	size_t real = (size_t)r - pad;
	*len = real;
	if (out && cap) {
		if (real > cap) {
			free(tmp);
			return -ERANGE;
		}
		memcpy(out, tmp, real);
	}
	free(tmp);
	return 0;
}

int fs_xattr_get(const char *meta, const char *name, void *buf, size_t size, size_t *len)
{
	json_t *map = fs_xattrMap(meta);
	const char *v = json_string_value(json_object_get(map, name));
	int r = v ? fs_b64Decode(v, buf, size, len) : -ENODATA;
	json_decref(map);
	return r;
}

int fs_xattr_list(const char *meta, char *buf, size_t size, size_t *len)
{
	json_t *map = fs_xattrMap(meta);
	const char *k;
	json_t *v;
	size_t total = 0;
	json_object_foreach(map, k, v)
	{
		size_t kl = strlen(k) + 1;
		if (size && total + kl <= size)
			memcpy(buf + total, k, kl);
		total += kl;
	}
	json_decref(map);
	*len = total;
	if (size && total > size)
		return -ERANGE;
	return 0;
}

int fs_xattr_set(const char *meta, const char *name, const void *value, size_t size, int flags,
		 char **out)
{
	json_t *map = fs_xattrMap(meta);
	int exists = json_object_get(map, name) != NULL;
	if (value && (flags & XATTR_CREATE) && exists) {
		json_decref(map);
		return -EEXIST;
	}
	if ((!value || (flags & XATTR_REPLACE)) && !exists) {
		json_decref(map);
		return -ENODATA;
	}
	if (value) {
		char *b64 = malloc(4 * ((size + 2) / 3) + 1);
		if (!b64) {
			json_decref(map);
			return -ENOMEM;
		}
		EVP_EncodeBlock((unsigned char *)b64, value, (int)size);
		json_object_set_new(map, name, json_string(b64));
		free(b64);
	} else {
		json_object_del(map, name);
	}
	char *enc = NULL;
	if (json_object_size(map) > 0) {
		char *txt = json_dumps(map, JSON_COMPACT | JSON_SORT_KEYS);
		enc = txt ? fs_urlEncode(txt) : NULL;
		free(txt);
		if (!enc) {
			json_decref(map);
			return -ENOMEM;
		}
		if (strlen(enc) > 65536) {
			free(enc);
			json_decref(map);
			return -E2BIG;
		}
	}
	json_decref(map);
	*out = fs_meta_set(meta, FS_META_XATTR, enc);
	free(enc);
	return *out ? 0 : -ENOMEM;
}
