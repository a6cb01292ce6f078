/*
 * fuzz_sigv4.c - libFuzzer target for auth/sigv4.c: the Authorization header
 * parser, presigned query parsing and canonical request building, through
 * the public sigv4_verify / sigv4_verify_with_payload entry points.
 *
 * Input (text, one field per line):
 *   line 1  method            line 2  raw path (percent-encoded)
 *   line 3  raw query         lines 4+ headers "name:value" (at most 64)
 * Verification runs at a fixed clock (FUZZ_SIGV4_NOW) against two fixed
 * keys, so seeds signed by botocore at that time verify (see make_seeds.py).
 * A request that verifies with a streaming payload also gets a small
 * aws-chunked decoder round. SEGLAKE_FUZZ_DEBUG=1 prints each result.
 * Not here: the decoder itself (fuzz_chunked.c).
 */
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/chunked.h"
#include "auth/sigv4.h"
#include "fuzz_util.h"

#define FUZZ_SIGV4_NOW 1700000000 /* 2023-11-14T22:13:20Z, the seeds' signing time */
#define FUZZ_MAX_HEADERS 64

static int fuzz_lookup(void *ctx, const char *akid, char *secret, size_t cap)
{
	(void)ctx;
	if (!strcmp(akid, "AKIAIOSFODNN7EXAMPLE")) {
		snprintf(secret, cap, "%s", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
		return SIGV4_KEY_FOUND;
	}
	if (!strcmp(akid, "AKIDEXAMPLE")) {
		snprintf(secret, cap, "%s", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
		return SIGV4_KEY_FOUND;
	}
	if (!strcmp(akid, "DISABLED"))
		return SIGV4_KEY_DISABLED;
	if (!strcmp(akid, "LOOKUPERROR"))
		return SIGV4_KEY_ERROR;
	return SIGV4_KEY_NOT_FOUND;
}

static int fuzz_sink(void *ctx, const void *data, size_t len)
{
	(void)ctx;
	(void)data;
	(void)len;
	return 0;
}

static void fuzz_check_auth(const sigv4_auth *a, int st)
{
	/* Every result must be a well-formed, NUL-terminated record. */
	if (a->status != st || memchr(a->message, '\0', sizeof(a->message)) == NULL ||
	    memchr(a->access_key, '\0', sizeof(a->access_key)) == NULL ||
	    memchr(a->scope, '\0', sizeof(a->scope)) == NULL ||
	    memchr(a->trailer, '\0', sizeof(a->trailer)) == NULL ||
	    memchr(a->string_to_sign, '\0', sizeof(a->string_to_sign)) == NULL)
		__builtin_trap();
	(void)sigv4_status_code(st);
	(void)sigv4_status_http(st);
	(void)sigv4_status_message(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 64 * 1024)
		return 0;
	fuzz_lines l;
	if (fuzz_lines_split(data, size, 3 + FUZZ_MAX_HEADERS, &l) < 0)
		return 0;
	sigv4_header hdrs[FUZZ_MAX_HEADERS];
	size_t nh = 0;
	for (size_t i = 3; i < l.n; i++) {
		char *c = strchr(l.line[i], ':');
		if (!c)
			continue;
		*c = '\0';
		hdrs[nh].name = l.line[i];
		hdrs[nh].value = c + 1;
		nh++;
	}
	sigv4_request req = {
		.method = l.n > 0 ? l.line[0] : "",
		.raw_path = l.n > 1 ? l.line[1] : "/",
		.raw_query = l.n > 2 ? l.line[2] : NULL,
		.headers = hdrs,
		.n_headers = nh,
		.now = FUZZ_SIGV4_NOW,
	};
	/* Two configurations: region pinned, and any region with a tight skew. */
	sigv4_config cfg = { .lookup = fuzz_lookup, .region = "us-east-1" };
	sigv4_config cfg_any = { .lookup = fuzz_lookup, .region = "", .max_skew_sec = 60 };
	const sigv4_config *use = (size & 1) ? &cfg_any : &cfg;
	sigv4_auth a;
	int st = sigv4_verify(use, &req, &a);
	fuzz_check_auth(&a, st);
	if (getenv("SEGLAKE_FUZZ_DEBUG"))
		fprintf(stderr, "sigv4: %s: %s\n", sigv4_status_code(st), a.message);

	unsigned char empty[32];
	SHA256((const unsigned char *)"", 0, empty);
	if (st == SIGV4_MISSING_SECURITY_HEADER) {
		st = sigv4_verify_with_payload(use, &req, empty, &a);
		fuzz_check_auth(&a, st);
	}
	if (st == SIGV4_OK) {
		(void)sigv4_payload_check(&a, empty);
		if (a.payload_mode >= SIGV4_PAYLOAD_STREAMING_SIGNED) {
			chunked *d = NULL;
			if (chunked_new_from_auth(&a, fuzz_sink, NULL, &d) == SIGV4_OK) {
				static const char body[] = "0\r\n\r\n";
				(void)chunked_feed(d, body, sizeof(body) - 1);
				(void)chunked_finish(d);
				chunked_free(d);
			}
		}
	}
	sigv4_auth_clear(&a);

	/* The encoder used on the same bytes (keys, paths) must stay in bounds. */
	char enc[1024];
	if (l.n > 1)
		(void)sigv4_uri_encode(l.line[1], strlen(l.line[1]), (int)(size & 2), enc,
				       sizeof(enc));
	fuzz_lines_free(&l);
	return 0;
}
