/*
 * object.c - object-level S3 operations: PutObject (streamed into a core
 * writer), GetObject/HeadObject (streamed out of a core reader, with single
 * and multi-range, conditionals and response-* overrides), DeleteObject and
 * CopyObject (metadata-only, chunks shared by the core). Also the stored
 * metadata: which request headers are kept and how they come back.
 * Not here: multipart (mpu.c), listing (list.c), SigV4 (auth/).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/rand.h>

#include "s3d/s3d_int.h"

/* Plain headers stored with an object and returned on GET/HEAD. */
static const char *const s3d_stored_headers[] = {
	"content-type",
	"content-encoding",
	"content-disposition",
	"content-language",
	"cache-control",
	"expires",
	"x-amz-website-redirect-location",
};

static int s3d_is_checksum_name(const char *n)
{
	return strncmp(n, "x-amz-checksum-", 15) == 0 && strcmp(n, "x-amz-checksum-mode") != 0 &&
	       strcmp(n, "x-amz-checksum-algorithm") != 0 && strcmp(n, "x-amz-checksum-type") != 0;
}

/* Sets name=value in obj; -1 if value is not UTF-8. */
static int s3d_json_set(json_t *obj, const char *name, const char *value)
{
	json_t *v = json_string(value);
	if (!v)
		return -1;
	return json_object_set_new(obj, name, v) == 0 ? 0 : -1;
}

/* Content-Encoding without the aws-chunked transport token. NULL if empty. */
static char *s3d_content_encoding(const char *v)
{
	char *out = calloc(1, strlen(v) + 1);
	if (!out)
		return NULL;
	const char *p = v;
	while (*p) {
		size_t n = strcspn(p, ",");
		const char *s = p;
		size_t sn = n;
		while (sn && (*s == ' ' || *s == '\t')) {
			s++;
			sn--;
		}
		while (sn && (s[sn - 1] == ' ' || s[sn - 1] == '\t'))
			sn--;
		if (sn && !(sn == 11 && strncasecmp(s, "aws-chunked", 11) == 0)) {
			if (*out)
				strcat(out, ",");
			strncat(out, s, sn);
		}
		p += n;
		if (*p == ',')
			p++;
	}
	if (!*out) {
		free(out);
		return NULL;
	}
	return out;
}

int s3d_meta_from_headers(s3d_req *r, const char *checksum_name, const char *checksum_value)
{
	json_t *obj = json_object();
	if (!obj) {
		s3d_error(r, "SlowDown", 503, "out of memory");
		return -1;
	}
	size_t user_bytes = 0;
	int bad = 0;
	for (size_t i = 0; i < r->nhdrs && !bad; i++) {
		char name[256];
		size_t n = strlen(r->hdrs[i].name);
		if (n >= sizeof(name))
			continue;
		for (size_t j = 0; j <= n; j++) {
			char ch = r->hdrs[i].name[j];
			name[j] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
		}
		const char *val = r->hdrs[i].value;
		if (strncmp(name, "x-amz-meta-", 11) == 0) {
			user_bytes += n - 11 + strlen(val);
			/* A repeated header joins with ',' as HTTP says. */
			json_t *prev = json_object_get(obj, name);
			if (prev) {
				size_t pl = strlen(json_string_value(prev));
				char *j = malloc(pl + strlen(val) + 2);
				if (!j) {
					bad = 2;
					break;
				}
				sprintf(j, "%s,%s", json_string_value(prev), val);
				bad = s3d_json_set(obj, name, j) ? 1 : 0;
				free(j);
			} else {
				bad = s3d_json_set(obj, name, val) ? 1 : 0;
			}
			continue;
		}
		for (size_t k = 0; k < sizeof(s3d_stored_headers) / sizeof(s3d_stored_headers[0]);
		     k++) {
			if (strcmp(name, s3d_stored_headers[k]) != 0)
				continue;
			if (strcmp(name, "content-encoding") == 0) {
				char *ce = s3d_content_encoding(val);
				if (ce)
					bad = s3d_json_set(obj, name, ce) ? 1 : 0;
				free(ce);
			} else {
				bad = s3d_json_set(obj, name, val) ? 1 : 0;
			}
		}
	}
	if (!bad && checksum_name && checksum_value)
		bad = s3d_json_set(obj, checksum_name, checksum_value) ? 1 : 0;
	if (bad) {
		json_decref(obj);
		s3d_error(r, "InvalidArgument", 400, "Header values must be valid UTF-8.");
		return -1;
	}
	if (user_bytes > S3D_MAX_META_BYTES) {
		json_decref(obj);
		s3d_error(r, "MetadataTooLarge", 400, NULL);
		return -1;
	}
	free(r->meta);
	r->meta = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(obj);
	if (!r->meta) {
		s3d_error(r, "SlowDown", 503, "out of memory");
		return -1;
	}
	return 0;
}

/* Conditional-write headers into r->cond_* (kept until the request ends). */
static void s3d_write_conditions(s3d_req *r, core_cond *c)
{
	memset(c, 0, sizeof(*c));
	const char *im = s3d_hdr(r, "If-Match");
	const char *inm = s3d_hdr(r, "If-None-Match");
	char tmp[128];
	if (im) {
		s3d_etag_unquote(im, tmp, sizeof(tmp));
		free(r->cond_match);
		r->cond_match = strdup(tmp);
		c->if_match = r->cond_match;
	}
	if (inm) {
		s3d_etag_unquote(inm, tmp, sizeof(tmp));
		free(r->cond_none);
		r->cond_none = strdup(tmp);
		c->if_none_match = r->cond_none;
	}
}

/* x-amz-version-id for a version: always for real ids, for "null" only
 * when the bucket has (had) versioning. */
static void s3d_version_header(s3d_req *r, struct MHD_Response *resp, const char *bucket,
			       const char *vid)
{
	if (!vid || !*vid)
		return;
	if (strcmp(vid, CORE_NULL_VERSION) == 0) {
		core_bucket b;
		if (core_bucket_get(r->srv->core, bucket, &b, NULL) != 0 ||
		    (b.versioning != CORE_VERS_ENABLED && b.versioning != CORE_VERS_SUSPENDED))
			return;
	}
	if (resp)
		s3d_hadd(resp, "x-amz-version-id", vid);
	else
		s3d_req_header(r, "x-amz-version-id", vid);
}

static void s3d_etag_header(struct MHD_Response *resp, const char *etag)
{
	char q[80];
	snprintf(q, sizeof(q), "\"%s\"", etag);
	s3d_hadd(resp, "ETag", q);
}

/* ---- PutObject ------------------------------------------------------------- */

static void s3d_put_finish(s3d_req *r)
{
	const char *ckn = NULL;
	char ckv[CHECKSUM_B64_MAX];
	int has_ck = s3d_body_checksum(r, &ckn, ckv);
	if (s3d_meta_from_headers(r, has_ck ? ckn : NULL, has_ck ? ckv : NULL) != 0)
		return;
	core_put_opts po = { 0 };
	po.meta = r->meta;
	po.content_md5 = r->has_md5 ? r->content_md5 : NULL;
	s3d_write_conditions(r, &po.cond);
	core_objinfo oi = { 0 };
	sl_err e = { 0 };
	core_writer *w = r->w;
	r->w = NULL; /* commit frees it whatever happens */
	int rc = core_put_commit(w, &po, &oi, &e);
	if (rc != 0) {
		core_objinfo_clear(&oi);
		s3d_error_sl(r, rc, &e);
		return;
	}
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (resp) {
		s3d_etag_header(resp, oi.etag);
		s3d_version_header(r, resp, r->bucket, oi.version_id);
		if (has_ck)
			s3d_hadd(resp, ckn, ckv);
	}
	core_objinfo_clear(&oi);
	s3d_respond(r, 200, resp);
}

void s3d_op_put_object(s3d_req *r)
{
	if (s3d_body_setup(r, S3D_BODY_WRITER, r->srv->o.max_object_size) != 0)
		return;
	sl_err e = { 0 };
	int rc = core_put_begin(r->srv->core, r->bucket, r->key, &r->w, &e);
	if (rc != 0) {
		r->w = NULL;
		s3d_error_sl(r, rc, &e);
		return;
	}
	r->finish = s3d_put_finish;
}

/* ---- GetObject / HeadObject ------------------------------------------------- */

#define S3D_GET_BLOCK (512u * 1024) /* GET body bytes produced per MHD callback */

typedef struct s3d_seg {
	uint64_t off, len; /* object bytes, or the length of text */
	char *text;	   /* literal bytes (multipart headers) when non-NULL */
} s3d_seg;

typedef struct s3d_stream {
	core_reader *rd;
	s3d_seg *segs;
	size_t nsegs;
	size_t cur;
	uint64_t cur_start;
	FILE *log;
	char id[20];
} s3d_stream;

static void s3d_stream_free(void *cls)
{
	s3d_stream *st = cls;
	if (!st)
		return;
	core_reader_free(st->rd);
	for (size_t i = 0; i < st->nsegs; i++)
		free(st->segs[i].text);
	free(st->segs);
	free(st);
}

static ssize_t s3d_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	s3d_stream *st = cls;
	if (pos < st->cur_start) {
		st->cur = 0;
		st->cur_start = 0;
	}
	while (st->cur < st->nsegs && pos >= st->cur_start + st->segs[st->cur].len) {
		st->cur_start += st->segs[st->cur].len;
		st->cur++;
	}
	if (st->cur >= st->nsegs)
		return MHD_CONTENT_READER_END_OF_STREAM;
	const s3d_seg *sg = &st->segs[st->cur];
	uint64_t within = pos - st->cur_start;
	uint64_t left = sg->len - within;
	size_t n = left < max ? (size_t)left : max;
	if (sg->text) {
		memcpy(buf, sg->text + within, n);
		return (ssize_t)n;
	}
	sl_err e = { 0 };
	ssize_t got = core_read_at(st->rd, buf, n, sg->off + within, &e);
	if (got <= 0) {
		fprintf(st->log, "s3d: %s read failed at %llu: %s (%s)\n", st->id,
			(unsigned long long)(sg->off + within), e.msg,
			sl_code_name(got < 0 ? (int)got : SL_EIO));
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	return got;
}

/* Unused body callback for HEAD answers (MHD sends no body for HEAD). */
static ssize_t s3d_no_body(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)cls;
	(void)pos;
	(void)buf;
	(void)max;
	return MHD_CONTENT_READER_END_WITH_ERROR;
}

/* Range header parser (declared in s3d_int.h). */
int s3d_parse_range(const char *h, uint64_t size, s3d_range *out)
{
	while (*h == ' ')
		h++;
	if (strncasecmp(h, "bytes=", 6) != 0)
		return 0;
	const char *p = h + 6;
	int n = 0, specs = 0;
	while (*p) {
		while (*p == ' ' || *p == '\t')
			p++;
		size_t len = strcspn(p, ",");
		char spec[64];
		if (len == 0 || len >= sizeof(spec))
			return 0;
		memcpy(spec, p, len);
		spec[len] = '\0';
		while (len && (spec[len - 1] == ' ' || spec[len - 1] == '\t'))
			spec[--len] = '\0';
		p += strcspn(p, ",");
		if (*p == ',')
			p++;
		if (++specs > S3D_MAX_RANGES)
			return 0;
		char *dash = strchr(spec, '-');
		if (!dash)
			return 0;
		*dash = '\0';
		uint64_t a, b;
		if (spec[0] == '\0') {
			if (s3d_parse_u64(dash + 1, &b) != 0)
				return 0;
			if (b == 0 || size == 0)
				continue;
			out[n].first = b >= size ? 0 : size - b;
			out[n].last = size - 1;
			n++;
			continue;
		}
		if (s3d_parse_u64(spec, &a) != 0)
			return 0;
		if (dash[1] == '\0') {
			b = UINT64_MAX;
		} else if (s3d_parse_u64(dash + 1, &b) != 0 || b < a) {
			return 0;
		}
		if (a >= size)
			continue;
		out[n].first = a;
		out[n].last = b >= size ? size - 1 : b;
		n++;
	}
	if (specs == 0)
		return 0;
	return n > 0 ? n : -1;
}

/* Evaluates If-* headers. Returns 0 to proceed, 304 or 412. */
static int s3d_get_conditions(s3d_req *r, const core_objinfo *oi)
{
	int64_t mtime = oi->mtime_ms / 1000;
	const char *im = s3d_hdr(r, "If-Match");
	const char *ius = s3d_hdr(r, "If-Unmodified-Since");
	const char *inm = s3d_hdr(r, "If-None-Match");
	const char *ims = s3d_hdr(r, "If-Modified-Since");
	if (im) {
		if (!s3d_etag_list_match(im, oi->etag))
			return 412;
	} else if (ius) {
		int64_t t = s3d_parse_http_date(ius);
		if (t >= 0 && mtime > t)
			return 412;
	}
	if (inm) {
		if (s3d_etag_list_match(inm, oi->etag))
			return 304;
	} else if (ims) {
		int64_t t = s3d_parse_http_date(ims);
		if (t >= 0 && mtime <= t && t <= s3d_now_ms() / 1000)
			return 304;
	}
	return 0;
}

/* Object headers shared by GET, HEAD and 304 answers. */
static void s3d_object_headers(s3d_req *r, struct MHD_Response *resp, const core_objinfo *oi,
			       int full, const char *ct_override)
{
	char date[40];
	s3d_http_date(oi->mtime_ms, date);
	s3d_etag_header(resp, oi->etag);
	s3d_hadd(resp, "Last-Modified", date);
	s3d_version_header(r, resp, oi->bucket ? oi->bucket : r->bucket, oi->version_id);
	if (!full)
		return;
	s3d_hadd(resp, "Accept-Ranges", "bytes");
	json_t *m = oi->meta ? json_loads(oi->meta, 0, NULL) : NULL;
	const char *ck_mode = s3d_hdr(r, "x-amz-checksum-mode");
	int want_ck = ck_mode && strcasecmp(ck_mode, "ENABLED") == 0;
	int have_ct = 0;
	if (m && json_is_object(m)) {
		const char *name;
		json_t *v;
		json_object_foreach(m, name, v)
		{
			const char *val = json_string_value(v);
			if (!val)
				continue;
			if (s3d_is_checksum_name(name)) {
				if (want_ck)
					s3d_hadd(resp, name, val);
				continue;
			}
			if (strncmp(name, "x-amz-meta-", 11) != 0) {
				int known = 0;
				for (size_t k = 0;
				     k < sizeof(s3d_stored_headers) / sizeof(s3d_stored_headers[0]);
				     k++)
					known |= strcmp(name, s3d_stored_headers[k]) == 0;
				if (!known)
					continue;
			}
			/* response-* query parameters override stored values. */
			char qn[64];
			snprintf(qn, sizeof(qn), "response-%s", name);
			if (strncmp(name, "x-amz-", 6) != 0 && s3d_arg_get(r, qn))
				continue;
			if (strcmp(name, "content-type") == 0) {
				if (ct_override)
					continue;
				have_ct = 1;
			}
			s3d_hadd(resp, name, val);
		}
	}
	if (m)
		json_decref(m);
	static const char *const overrides[] = {
		"content-type",	 "content-language",	"expires",
		"cache-control", "content-disposition", "content-encoding"
	};
	for (size_t k = 0; k < sizeof(overrides) / sizeof(overrides[0]); k++) {
		char qn[64];
		snprintf(qn, sizeof(qn), "response-%s", overrides[k]);
		const char *v = s3d_arg_get(r, qn);
		if (v && !(k == 0 && ct_override)) {
			s3d_hadd(resp, overrides[k], v);
			if (k == 0)
				have_ct = 1;
		}
	}
	if (ct_override)
		s3d_hadd(resp, "Content-Type", ct_override);
	else if (!have_ct)
		s3d_hadd(resp, "Content-Type", "binary/octet-stream");
}

static int s3d_seg_text(s3d_seg *sg, const char *text)
{
	sg->text = strdup(text);
	sg->len = sg->text ? strlen(text) : 0;
	return sg->text ? 0 : -1;
}

void s3d_op_get_object(s3d_req *r, int head)
{
	const char *vid = s3d_arg_get(r, "versionId");
	if (vid && !*vid) {
		s3d_error(r, "InvalidArgument", 400, "Version id cannot be the empty string");
		return;
	}
	/* ?partNumber=N: that part's byte range of an object completed from a
	 * multipart upload (206, x-amz-mp-parts-count); N = 1 of any other
	 * object is the whole object. */
	uint64_t part_no = 0;
	if (s3d_arg_has(r, "partNumber")) {
		if (s3d_parse_u64(s3d_arg_get(r, "partNumber"), &part_no) != 0 || part_no < 1 ||
		    part_no > 10000) {
			s3d_error(r, "InvalidArgument", 400,
				  "Part number must be an integer between 1 and 10000, inclusive");
			return;
		}
		if (s3d_hdr(r, "Range")) {
			s3d_error(r, "InvalidRequest", 400,
				  "Cannot specify both Range header and partNumber query "
				  "parameter");
			return;
		}
	}
	core_objinfo oi = { 0 };
	core_reader *rd = NULL;
	sl_err e = { 0 };
	int rc = head ? core_head(r->srv->core, r->bucket, r->key, vid, &oi, &e)
		      : core_get_open(r->srv->core, r->bucket, r->key, vid, &oi, &rd, &e);
	if (rc != 0 || oi.delete_marker) {
		if (oi.delete_marker) {
			s3d_req_header(r, "x-amz-delete-marker", "true");
			if (oi.version_id)
				s3d_req_header(r, "x-amz-version-id", oi.version_id);
		}
		core_reader_free(rd);
		if (rc == 0 && oi.delete_marker) {
			char date[40];
			s3d_http_date(oi.mtime_ms, date);
			s3d_req_header(r, "Last-Modified", date);
			core_objinfo_clear(&oi);
			s3d_error(r, "MethodNotAllowed", 405,
				  "The specified method is not allowed against this resource.");
			return;
		}
		core_objinfo_clear(&oi);
		if (rc == SL_ENOVERSION || (rc == SL_ENOKEY && vid))
			s3d_error(r, "NoSuchVersion", 404, NULL);
		else
			s3d_error_sl(r, rc, &e);
		return;
	}
	int cond = s3d_get_conditions(r, &oi);
	if (cond == 412) {
		core_reader_free(rd);
		core_objinfo_clear(&oi);
		s3d_error(r, "PreconditionFailed", 412, NULL);
		return;
	}
	if (cond == 304) {
		core_reader_free(rd);
		struct MHD_Response *resp =
			MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
		if (resp)
			s3d_object_headers(r, resp, &oi, 0, NULL);
		core_objinfo_clear(&oi);
		s3d_respond(r, 304, resp);
		return;
	}

	uint64_t size = oi.size;
	s3d_range ranges[S3D_MAX_RANGES];
	int nr = 0;
	const char *rh = s3d_hdr(r, "Range");
	if (rh)
		nr = s3d_parse_range(rh, size, ranges);
	size_t nparts = 0;
	if (part_no) {
		uint64_t *psz = NULL;
		int prc = core_version_parts(r->srv->core, r->bucket, r->key, oi.version_id, &psz,
					     &nparts, &e);
		uint64_t off = 0, sum = 0;
		for (size_t i = 0; i < nparts; i++) {
			if (i + 1 < part_no)
				off += psz[i];
			sum += psz[i];
		}
		if (prc == 0 && nparts && sum != size)
			prc = sl_err_set(&e, SL_EINTERNAL, "part sizes do not add up");
		if (prc != 0 || (nparts == 0 && part_no > 1) || (nparts && part_no > nparts)) {
			free(psz);
			core_reader_free(rd);
			core_objinfo_clear(&oi);
			if (prc != 0)
				s3d_error_sl(r, prc, &e);
			else
				s3d_error(r, "InvalidPartNumber", 416, NULL);
			return;
		}
		if (nparts) {
			uint64_t plen = psz[part_no - 1];
			/* an empty part (only a lone one can be) is served as the whole object */
			if (plen) {
				ranges[0].first = off;
				ranges[0].last = off + plen - 1;
				nr = 1;
			}
		}
		free(psz);
	}
	if (nr < 0) {
		char cr[48];
		snprintf(cr, sizeof(cr), "bytes */%llu", (unsigned long long)size);
		s3d_req_header(r, "Content-Range", cr);
		core_reader_free(rd);
		core_objinfo_clear(&oi);
		s3d_error(r, "InvalidRange", 416, NULL);
		return;
	}

	s3d_stream *st = calloc(1, sizeof(*st));
	char boundary[40] = "";
	uint64_t total = 0;
	int ok = st != NULL;
	if (ok) {
		st->rd = rd;
		rd = NULL;
		st->log = r->srv->o.log;
		snprintf(st->id, sizeof(st->id), "%s", r->id);
		st->segs = calloc((size_t)(nr > 1 ? nr * 2 + 1 : 1), sizeof(s3d_seg));
		ok = st->segs != NULL;
	}
	if (ok && nr <= 1) {
		st->nsegs = 1;
		st->segs[0].off = nr == 1 ? ranges[0].first : 0;
		st->segs[0].len = nr == 1 ? ranges[0].last - ranges[0].first + 1 : size;
		total = st->segs[0].len;
	} else if (ok) {
		unsigned char rnd[8];
		RAND_bytes(rnd, sizeof(rnd));
		snprintf(boundary, sizeof(boundary),
			 "SeglakeBoundary%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
			 rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
		char *ct = oi.meta ? core_meta_get(oi.meta, "content-type") : NULL;
		for (int i = 0; i < nr && ok; i++) {
			char hdr[512];
			snprintf(hdr, sizeof(hdr),
				 "\r\n--%s\r\nContent-Type: %.200s\r\nContent-Range: bytes "
				 "%llu-%llu/%llu\r\n\r\n",
				 boundary, ct ? ct : "binary/octet-stream",
				 (unsigned long long)ranges[i].first,
				 (unsigned long long)ranges[i].last, (unsigned long long)size);
			ok = s3d_seg_text(&st->segs[st->nsegs], hdr) == 0;
			total += st->segs[st->nsegs++].len;
			st->segs[st->nsegs].off = ranges[i].first;
			st->segs[st->nsegs].len = ranges[i].last - ranges[i].first + 1;
			total += st->segs[st->nsegs++].len;
		}
		free(ct);
		char end[64];
		snprintf(end, sizeof(end), "\r\n--%s--\r\n", boundary);
		if (ok) {
			ok = s3d_seg_text(&st->segs[st->nsegs], end) == 0;
			total += st->segs[st->nsegs++].len;
		}
	}
	struct MHD_Response *resp = NULL;
	if (ok) {
		if (head) {
			resp = MHD_create_response_from_callback(total, 4096, s3d_no_body, NULL,
								 NULL);
			s3d_stream_free(st);
		} else {
			/* large blocks: fewer callbacks and send calls per object */
			size_t blk = total < S3D_GET_BLOCK ? (size_t)total : S3D_GET_BLOCK;
			resp = MHD_create_response_from_callback(total, blk < 4096 ? 4096 : blk,
								 s3d_stream_read, st,
								 s3d_stream_free);
			if (!resp)
				s3d_stream_free(st);
		}
		st = NULL;
	}
	if (!resp) {
		s3d_stream_free(st);
		core_reader_free(rd);
		core_objinfo_clear(&oi);
		s3d_error(r, "SlowDown", 503, "out of memory");
		return;
	}
	char mct[96];
	snprintf(mct, sizeof(mct), "multipart/byteranges; boundary=%s", boundary);
	s3d_object_headers(r, resp, &oi, 1, nr > 1 ? mct : NULL);
	if (nparts) {
		char pc[24];
		snprintf(pc, sizeof(pc), "%zu", nparts);
		s3d_hadd(resp, "x-amz-mp-parts-count", pc);
	}
	unsigned status = 200;
	if (nr == 1) {
		char cr[96];
		snprintf(cr, sizeof(cr), "bytes %llu-%llu/%llu",
			 (unsigned long long)ranges[0].first, (unsigned long long)ranges[0].last,
			 (unsigned long long)size);
		s3d_hadd(resp, "Content-Range", cr);
		status = 206;
	} else if (nr > 1) {
		status = 206;
	}
	if (!head)
		r->bytes_out += total;
	core_objinfo_clear(&oi);
	s3d_respond(r, status, resp);
}

/* ---- DeleteObject ---------------------------------------------------------- */

void s3d_op_delete_object(s3d_req *r)
{
	const char *vid = s3d_arg_get(r, "versionId");
	if (vid && !*vid) {
		s3d_error(r, "InvalidArgument", 400, "Version id cannot be the empty string");
		return;
	}
	core_del_result res = { 0 };
	sl_err e = { 0 };
	int rc = core_delete(r->srv->core, r->bucket, r->key, vid, &res, &e);
	if (rc == SL_ENOKEY || (rc == SL_ENOVERSION && vid))
		rc = 0;
	if (rc != 0) {
		s3d_error_sl(r, rc, &e);
		return;
	}
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (resp) {
		if (res.delete_marker)
			s3d_hadd(resp, "x-amz-delete-marker", "true");
		if (res.version_id[0])
			s3d_version_header(r, resp, r->bucket, res.version_id);
	}
	s3d_respond(r, 204, resp);
}

/* ---- CopyObject ------------------------------------------------------------ */

int s3d_copy_source(s3d_req *r, char **bucket, char **key, char **version)
{
	*bucket = *key = *version = NULL;
	const char *src = s3d_hdr(r, "x-amz-copy-source");
	if (!src)
		return -1;
	const char *q = strchr(src, '?');
	size_t plen = q ? (size_t)(q - src) : strlen(src);
	char *path = s3d_url_decode(src, plen, 0);
	if (!path)
		return -1;
	const char *p = path;
	if (*p == '/')
		p++;
	const char *slash = strchr(p, '/');
	if (!slash || slash == p || !slash[1]) {
		free(path);
		return -1;
	}
	*bucket = strndup(p, (size_t)(slash - p));
	*key = strdup(slash + 1);
	free(path);
	if (q) {
		const char *v = q + 1;
		if (strncmp(v, "versionId=", 10) != 0)
			goto bad;
		*version = s3d_url_decode(v + 10, strlen(v + 10), 0);
		if (!*version || !**version)
			goto bad;
	}
	if (!*bucket || !*key || strlen(*key) > CORE_MAX_KEY)
		goto bad;
	return 0;
bad:
	free(*bucket);
	free(*key);
	free(*version);
	*bucket = *key = *version = NULL;
	return -1;
}

int s3d_copy_conditions(s3d_req *r, const core_objinfo *src)
{
	int64_t mtime = src->mtime_ms / 1000;
	const char *im = s3d_hdr(r, "x-amz-copy-source-if-match");
	const char *inm = s3d_hdr(r, "x-amz-copy-source-if-none-match");
	const char *ius = s3d_hdr(r, "x-amz-copy-source-if-unmodified-since");
	const char *ims = s3d_hdr(r, "x-amz-copy-source-if-modified-since");
	int fail = 0;
	if (im) {
		fail = !s3d_etag_list_match(im, src->etag);
	} else if (ius) {
		int64_t t = s3d_parse_http_date(ius);
		fail = t >= 0 && mtime > t;
	}
	if (!fail) {
		if (inm) {
			fail = s3d_etag_list_match(inm, src->etag);
		} else if (ims) {
			int64_t t = s3d_parse_http_date(ims);
			fail = t >= 0 && mtime <= t;
		}
	}
	if (fail) {
		s3d_error(r, "PreconditionFailed", 412, NULL);
		return -1;
	}
	return 0;
}

/* Opens the copy source: answers and returns -1 on any failure. */
static int s3d_copy_source_head(s3d_req *r, const char *b, const char *k, const char *v,
				core_objinfo *oi)
{
	sl_err e = { 0 };
	int rc = core_head(r->srv->core, b, k, v, oi, &e);
	if (rc == 0 && oi->delete_marker) {
		s3d_error(r, "InvalidRequest", 400,
			  "The source of a copy request may not specifically refer to a delete "
			  "marker by version id.");
		return -1;
	}
	if (rc != 0) {
		if (rc == SL_ENOVERSION || (rc == SL_ENOKEY && v))
			s3d_error(r, "NoSuchVersion", 404, NULL);
		else
			s3d_error_sl(r, rc, &e);
		return -1;
	}
	return s3d_copy_conditions(r, oi);
}

void s3d_op_copy_object(s3d_req *r)
{
	char *sb, *sk, *sv;
	if (s3d_copy_source(r, &sb, &sk, &sv) != 0) {
		s3d_error(r, "InvalidArgument", 400,
			  "Copy Source must mention the source bucket and key: "
			  "sourcebucket/sourcekey");
		return;
	}
	const char *dir = s3d_hdr(r, "x-amz-metadata-directive");
	int replace = 0;
	if (dir && strcasecmp(dir, "REPLACE") == 0)
		replace = 1;
	else if (dir && strcasecmp(dir, "COPY") != 0) {
		s3d_error(r, "InvalidArgument", 400, "Unknown metadata directive.");
		goto out;
	}
	core_objinfo src = { 0 };
	if (s3d_copy_source_head(r, sb, sk, sv, &src) != 0) {
		core_objinfo_clear(&src);
		goto out;
	}
	if (!replace && strcmp(sb, r->bucket) == 0 && strcmp(sk, r->key) == 0 &&
	    (!sv || src.is_latest)) {
		core_objinfo_clear(&src);
		s3d_error(r, "InvalidRequest", 400,
			  "This copy request is illegal because it is trying to copy an object to "
			  "itself without changing the object's metadata, storage class, website "
			  "redirect location or encryption attributes.");
		goto out;
	}
	core_put_opts po = { 0 };
	if (replace) {
		/* The content is the same, so its stored checksum stays valid. */
		const char *ckn = NULL;
		char *ckv = NULL;
		static const char *const cks[] = { "x-amz-checksum-crc32", "x-amz-checksum-crc32c",
						   "x-amz-checksum-crc64nvme",
						   "x-amz-checksum-sha1", "x-amz-checksum-sha256" };
		for (size_t i = 0; i < 5 && !ckv && src.meta; i++) {
			ckv = core_meta_get(src.meta, cks[i]);
			ckn = cks[i];
		}
		int rc = s3d_meta_from_headers(r, ckv ? ckn : NULL, ckv);
		free(ckv);
		if (rc != 0) {
			core_objinfo_clear(&src);
			goto out;
		}
		po.meta = r->meta;
	}
	s3d_write_conditions(r, &po.cond);
	char src_version[64];
	snprintf(src_version, sizeof(src_version), "%s", src.version_id ? src.version_id : "");
	core_objinfo_clear(&src);
	core_objinfo oi = { 0 };
	sl_err e = { 0 };
	int rc = core_copy(r->srv->core, sb, sk, sv, r->bucket, r->key, &po, &oi, &e);
	if (rc != 0) {
		core_objinfo_clear(&oi);
		s3d_error_sl(r, rc, &e);
		goto out;
	}
	s3d_buf b = { 0 };
	s3d_buf_puts(&b, S3D_XML_HEAD "<CopyObjectResult " S3D_XMLNS ">");
	s3d_buf_elem_time(&b, "LastModified", oi.mtime_ms);
	s3d_buf_printf(&b, "<ETag>&quot;%s&quot;</ETag></CopyObjectResult>", oi.etag);
	struct MHD_Response *resp = s3d_xml_response(r, &b);
	if (resp) {
		s3d_version_header(r, resp, r->bucket, oi.version_id);
		if (src_version[0] && strcmp(src_version, CORE_NULL_VERSION) != 0)
			s3d_hadd(resp, "x-amz-copy-source-version-id", src_version);
	}
	core_objinfo_clear(&oi);
	s3d_respond(r, 200, resp);
out:
	free(sb);
	free(sk);
	free(sv);
}
