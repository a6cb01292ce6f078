/*
 * mpu.c - multipart upload operations: Create, UploadPart (streamed into a
 * core part writer), UploadPartCopy (ranges shared by the core), ListParts,
 * Complete (metadata-only in the core; part order, ETags and the minimum
 * part size checked there) and Abort. Not here: ListMultipartUploads
 * (list.c), storage of parts (core/).
 */
#include <stdlib.h>
#include <string.h>

#include "s3d/s3d_int.h"

#define S3D_MAX_PARTS 10000

/* uploadId and (optionally) partNumber. Answers and -1 if bad. */
static int s3d_mpu_args(s3d_req *r, int need_part)
{
	const char *u = s3d_arg_get(r, "uploadId");
	if (!u || !*u) {
		s3d_error(r, "InvalidArgument", 400, "The uploadId parameter is required.");
		return -1;
	}
	if (strlen(u) >= 40) {
		s3d_error(r, "NoSuchUpload", 404, NULL);
		return -1;
	}
	free(r->upload_id);
	r->upload_id = strdup(u);
	if (!r->upload_id) {
		s3d_error(r, "SlowDown", 503, "out of memory");
		return -1;
	}
	if (need_part) {
		uint64_t pn;
		const char *p = s3d_arg_get(r, "partNumber");
		if (!p || s3d_parse_u64(p, &pn) != 0 || pn < 1 || pn > S3D_MAX_PARTS) {
			s3d_error(r, "InvalidArgument", 400,
				  "Part number must be an integer between 1 and 10000, inclusive");
			return -1;
		}
		r->part_number = (int)pn;
	}
	return 0;
}

void s3d_op_mpu_create(s3d_req *r)
{
	if (s3d_meta_from_headers(r, NULL, NULL) != 0)
		return;
	char uid[40];
	sl_err e = { 0 };
	int rc = core_mpu_create(r->srv->core, r->bucket, r->key, r->meta, uid, &e);
	if (rc != 0) {
		s3d_error_sl(r, rc, &e);
		return;
	}
	s3d_buf b = { 0 };
	s3d_buf_puts(&b, S3D_XML_HEAD "<InitiateMultipartUploadResult " S3D_XMLNS ">");
	s3d_buf_elem(&b, "Bucket", r->bucket);
	s3d_buf_elem(&b, "Key", r->key);
	s3d_buf_elem(&b, "UploadId", uid);
	s3d_buf_puts(&b, "</InitiateMultipartUploadResult>");
	s3d_respond_xml(r, 200, &b);
}

static void s3d_mpu_part_finish(s3d_req *r)
{
	core_part part = { 0 };
	sl_err e = { 0 };
	core_writer *w = r->w;
	r->w = NULL;
	int rc = core_mpu_part_commit(w, r->has_md5 ? r->content_md5 : NULL, &part, &e);
	if (rc != 0) {
		s3d_error_sl(r, rc, &e);
		return;
	}
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (resp) {
		char q[64];
		snprintf(q, sizeof(q), "\"%s\"", part.etag);
		s3d_hadd(resp, "ETag", q);
		const char *ckn;
		char ckv[CHECKSUM_B64_MAX];
		if (s3d_body_checksum(r, &ckn, ckv))
			s3d_hadd(resp, ckn, ckv);
	}
	s3d_respond(r, 200, resp);
}

void s3d_op_mpu_part(s3d_req *r)
{
	if (s3d_mpu_args(r, 1) != 0)
		return;
	uint64_t max = r->srv->o.max_object_size;
	if (max > (5ull << 30))
		max = 5ull << 30;
	if (s3d_body_setup(r, S3D_BODY_WRITER, max) != 0)
		return;
	sl_err e = { 0 };
	int rc = core_mpu_part_begin(r->srv->core, r->bucket, r->key, r->upload_id, r->part_number,
				     &r->w, &e);
	if (rc != 0) {
		r->w = NULL;
		s3d_error_sl(r, rc, &e);
		return;
	}
	r->part = 1;
	r->finish = s3d_mpu_part_finish;
}

void s3d_op_mpu_part_copy(s3d_req *r)
{
	if (s3d_mpu_args(r, 1) != 0)
		return;
	char *sb, *sk, *sv;
	if (s3d_copy_source(r, &sb, &sk, &sv) != 0) {
		s3d_error(r, "InvalidArgument", 400,
			  "Copy Source must mention the source bucket and key: "
			  "sourcebucket/sourcekey");
		return;
	}
	core_objinfo src = { 0 };
	sl_err e = { 0 };
	int rc = core_head(r->srv->core, sb, sk, sv, &src, &e);
	if (rc == 0 && src.delete_marker) {
		s3d_error(r, "InvalidRequest", 400,
			  "The source of a copy request may not specifically refer to a delete "
			  "marker by version id.");
		goto out;
	}
	if (rc != 0) {
		if (rc == SL_ENOVERSION || (rc == SL_ENOKEY && sv))
			s3d_error(r, "NoSuchVersion", 404, NULL);
		else
			s3d_error_sl(r, rc, &e);
		goto out;
	}
	if (s3d_copy_conditions(r, &src) != 0)
		goto out;
	uint64_t off = 0, len = src.size;
	const char *range = s3d_hdr(r, "x-amz-copy-source-range");
	if (range) {
		uint64_t a, b;
		char tmp[64];
		const char *dash;
		if (strncmp(range, "bytes=", 6) != 0 || !(dash = strchr(range + 6, '-')) ||
		    (size_t)(dash - range - 6) >= sizeof(tmp)) {
			s3d_error(r, "InvalidArgument", 400,
				  "The x-amz-copy-source-range value must be of the form "
				  "bytes=first-last where first and last are the zero-based "
				  "offsets of the first and last bytes to copy");
			goto out;
		}
		memcpy(tmp, range + 6, (size_t)(dash - range - 6));
		tmp[dash - range - 6] = '\0';
		if (s3d_parse_u64(tmp, &a) != 0 || s3d_parse_u64(dash + 1, &b) != 0 || b < a) {
			s3d_error(r, "InvalidArgument", 400,
				  "The x-amz-copy-source-range value must be of the form "
				  "bytes=first-last where first and last are the zero-based "
				  "offsets of the first and last bytes to copy");
			goto out;
		}
		if (b >= src.size) {
			char m[128];
			snprintf(m, sizeof(m),
				 "Range specified is not valid for source object of size: %llu",
				 (unsigned long long)src.size);
			s3d_error(r, "InvalidRange", 416, m);
			goto out;
		}
		off = a;
		len = b - a + 1;
	}
	if (len > (5ull << 30)) {
		s3d_error(r, "EntityTooLarge", 400, NULL);
		goto out;
	}
	core_part part = { 0 };
	rc = core_mpu_part_copy(r->srv->core, r->bucket, r->key, r->upload_id, r->part_number, sb,
				sk, sv, off, len, &part, &e);
	if (rc != 0) {
		s3d_error_sl(r, rc, &e);
		goto out;
	}
	s3d_buf b = { 0 };
	s3d_buf_puts(&b, S3D_XML_HEAD "<CopyPartResult " S3D_XMLNS ">");
	s3d_buf_elem_time(&b, "LastModified", part.mtime_ms);
	s3d_buf_printf(&b, "<ETag>&quot;%s&quot;</ETag></CopyPartResult>", part.etag);
	struct MHD_Response *resp = s3d_xml_response(r, &b);
	if (resp && src.version_id && strcmp(src.version_id, CORE_NULL_VERSION) != 0)
		s3d_hadd(resp, "x-amz-copy-source-version-id", src.version_id);
	s3d_respond(r, 200, resp);
out:
	core_objinfo_clear(&src);
	free(sb);
	free(sk);
	free(sv);
}

typedef struct complete_ctx {
	core_part *parts;
	size_t n;
	int have_num, have_etag;
} complete_ctx;

static int s3d_complete_xml(void *ctx, int depth, const char *const *path, const char *text)
{
	complete_ctx *c = ctx;
	if (depth == 1 && strcmp(path[0], "CompleteMultipartUpload") != 0)
		return -1;
	if (depth == 2 && strcmp(path[1], "Part") == 0) {
		if (!text) {
			if (c->n >= S3D_MAX_PARTS)
				return -1;
			memset(&c->parts[c->n], 0, sizeof(c->parts[c->n]));
			c->have_num = c->have_etag = 0;
		} else {
			if (!c->have_num || !c->have_etag)
				return -1;
			c->n++;
		}
		return 0;
	}
	if (!text || depth != 3 || strcmp(path[1], "Part") != 0)
		return 0;
	if (strcmp(path[2], "PartNumber") == 0) {
		uint64_t pn;
		if (s3d_parse_u64(text, &pn) != 0 || pn < 1 || pn > S3D_MAX_PARTS)
			return -1;
		c->parts[c->n].number = (int)pn;
		c->have_num = 1;
	} else if (strcmp(path[2], "ETag") == 0) {
		s3d_etag_unquote(text, c->parts[c->n].etag, sizeof(c->parts[c->n].etag));
		c->have_etag = 1;
	}
	return 0;
}

int s3d_parse_complete(const char *doc, size_t len, core_part **parts, size_t *n)
{
	complete_ctx c = { 0 };
	*parts = NULL;
	*n = 0;
	c.parts = calloc(S3D_MAX_PARTS + 1, sizeof(*c.parts));
	if (!c.parts)
		return -2;
	if (!doc || s3d_xml_parse(doc, len, s3d_complete_xml, &c) != 0 || c.n == 0) {
		free(c.parts);
		return -1;
	}
	*parts = c.parts;
	*n = c.n;
	return 0;
}

static void s3d_mpu_complete_finish(s3d_req *r)
{
	complete_ctx c = { 0 };
	int pr = s3d_parse_complete(r->mem.p, r->mem.len, &c.parts, &c.n);
	if (pr == -2) {
		s3d_error(r, "SlowDown", 503, "out of memory");
		return;
	}
	if (pr < 0) {
		s3d_error(r, "MalformedXML", 400, NULL);
		return;
	}
	/* AWS reports the order before anything about the parts themselves. */
	for (size_t i = 1; i < c.n; i++) {
		if (c.parts[i].number <= c.parts[i - 1].number) {
			free(c.parts);
			s3d_error(r, "InvalidPartOrder", 400, NULL);
			return;
		}
	}
	core_cond cond = { 0 };
	const char *im = s3d_hdr(r, "If-Match");
	const char *inm = s3d_hdr(r, "If-None-Match");
	char tm[128], tn[128];
	if (im) {
		s3d_etag_unquote(im, tm, sizeof(tm));
		cond.if_match = tm;
	}
	if (inm) {
		s3d_etag_unquote(inm, tn, sizeof(tn));
		cond.if_none_match = tn;
	}
	core_objinfo oi = { 0 };
	sl_err e = { 0 };
	int rc = core_mpu_complete(r->srv->core, r->bucket, r->key, r->upload_id, c.parts, c.n,
				   r->srv->o.min_part_size, &cond, &oi, &e);
	free(c.parts);
	if (rc != 0) {
		core_objinfo_clear(&oi);
		s3d_error_sl(r, rc, &e);
		return;
	}
	s3d_buf b = { 0 };
	s3d_buf_puts(&b, S3D_XML_HEAD "<CompleteMultipartUploadResult " S3D_XMLNS ">");
	const char *host = s3d_hdr(r, "Host");
	char *ek = s3d_url_encode(r->key);
	s3d_buf_puts(&b, "<Location>http://");
	s3d_buf_xml(&b, host ? host : "localhost");
	s3d_buf_puts(&b, "/");
	s3d_buf_xml(&b, r->bucket);
	s3d_buf_puts(&b, "/");
	s3d_buf_xml(&b, ek ? ek : "");
	s3d_buf_puts(&b, "</Location>");
	free(ek);
	s3d_buf_elem(&b, "Bucket", r->bucket);
	s3d_buf_elem(&b, "Key", r->key);
	s3d_buf_printf(&b, "<ETag>&quot;%s&quot;</ETag>", oi.etag);
	s3d_buf_puts(&b, "</CompleteMultipartUploadResult>");
	struct MHD_Response *resp = s3d_xml_response(r, &b);
	if (resp && oi.version_id && strcmp(oi.version_id, CORE_NULL_VERSION) != 0)
		s3d_hadd(resp, "x-amz-version-id", oi.version_id);
	core_objinfo_clear(&oi);
	s3d_respond(r, 200, resp);
}

void s3d_op_mpu_complete(s3d_req *r)
{
	if (s3d_mpu_args(r, 0) != 0)
		return;
	if (s3d_body_setup(r, S3D_BODY_MEM, S3D_MAX_XML_BODY) != 0)
		return;
	r->finish = s3d_mpu_complete_finish;
}

void s3d_op_mpu_abort(s3d_req *r)
{
	if (s3d_mpu_args(r, 0) != 0)
		return;
	sl_err e = { 0 };
	int rc = core_mpu_abort(r->srv->core, r->bucket, r->key, r->upload_id, &e);
	if (rc != 0) {
		s3d_error_sl(r, rc, &e);
		return;
	}
	s3d_respond_empty(r, 204);
}

void s3d_op_mpu_list_parts(s3d_req *r)
{
	if (s3d_mpu_args(r, 0) != 0)
		return;
	uint64_t marker = 0, maxp = 1000;
	const char *pm = s3d_arg_get(r, "part-number-marker");
	const char *mp = s3d_arg_get(r, "max-parts");
	if ((pm && s3d_parse_u64(pm, &marker) != 0) || (mp && s3d_parse_u64(mp, &maxp) != 0) ||
	    marker > S3D_MAX_PARTS) {
		s3d_error(r, "InvalidArgument", 400, "Invalid part-number-marker or max-parts.");
		return;
	}
	if (maxp > 1000)
		maxp = 1000;
	core_part *parts = NULL;
	size_t n = 0;
	int truncated = 0;
	sl_err e = { 0 };
	int rc = core_mpu_list_parts(r->srv->core, r->bucket, r->key, r->upload_id, (int)marker,
				     (int)maxp, &parts, &n, &truncated, &e);
	if (rc != 0) {
		s3d_error_sl(r, rc, &e);
		return;
	}
	s3d_buf b = { 0 };
	s3d_buf_puts(&b, S3D_XML_HEAD "<ListPartsResult " S3D_XMLNS ">");
	s3d_buf_elem(&b, "Bucket", r->bucket);
	s3d_buf_elem(&b, "Key", r->key);
	s3d_buf_elem(&b, "UploadId", r->upload_id);
	s3d_buf_owner(r, &b, "Initiator");
	s3d_buf_owner(r, &b, "Owner");
	s3d_buf_puts(&b, "<StorageClass>STANDARD</StorageClass>");
	s3d_buf_printf(&b, "<PartNumberMarker>%llu</PartNumberMarker>", (unsigned long long)marker);
	if (n > 0)
		s3d_buf_printf(&b, "<NextPartNumberMarker>%d</NextPartNumberMarker>",
			       parts[n - 1].number);
	s3d_buf_printf(&b, "<MaxParts>%llu</MaxParts>", (unsigned long long)maxp);
	s3d_buf_printf(&b, "<IsTruncated>%s</IsTruncated>", truncated ? "true" : "false");
	for (size_t i = 0; i < n; i++) {
		s3d_buf_puts(&b, "<Part>");
		s3d_buf_printf(&b, "<PartNumber>%d</PartNumber>", parts[i].number);
		s3d_buf_elem_time(&b, "LastModified", parts[i].mtime_ms);
		s3d_buf_printf(&b, "<ETag>&quot;%s&quot;</ETag>", parts[i].etag);
		s3d_buf_printf(&b, "<Size>%llu</Size>", (unsigned long long)parts[i].size);
		s3d_buf_puts(&b, "</Part>");
	}
	s3d_buf_puts(&b, "</ListPartsResult>");
	free(parts);
	s3d_respond_xml(r, 200, &b);
}
