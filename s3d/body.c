/*
 * body.c - the request-body pipeline of the S3 daemon. Raw body pieces from
 * MHD go through the aws-chunked decoder (streaming SigV4 modes) or the
 * payload SHA-256 (hex payload hash mode), then through the checksum named
 * by an x-amz-checksum-* header, into the sink: a core writer (objects and
 * parts, streamed, never buffered whole) or a bounded memory buffer (XML
 * documents). Every check that needs the whole body runs in s3d_body_end,
 * before anything is committed. Not here: what the body means.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "s3d/s3d_int.h"

static const char *const s3d_ck_headers[] = {
	"x-amz-checksum-crc32", "x-amz-checksum-crc32c", "x-amz-checksum-crc64nvme",
	"x-amz-checksum-sha1",	"x-amz-checksum-sha256",
};

int s3d_content_md5(s3d_req *r)
{
	const char *v = s3d_hdr(r, "Content-MD5");
	if (!v)
		return 0;
	unsigned char raw[32];
	if (checksum_base64_decode(v, raw, sizeof(raw)) != 16) {
		s3d_error(r, "InvalidDigest", 400, NULL);
		return -1;
	}
	memcpy(r->content_md5, raw, 16);
	r->has_md5 = 1;
	return 0;
}

/* The decoded payload: counted, checksummed, handed to the sink. */
static int s3d_body_payload(s3d_req *r, const void *data, size_t len)
{
	if (r->responded)
		return -1;
	r->payload_bytes += len;
	if (r->payload_bytes > r->expect_len) {
		if (r->body == S3D_BODY_MEM)
			s3d_error(r, "MaxMessageLengthExceeded", 400, NULL);
		else
			s3d_error(r, "EntityTooLarge", 400, NULL);
		return -1;
	}
	if (r->ck_algo)
		checksum_update(&r->ck, data, len);
	if (r->md5)
		EVP_DigestUpdate(r->md5, data, len);
	if (r->body == S3D_BODY_MEM) {
		s3d_buf_add(&r->mem, data, len);
		if (r->mem.oom) {
			s3d_error(r, "SlowDown", 503, "out of memory");
			return -1;
		}
	} else if (r->body == S3D_BODY_WRITER && r->w) {
		sl_err e = { 0 };
		int rc = core_put_write(r->w, data, len, &e);
		if (rc != 0) {
			s3d_error_sl(r, rc, &e);
			return -1;
		}
	}
	return 0;
}

static int s3d_chunk_out(void *ctx, const void *data, size_t len)
{
	return s3d_body_payload(ctx, data, len) == 0 ? 0 : 1;
}

int s3d_body_setup(s3d_req *r, int kind, uint64_t max)
{
	r->body = kind;
	int mode = r->auth.payload_mode;
	int streaming = mode == SIGV4_PAYLOAD_STREAMING_SIGNED ||
			mode == SIGV4_PAYLOAD_STREAMING_SIGNED_TRAILER ||
			mode == SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER;
	const char *te = s3d_hdr(r, "Transfer-Encoding");
	int te_chunked = te && strcasestr(te, "chunked") != NULL;
	if (streaming) {
		if (r->auth.decoded_length < 0 && kind == S3D_BODY_WRITER) {
			s3d_error(r, "MissingContentLength", 411,
				  "x-amz-decoded-content-length is required for aws-chunked "
				  "bodies.");
			return -1;
		}
		if (r->auth.decoded_length >= 0 && (uint64_t)r->auth.decoded_length > max) {
			s3d_error(r,
				  kind == S3D_BODY_MEM ? "MaxMessageLengthExceeded"
						       : "EntityTooLarge",
				  400, NULL);
			return -1;
		}
		if (r->content_length < 0 && !te_chunked) {
			s3d_error(r, "MissingContentLength", 411, NULL);
			return -1;
		}
		int st = chunked_new_from_auth(&r->auth, s3d_chunk_out, r, &r->dec);
		if (st != SIGV4_OK) {
			s3d_error(r, sigv4_status_code(st), (unsigned)sigv4_status_http(st),
				  "The x-amz-trailer header names an unsupported checksum.");
			return -1;
		}
		r->trailer_algo = checksum_algo_from_name(r->auth.trailer);
	} else {
		if (r->content_length < 0 && !te_chunked && kind == S3D_BODY_WRITER) {
			s3d_error(r, "MissingContentLength", 411, NULL);
			return -1;
		}
		if (r->content_length >= 0 && (uint64_t)r->content_length > max) {
			s3d_error(r,
				  kind == S3D_BODY_MEM ? "MaxMessageLengthExceeded"
						       : "EntityTooLarge",
				  400, NULL);
			return -1;
		}
		if (mode == SIGV4_PAYLOAD_HASH) {
			r->sha = EVP_MD_CTX_new();
			if (!r->sha || EVP_DigestInit_ex(r->sha, EVP_sha256(), NULL) != 1) {
				s3d_error(r, "InternalError", 500, NULL);
				return -1;
			}
		}
	}
	r->expect_len = max;

	/* A checksum sent as a header is verified over the whole payload. */
	int found = 0;
	for (size_t i = 0; i < sizeof(s3d_ck_headers) / sizeof(s3d_ck_headers[0]); i++) {
		const char *v = s3d_hdr(r, s3d_ck_headers[i]);
		if (!v)
			continue;
		int algo = checksum_algo_from_name(s3d_ck_headers[i]);
		if (found++) {
			s3d_error(r, "InvalidRequest", 400,
				  "Expecting a single x-amz-checksum- header. Multiple checksum "
				  "Types are not allowed.");
			return -1;
		}
		if (!checksum_value_valid(algo, v)) {
			char m[128];
			snprintf(m, sizeof(m), "Value for %s header is invalid.",
				 s3d_ck_headers[i]);
			s3d_error(r, "InvalidRequest", 400, m);
			return -1;
		}
		if (checksum_init(&r->ck, algo) != 0) {
			s3d_error(r, "InternalError", 500, NULL);
			return -1;
		}
		r->ck_algo = algo;
		snprintf(r->ck_expect, sizeof(r->ck_expect), "%s", v);
	}
	if (!found && !r->trailer_algo) {
		/* Algorithm named without a value: compute it and store it, as S3 does. */
		const char *alg = s3d_hdr(r, "x-amz-sdk-checksum-algorithm");
		if (!alg)
			alg = s3d_hdr(r, "x-amz-checksum-algorithm");
		if (alg) {
			int algo = checksum_algo_from_name(alg);
			if (!algo) {
				s3d_error(r, "InvalidRequest", 400,
					  "Checksum algorithm provided is unsupported.");
				return -1;
			}
			if (checksum_init(&r->ck, algo) != 0) {
				s3d_error(r, "InternalError", 500, NULL);
				return -1;
			}
			r->ck_algo = algo;
			r->ck_store_only = 1;
		}
	}
	if (s3d_content_md5(r) != 0)
		return -1;
	if (kind == S3D_BODY_MEM) {
		if (r->has_md5) {
			r->md5 = EVP_MD_CTX_new();
			if (!r->md5 || EVP_DigestInit_ex(r->md5, EVP_md5(), NULL) != 1) {
				s3d_error(r, "InternalError", 500, NULL);
				return -1;
			}
		}
		r->mem_max = max;
	}
	return 0;
}

static void s3d_body_sigv4_error(s3d_req *r, int st, const char *detail)
{
	if (r->responded)
		return; /* the sink already answered (SIGV4_ABORTED) */
	const char *code = sigv4_status_code(st);
	unsigned http = (unsigned)sigv4_status_http(st);
	if (st == SIGV4_INVALID_ARGUMENT && r->payload_bytes > r->expect_len)
		code = "EntityTooLarge";
	s3d_error(r, code, http, detail && *detail ? detail : sigv4_status_message(st));
}

int s3d_body_feed(s3d_req *r, const char *data, size_t len)
{
	if (r->responded)
		return -1;
	if (r->body == S3D_BODY_NONE)
		return 0; /* a body the operation does not use is ignored */
	if (r->dec) {
		int st = chunked_feed(r->dec, data, len);
		if (st != SIGV4_OK) {
			s3d_body_sigv4_error(r, st, chunked_message(r->dec));
			return -1;
		}
		return 0;
	}
	if (r->sha)
		EVP_DigestUpdate(r->sha, data, len);
	return s3d_body_payload(r, data, len);
}

int s3d_body_end(s3d_req *r)
{
	if (r->responded)
		return -1;
	if (r->body == S3D_BODY_NONE)
		return 0;
	if (r->dec) {
		int st = chunked_finish(r->dec);
		if (st != SIGV4_OK) {
			s3d_body_sigv4_error(r, st, chunked_message(r->dec));
			return -1;
		}
		if (r->trailer_algo) {
			const char *v =
				chunked_trailer_get(r->dec, checksum_header_name(r->trailer_algo));
			if (v) {
				r->ck_result_algo = r->trailer_algo;
				snprintf(r->ck_result, sizeof(r->ck_result), "%s", v);
			}
		}
	} else if (r->sha) {
		unsigned char dg[32];
		unsigned int n = 0;
		EVP_DigestFinal_ex(r->sha, dg, &n);
		EVP_MD_CTX_free(r->sha);
		r->sha = NULL;
		int st = sigv4_payload_check(&r->auth, dg);
		if (st != SIGV4_OK) {
			s3d_error(r, sigv4_status_code(st), (unsigned)sigv4_status_http(st), NULL);
			return -1;
		}
	}
	if (!r->dec && r->content_length >= 0 && r->payload_bytes != (uint64_t)r->content_length) {
		s3d_error(r, "IncompleteBody", 400, NULL);
		return -1;
	}
	if (r->ck_algo) {
		char got[CHECKSUM_B64_MAX];
		int algo = r->ck_algo;
		r->ck_algo = 0;
		if (checksum_final_base64(&r->ck, got) != 0) {
			s3d_error(r, "InternalError", 500, NULL);
			return -1;
		}
		if (!r->ck_store_only && !checksum_value_equal(algo, got, r->ck_expect)) {
			char m[160];
			snprintf(m, sizeof(m),
				 "The %s you specified did not match the calculated checksum.",
				 checksum_algo_name(algo));
			s3d_error(r, "BadDigest", 400, m);
			return -1;
		}
		r->ck_result_algo = algo;
		snprintf(r->ck_result, sizeof(r->ck_result), "%s", got);
	}
	if (r->md5) {
		unsigned char dg[16];
		unsigned int n = 0;
		EVP_DigestFinal_ex(r->md5, dg, &n);
		EVP_MD_CTX_free(r->md5);
		r->md5 = NULL;
		if (memcmp(dg, r->content_md5, 16) != 0) {
			s3d_error(r, "BadDigest", 400,
				  "The Content-MD5 you specified did not match what we received.");
			return -1;
		}
	}
	return 0;
}

int s3d_body_checksum(s3d_req *r, const char **name, char value[CHECKSUM_B64_MAX])
{
	if (!r->ck_result_algo)
		return 0;
	*name = checksum_header_name(r->ck_result_algo);
	snprintf(value, CHECKSUM_B64_MAX, "%s", r->ck_result);
	return 1;
}

void s3d_body_free(s3d_req *r)
{
	chunked_free(r->dec);
	r->dec = NULL;
	if (r->sha)
		EVP_MD_CTX_free(r->sha);
	r->sha = NULL;
	if (r->md5)
		EVP_MD_CTX_free(r->md5);
	r->md5 = NULL;
	checksum_clear(&r->ck);
	r->ck_algo = 0;
	s3d_buf_free(&r->mem);
	if (r->w)
		core_put_abort(r->w);
	r->w = NULL;
}
