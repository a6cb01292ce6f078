/*
 * list.c - the listing operations: ListObjects (V1, marker), ListObjectsV2
 * (continuation token, start-after, fetch-owner, key count),
 * ListObjectVersions (key/version markers, delete markers) and
 * ListMultipartUploads, with prefix, delimiter, max-keys (capped at 1000)
 * and encoding-type=url. The core does the range scans; this file checks
 * parameters and writes the XML boto3 parses. Not here: ListParts (mpu.c).
 */
#include <stdlib.h>
#include <string.h>

#include "s3d/s3d_int.h"

/* Reads a max-* parameter: default 1000, capped at 1000. Answers and -1 if bad. */
static int s3d_max_param(s3d_req *r, const char *name, int *out)
{
	const char *v = s3d_arg_get(r, name);
	*out = 1000;
	if (!v)
		return 0;
	uint64_t n;
	if (s3d_parse_u64(v, &n) != 0) {
		char m[96];
		snprintf(m, sizeof(m), "Provided %s not an integer or within integer range", name);
		s3d_error(r, "InvalidArgument", 400, m);
		return -1;
	}
	*out = n > 1000 ? 1000 : (int)n;
	return 0;
}

/* encoding-type: absent or "url". Answers and -1 otherwise. */
static int s3d_encoding_param(s3d_req *r, int *url)
{
	const char *v = s3d_arg_get(r, "encoding-type");
	*url = 0;
	if (!v)
		return 0;
	if (strcmp(v, "url") != 0) {
		s3d_error(r, "InvalidArgument", 400,
			  "Invalid Encoding Method specified in Request");
		return -1;
	}
	*url = 1;
	return 0;
}

static void s3d_etag_elem(s3d_buf *b, const char *etag)
{
	s3d_buf_puts(b, "<ETag>&quot;");
	s3d_buf_xml(b, etag);
	s3d_buf_puts(b, "&quot;</ETag>");
}

static void s3d_prefixes(s3d_buf *b, const core_list_result *lr, int url)
{
	for (size_t i = 0; i < lr->nprefixes; i++) {
		s3d_buf_puts(b, "<CommonPrefixes>");
		s3d_buf_elem_enc(b, "Prefix", lr->prefixes[i], url);
		s3d_buf_puts(b, "</CommonPrefixes>");
	}
}

/* The V2 continuation token: base64 of the key to resume after. */
static char *s3d_token_encode(const char *marker)
{
	size_t n = strlen(marker);
	char *out = malloc(n * 4 / 3 + 8);
	if (!out)
		return NULL;
	if (checksum_base64_encode((const unsigned char *)marker, n, out, n * 4 / 3 + 8) < 0) {
		free(out);
		return NULL;
	}
	return out;
}

static char *s3d_token_decode(const char *tok)
{
	size_t n = strlen(tok);
	if (n == 0 || n > 4 * (CORE_MAX_KEY + 2) / 3 + 8)
		return NULL;
	unsigned char *out = malloc(n + 1);
	if (!out)
		return NULL;
	int len = checksum_base64_decode(tok, out, n);
	if (len <= 0 || memchr(out, 0, (size_t)len)) {
		free(out);
		return NULL;
	}
	out[len] = '\0';
	return (char *)out;
}

void s3d_op_list_objects(s3d_req *r, int v2)
{
	int max, url;
	if (s3d_max_param(r, "max-keys", &max) != 0 || s3d_encoding_param(r, &url) != 0)
		return;
	const char *prefix = s3d_arg_get(r, "prefix");
	const char *delim = s3d_arg_get(r, "delimiter");
	const char *marker = v2 ? NULL : s3d_arg_get(r, "marker");
	const char *token = v2 ? s3d_arg_get(r, "continuation-token") : NULL;
	const char *start_after = v2 ? s3d_arg_get(r, "start-after") : NULL;
	const char *fo = s3d_arg_get(r, "fetch-owner");
	int owner = !v2 || (fo && strcmp(fo, "true") == 0);
	char *tok_key = NULL;
	if (token) {
		tok_key = s3d_token_decode(token);
		if (!tok_key) {
			s3d_error(r, "InvalidArgument", 400,
				  "The continuation token provided is incorrect");
			return;
		}
	}
	core_list_opts lo = { 0 };
	lo.prefix = prefix;
	lo.delimiter = delim && *delim ? delim : NULL;
	lo.start_after = tok_key ? tok_key : (v2 ? start_after : marker);
	if (lo.start_after && !*lo.start_after)
		lo.start_after = NULL;
	lo.max_keys = max;
	core_list_result lr = { 0 };
	sl_err e = { 0 };
	int rc;
	if (max == 0) {
		core_bucket bk;
		rc = core_bucket_get(r->srv->core, r->bucket, &bk, &e);
	} else {
		rc = core_list(r->srv->core, r->bucket, &lo, &lr, &e);
	}
	if (rc != 0) {
		free(tok_key);
		core_list_result_clear(&lr);
		s3d_error_sl(r, rc, &e);
		return;
	}
	s3d_buf b = { 0 };
	s3d_buf_puts(&b, S3D_XML_HEAD "<ListBucketResult " S3D_XMLNS ">");
	s3d_buf_elem(&b, "Name", r->bucket);
	s3d_buf_elem_enc(&b, "Prefix", prefix ? prefix : "", url);
	if (v2) {
		s3d_buf_elem(&b, "ContinuationToken", token);
		s3d_buf_elem_enc(&b, "StartAfter", start_after, url);
		s3d_buf_printf(&b, "<KeyCount>%zu</KeyCount>", lr.nobjs + lr.nprefixes);
	} else {
		s3d_buf_elem_enc(&b, "Marker", marker ? marker : "", url);
	}
	s3d_buf_printf(&b, "<MaxKeys>%d</MaxKeys>", max);
	if (delim && *delim)
		s3d_buf_elem_enc(&b, "Delimiter", delim, url);
	if (url)
		s3d_buf_puts(&b, "<EncodingType>url</EncodingType>");
	s3d_buf_printf(&b, "<IsTruncated>%s</IsTruncated>", lr.truncated ? "true" : "false");
	if (lr.truncated && lr.next_marker) {
		if (v2) {
			char *t = s3d_token_encode(lr.next_marker);
			if (!t)
				b.oom = 1;
			s3d_buf_elem(&b, "NextContinuationToken", t);
			free(t);
		} else {
			s3d_buf_elem_enc(&b, "NextMarker", lr.next_marker, url);
		}
	}
	for (size_t i = 0; i < lr.nobjs; i++) {
		const core_objinfo *o = &lr.objs[i];
		s3d_buf_puts(&b, "<Contents>");
		s3d_buf_elem_enc(&b, "Key", o->key, url);
		s3d_buf_elem_time(&b, "LastModified", o->mtime_ms);
		s3d_etag_elem(&b, o->etag);
		s3d_buf_printf(&b, "<Size>%llu</Size>", (unsigned long long)o->size);
		if (owner)
			s3d_buf_owner(r, &b, "Owner");
		s3d_buf_puts(&b, "<StorageClass>STANDARD</StorageClass></Contents>");
	}
	s3d_prefixes(&b, &lr, url);
	s3d_buf_puts(&b, "</ListBucketResult>");
	free(tok_key);
	core_list_result_clear(&lr);
	s3d_respond_xml(r, 200, &b);
}

void s3d_op_list_versions(s3d_req *r)
{
	int max, url;
	if (s3d_max_param(r, "max-keys", &max) != 0 || s3d_encoding_param(r, &url) != 0)
		return;
	const char *prefix = s3d_arg_get(r, "prefix");
	const char *delim = s3d_arg_get(r, "delimiter");
	const char *km = s3d_arg_get(r, "key-marker");
	const char *vm = s3d_arg_get(r, "version-id-marker");
	if (vm && *vm && (!km || !*km)) {
		s3d_error(r, "InvalidArgument", 400,
			  "A version-id marker cannot be specified without a key marker.");
		return;
	}
	core_list_opts lo = { 0 };
	lo.prefix = prefix;
	lo.delimiter = delim && *delim ? delim : NULL;
	lo.start_after = km && *km ? km : NULL;
	lo.version_marker = vm && *vm ? vm : NULL;
	lo.max_keys = max;
	lo.versions = 1;
	core_list_result lr = { 0 };
	sl_err e = { 0 };
	int rc;
	if (max == 0) {
		core_bucket bk;
		rc = core_bucket_get(r->srv->core, r->bucket, &bk, &e);
	} else {
		rc = core_list(r->srv->core, r->bucket, &lo, &lr, &e);
	}
	if (rc != 0) {
		core_list_result_clear(&lr);
		s3d_error_sl(r, rc, &e);
		return;
	}
	s3d_buf b = { 0 };
	s3d_buf_puts(&b, S3D_XML_HEAD "<ListVersionsResult " S3D_XMLNS ">");
	s3d_buf_elem(&b, "Name", r->bucket);
	s3d_buf_elem_enc(&b, "Prefix", prefix ? prefix : "", url);
	s3d_buf_elem_enc(&b, "KeyMarker", km ? km : "", url);
	s3d_buf_elem(&b, "VersionIdMarker", vm ? vm : "");
	if (lr.truncated) {
		s3d_buf_elem_enc(&b, "NextKeyMarker", lr.next_marker, url);
		s3d_buf_elem(&b, "NextVersionIdMarker", lr.next_version_marker);
	}
	s3d_buf_printf(&b, "<MaxKeys>%d</MaxKeys>", max);
	if (delim && *delim)
		s3d_buf_elem_enc(&b, "Delimiter", delim, url);
	if (url)
		s3d_buf_puts(&b, "<EncodingType>url</EncodingType>");
	s3d_buf_printf(&b, "<IsTruncated>%s</IsTruncated>", lr.truncated ? "true" : "false");
	for (size_t i = 0; i < lr.nobjs; i++) {
		const core_objinfo *o = &lr.objs[i];
		const char *el = o->delete_marker ? "DeleteMarker" : "Version";
		s3d_buf_printf(&b, "<%s>", el);
		s3d_buf_elem_enc(&b, "Key", o->key, url);
		s3d_buf_elem(&b, "VersionId", o->version_id ? o->version_id : CORE_NULL_VERSION);
		s3d_buf_printf(&b, "<IsLatest>%s</IsLatest>", o->is_latest ? "true" : "false");
		s3d_buf_elem_time(&b, "LastModified", o->mtime_ms);
		if (!o->delete_marker) {
			s3d_etag_elem(&b, o->etag);
			s3d_buf_printf(&b, "<Size>%llu</Size>", (unsigned long long)o->size);
			s3d_buf_puts(&b, "<StorageClass>STANDARD</StorageClass>");
		}
		s3d_buf_owner(r, &b, "Owner");
		s3d_buf_printf(&b, "</%s>", el);
	}
	s3d_prefixes(&b, &lr, url);
	s3d_buf_puts(&b, "</ListVersionsResult>");
	core_list_result_clear(&lr);
	s3d_respond_xml(r, 200, &b);
}

void s3d_op_list_uploads(s3d_req *r)
{
	int max, url;
	if (s3d_max_param(r, "max-uploads", &max) != 0 || s3d_encoding_param(r, &url) != 0)
		return;
	const char *prefix = s3d_arg_get(r, "prefix");
	const char *km = s3d_arg_get(r, "key-marker");
	const char *um = s3d_arg_get(r, "upload-id-marker");
	core_upload *ups = NULL;
	size_t n = 0;
	int truncated = 0;
	sl_err e = { 0 };
	int rc = core_mpu_list(r->srv->core, r->bucket, prefix, km && *km ? km : NULL,
			       um && *um ? um : NULL, max, &ups, &n, &truncated, &e);
	if (rc != 0) {
		s3d_error_sl(r, rc, &e);
		return;
	}
	s3d_buf b = { 0 };
	s3d_buf_puts(&b, S3D_XML_HEAD "<ListMultipartUploadsResult " S3D_XMLNS ">");
	s3d_buf_elem(&b, "Bucket", r->bucket);
	s3d_buf_elem_enc(&b, "KeyMarker", km ? km : "", url);
	s3d_buf_elem(&b, "UploadIdMarker", um ? um : "");
	if (truncated && n > 0) {
		s3d_buf_elem_enc(&b, "NextKeyMarker", ups[n - 1].key, url);
		s3d_buf_elem(&b, "NextUploadIdMarker", ups[n - 1].upload_id);
	}
	s3d_buf_elem_enc(&b, "Prefix", prefix ? prefix : "", url);
	s3d_buf_printf(&b, "<MaxUploads>%d</MaxUploads>", max);
	if (url)
		s3d_buf_puts(&b, "<EncodingType>url</EncodingType>");
	s3d_buf_printf(&b, "<IsTruncated>%s</IsTruncated>", truncated ? "true" : "false");
	for (size_t i = 0; i < n; i++) {
		s3d_buf_puts(&b, "<Upload>");
		s3d_buf_elem_enc(&b, "Key", ups[i].key, url);
		s3d_buf_elem(&b, "UploadId", ups[i].upload_id);
		s3d_buf_owner(r, &b, "Initiator");
		s3d_buf_owner(r, &b, "Owner");
		s3d_buf_puts(&b, "<StorageClass>STANDARD</StorageClass>");
		s3d_buf_elem_time(&b, "Initiated", ups[i].created_ms);
		s3d_buf_puts(&b, "</Upload>");
	}
	s3d_buf_puts(&b, "</ListMultipartUploadsResult>");
	core_uploads_free(ups, n);
	s3d_respond_xml(r, 200, &b);
}
