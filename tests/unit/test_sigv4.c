/*
 * test_sigv4.c - unit tests of auth/sigv4.c: the AWS documentation's S3
 * examples (GET object, PUT object, GET ?lifecycle, list objects, presigned
 * URL, chunked-upload seed signature), sign/verify round trips with
 * differently encoded paths and queries, and every rejection path (skew,
 * expiry, malformed headers, unknown/disabled keys, tampering), plus random
 * garbage that must not crash. Not here: the aws-chunked body (test_chunked.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_sigv4.h"

#include <openssl/sha.h>

#include "auth/sigv4.h"

#define AKID "AKIAIOSFODNN7EXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define T0 ((time_t)1369353600) /* 20130524T000000Z */
#define EMPTY_SHA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static int lookups;

static int lookup(void *ctx, const char *akid, char *secret, size_t cap)
{
	(void)ctx;
	lookups++;
	if (strcmp(akid, AKID) == 0) {
		snprintf(secret, cap, "%s", SECRET);
		return SIGV4_KEY_FOUND;
	}
	if (strcmp(akid, "DISABLEDKEY") == 0) {
		snprintf(secret, cap, "%s", SECRET);
		return SIGV4_KEY_DISABLED;
	}
	if (strcmp(akid, "ERRORKEY") == 0)
		return SIGV4_KEY_ERROR;
	return SIGV4_KEY_NOT_FOUND;
}

static sigv4_config cfg = { .lookup = lookup };

static uint64_t rng_state = 0x243F6A8885A308D3ull;
static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static int verify(const char *method, const char *path, const char *query, const sigv4_header *h,
		  size_t n, time_t now, sigv4_auth *a)
{
	sigv4_request r = { .method = method,
			    .raw_path = path,
			    .raw_query = query,
			    .headers = h,
			    .n_headers = n,
			    .now = now };
	return sigv4_verify(&cfg, &r, a);
}

/* ---- AWS documentation examples ------------------------------------------------ */

static void test_aws_get_object(void)
{
	sigv4_header h[] = {
		{ "Host", "examplebucket.s3.amazonaws.com" },
		{ "Range", "bytes=0-9" },
		{ "x-amz-content-sha256", EMPTY_SHA },
		{ "x-amz-date", "20130524T000000Z" },
		{ "Authorization", "AWS4-HMAC-SHA256 "
				   "Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
				   "aws4_request,"
				   "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
				   "Signature="
				   "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb4"
				   "1" },
	};
	sigv4_auth a;
	CHECK_ST(verify("GET", "/test.txt", NULL, h, 5, T0, &a), SIGV4_OK);
	CHECK(a.form == SIGV4_FORM_HEADER);
	CHECK(strcmp(a.access_key, AKID) == 0);
	CHECK(strcmp(a.region, "us-east-1") == 0);
	CHECK(strcmp(a.scope, "20130524/us-east-1/s3/aws4_request") == 0);
	CHECK(a.payload_mode == SIGV4_PAYLOAD_HASH);
	CHECK(strcmp(a.payload_hash, EMPTY_SHA) == 0);
	CHECK(strcmp(a.amz_date, "20130524T000000Z") == 0);
	CHECK(strcmp(a.string_to_sign, "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/"
				       "aws4_request\n"
				       "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc439649"
				       "46972") == 0);

	/* payload check helper */
	unsigned char empty[32] = { 0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14,
				    0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
				    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c,
				    0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55 };
	CHECK_ST(sigv4_payload_check(&a, empty), SIGV4_OK);
	empty[31] ^= 1;
	CHECK_ST(sigv4_payload_check(&a, empty), SIGV4_CONTENT_SHA256_MISMATCH);
	sigv4_auth_clear(&a);

	/* our signer produces the same signature */
	sigv4_sign_params p = { .method = "GET",
				.raw_path = "/test.txt",
				.headers = h,
				.n_headers = 4,
				.access_key = AKID,
				.secret = SECRET,
				.region = "us-east-1",
				.amz_date = "20130524T000000Z",
				.payload_hash = EMPTY_SHA };
	char out[512], sig[65];
	CHECK(sigv4_sign(&p, out, sizeof(out), sig) == 0);
	CHECK(strcmp(sig, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41") == 0);
	CHECK(strstr(out, "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,") != NULL);
	CHECK(sigv4_sign(&p, out, 40, sig) == -1);

	/* tampering: each of these must fail */
	sigv4_header t[5];
	memcpy(t, h, sizeof(h));
	t[1].value = "bytes=0-10";
	CHECK_ST(verify("GET", "/test.txt", NULL, t, 5, T0, &a), SIGV4_SIGNATURE_MISMATCH);
	CHECK(a.payload_mode == SIGV4_PAYLOAD_NONE);
	CHECK_ST(verify("GET", "/test.txT", NULL, h, 5, T0, &a), SIGV4_SIGNATURE_MISMATCH);
	CHECK_ST(verify("HEAD", "/test.txt", NULL, h, 5, T0, &a), SIGV4_SIGNATURE_MISMATCH);
	CHECK_ST(verify("GET", "/test.txt", "x=1", h, 5, T0, &a), SIGV4_SIGNATURE_MISMATCH);
	memcpy(t, h, sizeof(h));
	t[0].value = "otherbucket.s3.amazonaws.com";
	CHECK_ST(verify("GET", "/test.txt", NULL, t, 5, T0, &a), SIGV4_SIGNATURE_MISMATCH);
	/* whitespace in values is canonicalised (trimmed, runs collapsed) */
	memcpy(t, h, sizeof(h));
	t[1].value = "  bytes=0-9 ";
	CHECK_ST(verify("GET", "/test.txt", NULL, t, 5, T0, &a), SIGV4_OK);
	/* skew */
	CHECK_ST(verify("GET", "/test.txt", NULL, h, 5, T0 + 14 * 60, &a), SIGV4_OK);
	CHECK_ST(verify("GET", "/test.txt", NULL, h, 5, T0 + 16 * 60, &a), SIGV4_TIME_SKEWED);
	CHECK(strcmp(sigv4_status_code(a.status), "RequestTimeTooSkewed") == 0);
	CHECK_ST(verify("GET", "/test.txt", NULL, h, 5, T0 - 16 * 60, &a), SIGV4_TIME_SKEWED);
	/* an unsigned x-amz-* header */
	sigv4_header u[6];
	memcpy(u, h, sizeof(h));
	u[5].name = "x-amz-meta-evil";
	u[5].value = "1";
	CHECK_ST(verify("GET", "/test.txt", NULL, u, 6, T0, &a), SIGV4_ACCESS_DENIED);
	/* configured region */
	sigv4_config c2 = cfg;
	c2.region = "eu-west-1";
	sigv4_request r = {
		.method = "GET", .raw_path = "/test.txt", .headers = h, .n_headers = 5, .now = T0
	};
	CHECK_ST(sigv4_verify(&c2, &r, &a), SIGV4_AUTH_HEADER_MALFORMED);
	CHECK(strstr(a.message, "eu-west-1") != NULL);
	c2.region = "us-east-1";
	CHECK_ST(sigv4_verify(&c2, &r, &a), SIGV4_OK);
}

static void test_aws_put_object(void)
{
	sigv4_header h[] = {
		{ "Host", "examplebucket.s3.amazonaws.com" },
		{ "Date", "Fri, 24 May 2013 00:00:00 GMT" },
		{ "x-amz-date", "20130524T000000Z" },
		{ "x-amz-storage-class", "REDUCED_REDUNDANCY" },
		{ "x-amz-content-sha256", "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b8"
					  "03f8b072" },
		{ "Authorization", "AWS4-HMAC-SHA256 "
				   "Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
				   "aws4_request,"
				   "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-"
				   "storage-class,"
				   "Signature="
				   "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108b"
				   "d" },
	};
	sigv4_auth a;
	CHECK_ST(verify("PUT", "/test%24file.text", "", h, 6, T0, &a), SIGV4_OK);
	CHECK(a.payload_mode == SIGV4_PAYLOAD_HASH);
	CHECK(strcmp(a.payload_hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b"
				     "072") == 0);
	/* a client that sends '$' unencoded still matches (decode + re-encode) */
	CHECK_ST(verify("PUT", "/test$file.text", "", h, 6, T0, &a), SIGV4_OK);
	/* a different key does not */
	CHECK_ST(verify("PUT", "/test%25file.text", "", h, 6, T0, &a), SIGV4_SIGNATURE_MISMATCH);
}

static void test_aws_get_lifecycle_and_list(void)
{
	sigv4_header h[] = {
		{ "Host", "examplebucket.s3.amazonaws.com" },
		{ "x-amz-date", "20130524T000000Z" },
		{ "x-amz-content-sha256", EMPTY_SHA },
		{ "Authorization", "AWS4-HMAC-SHA256 "
				   "Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
				   "aws4_request,"
				   "SignedHeaders=host;x-amz-content-sha256;x-amz-date,"
				   "Signature="
				   "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a013678354"
				   "3" },
	};
	sigv4_auth a;
	CHECK_ST(verify("GET", "/", "lifecycle", h, 4, T0, &a), SIGV4_OK);
	CHECK_ST(verify("GET", "/", "lifecycle=", h, 4, T0, &a), SIGV4_OK);
	CHECK_ST(verify("GET", "/", "policy", h, 4, T0, &a), SIGV4_SIGNATURE_MISMATCH);

	h[3].value = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
		     "aws4_request,SignedHeaders=host;x-amz-content-sha256;x-amz-date,"
		     "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7";
	CHECK_ST(verify("GET", "/", "max-keys=2&prefix=J", h, 4, T0, &a), SIGV4_OK);
	/* order of parameters on the wire does not matter */
	CHECK_ST(verify("GET", "/", "prefix=J&max-keys=2", h, 4, T0, &a), SIGV4_OK);
	CHECK_ST(verify("GET", "/", "prefix=%4A&max-keys=2", h, 4, T0, &a), SIGV4_OK);
	CHECK_ST(verify("GET", "/", "prefix=K&max-keys=2", h, 4, T0, &a), SIGV4_SIGNATURE_MISMATCH);
	CHECK_ST(verify("GET", "", "max-keys=2&prefix=J", h, 4, T0, &a), SIGV4_OK);
}

static const char *presign_q = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential="
			       "AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1"
			       "%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires="
			       "86400&X-Amz-SignedHeaders="
			       "host&X-Amz-Signature="
			       "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";

static void test_aws_presigned(void)
{
	sigv4_header h[] = { { "Host", "examplebucket.s3.amazonaws.com" } };
	sigv4_auth a;
	CHECK_ST(verify("GET", "/test.txt", presign_q, h, 1, T0 + 3600, &a), SIGV4_OK);
	CHECK(a.form == SIGV4_FORM_QUERY);
	CHECK(a.payload_mode == SIGV4_PAYLOAD_UNSIGNED);
	CHECK(strcmp(a.access_key, AKID) == 0);
	CHECK_ST(verify("GET", "/test.txt", presign_q, h, 1, T0 + 86400, &a), SIGV4_OK);
	CHECK_ST(verify("GET", "/test.txt", presign_q, h, 1, T0 + 86401, &a), SIGV4_ACCESS_DENIED);
	CHECK(strcmp(a.message, "Request has expired") == 0);
	CHECK_ST(verify("GET", "/test.txt", presign_q, h, 1, T0 - 3600, &a), SIGV4_ACCESS_DENIED);
	CHECK_ST(verify("GET", "/test2.txt", presign_q, h, 1, T0, &a), SIGV4_SIGNATURE_MISMATCH);
	/* presigned URLs ignore the payload and x-amz-date skew rules */
	sigv4_header h2[] = { { "Host", "examplebucket.s3.amazonaws.com" },
			      { "x-amz-content-sha256", "garbage" } };
	CHECK_ST(verify("GET", "/test.txt", presign_q, h2, 2, T0 + 7200, &a), SIGV4_OK);

	/* our presigner produces the documented signature */
	sigv4_sign_params p = { .method = "GET",
				.raw_path = "/test.txt",
				.headers = h,
				.n_headers = 1,
				.access_key = AKID,
				.secret = SECRET,
				.region = "us-east-1",
				.amz_date = "20130524T000000Z" };
	char q[1024];
	CHECK(sigv4_presign(&p, 86400, q, sizeof(q)) == 0);
	CHECK(strcmp(q, presign_q) == 0);

	/* malformed parameters */
	char bad[1024];
	const char *cases[][2] = {
		{ "X-Amz-Expires=86400", "X-Amz-Expires=0" },
		{ "X-Amz-Expires=86400", "X-Amz-Expires=604801" },
		{ "X-Amz-Expires=86400", "X-Amz-Expires=-5" },
		{ "X-Amz-Expires=86400", "X-Amz-Expires=12x" },
		{ "X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Algorithm=AWS4-HMAC-SHA1" },
		{ "X-Amz-Date=20130524T000000Z", "X-Amz-Date=20130524" },
		{ "X-Amz-Date=20130524T000000Z", "X-Amz-Date=20130525T000000Z" },
		{ "&X-Amz-SignedHeaders=host", "" },
		{ "%2Fs3%2F", "%2Fs4%2F" },
		{ "AKIAIOSFODNN7EXAMPLE%2F20130524", "AKIAIOSFODNN7EXAMPLE%2F2013052" },
		{ "X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=range" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *pos = strstr(presign_q, cases[i][0]);
		CHECK(pos != NULL);
		if (!pos)
			continue;
		snprintf(bad, sizeof(bad), "%.*s%s%s", (int)(pos - presign_q), presign_q,
			 cases[i][1], pos + strlen(cases[i][0]));
		int st = verify("GET", "/test.txt", bad, h, 1, T0 + 10, &a);
		CHECK_ST(st, SIGV4_AUTH_QUERY_ERROR);
	}
	/* header and query auth together */
	sigv4_header both[] = { { "Host", "x" },
				{ "Authorization", "AWS4-HMAC-SHA256 Credential=x" } };
	CHECK_ST(verify("GET", "/test.txt", presign_q, both, 2, T0, &a), SIGV4_INVALID_ARGUMENT);
	/* SigV2 presigned */
	CHECK_ST(verify("GET", "/t", "AWSAccessKeyId=AKID&Expires=1&Signature=abc", h, 1, T0, &a),
		 SIGV4_INVALID_REQUEST);
}

/* The seed request of the documented chunked upload (64 KiB + 1 KiB). */
static void test_aws_chunked_seed(void)
{
	sigv4_header h[] = {
		{ "Host", "s3.amazonaws.com" },
		{ "x-amz-date", "20130524T000000Z" },
		{ "x-amz-storage-class", "REDUCED_REDUNDANCY" },
		{ "Authorization", "AWS4-HMAC-SHA256 "
				   "Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
				   "aws4_request,"
				   "SignedHeaders=content-encoding;content-length;host;x-amz-"
				   "content-sha256;x-amz-date;"
				   "x-amz-decoded-content-length;x-amz-storage-class,"
				   "Signature="
				   "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a"
				   "9" },
		{ "x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" },
		{ "Content-Encoding", "aws-chunked" },
		{ "x-amz-decoded-content-length", "66560" },
		{ "Content-Length", "66824" },
	};
	sigv4_auth a;
	CHECK_ST(verify("PUT", "/examplebucket/chunkObject.txt", NULL, h, 8, T0, &a), SIGV4_OK);
	CHECK(a.payload_mode == SIGV4_PAYLOAD_STREAMING_SIGNED);
	CHECK(a.decoded_length == 66560);
	CHECK(strcmp(a.signature, "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a"
				  "9") == 0);
	unsigned char key[32];
	sigv4_signing_key(SECRET, "20130524", "us-east-1", "s3", key);
	CHECK(memcmp(key, a.signing_key, 32) == 0);
	sigv4_auth_clear(&a);
	int zero = 1;
	for (int i = 0; i < 32; i++)
		if (a.signing_key[i])
			zero = 0;
	CHECK(zero);
	h[6].value = "abc";
	CHECK_ST(verify("PUT", "/examplebucket/chunkObject.txt", NULL, h, 8, T0, &a),
		 SIGV4_INVALID_ARGUMENT);
}

/* The generic SigV4 suite's get-vanilla case (service "service"): the signer
 * agrees; the verifier refuses it because the service is not s3. */
static void test_get_vanilla(void)
{
	sigv4_header h[3] = { { "Host", "example.amazonaws.com" },
			      { "X-Amz-Date", "20150830T123600Z" },
			      { "Authorization", NULL } };
	sigv4_sign_params p = { .method = "GET",
				.raw_path = "/",
				.headers = h,
				.n_headers = 2,
				.access_key = AKID,
				.secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
				.region = "us-east-1",
				.service = "service",
				.amz_date = "20150830T123600Z",
				.payload_hash = EMPTY_SHA };
	char out[512], sig[65];
	CHECK(sigv4_sign(&p, out, sizeof(out), sig) == 0);
	CHECK(strcmp(sig, "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31") == 0);
	CHECK(strcmp(out, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20150830/us-east-1/"
			  "service/aws4_request, SignedHeaders=host;x-amz-date, "
			  "Signature=5fa00fa3155"
			  "3b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31") == 0);
	h[2].value = out;
	sigv4_auth a;
	CHECK_ST(verify("GET", "/", NULL, h, 3, (time_t)1440938160, &a),
		 SIGV4_AUTH_HEADER_MALFORMED);
}

/* ---- rejections -------------------------------------------------------------------- */

static void sign_simple(const char *akid, const char *region, const char *service, char *authz,
			size_t cap, sigv4_header *h, size_t n)
{
	sigv4_sign_params p = { .method = "GET",
				.raw_path = "/b/k",
				.headers = h,
				.n_headers = n,
				.access_key = akid,
				.secret = SECRET,
				.region = region,
				.service = service,
				.amz_date = "20130524T000000Z",
				.payload_hash = "UNSIGNED-PAYLOAD" };
	if (sigv4_sign(&p, authz, cap, NULL) != 0)
		authz[0] = '\0';
}

static void test_rejections(void)
{
	sigv4_auth a;
	sigv4_header h[4] = { { "host", "localhost:9000" },
			      { "x-amz-date", "20130524T000000Z" },
			      { "x-amz-content-sha256", "UNSIGNED-PAYLOAD" },
			      { "authorization", NULL } };
	char authz[512];

	/* anonymous */
	lookups = 0;
	CHECK_ST(verify("GET", "/b/k", "list-type=2", h, 3, T0, &a), SIGV4_ANONYMOUS);
	CHECK(a.form == SIGV4_FORM_NONE && a.access_key[0] == '\0');
	CHECK(lookups == 0);
	CHECK(sigv4_status_http(SIGV4_ANONYMOUS) == 403);

	sign_simple(AKID, "us-east-1", NULL, authz, sizeof(authz), h, 3);
	h[3].value = authz;
	CHECK_ST(verify("GET", "/b/k", NULL, h, 4, T0, &a), SIGV4_OK);
	CHECK(a.payload_mode == SIGV4_PAYLOAD_UNSIGNED);

	/* any region is accepted and reported */
	sign_simple(AKID, "mars-north-7", NULL, authz, sizeof(authz), h, 3);
	CHECK_ST(verify("GET", "/b/k", NULL, h, 4, T0, &a), SIGV4_OK);
	CHECK(strcmp(a.region, "mars-north-7") == 0);

	sign_simple("NOSUCHKEY", "us-east-1", NULL, authz, sizeof(authz), h, 3);
	CHECK_ST(verify("GET", "/b/k", NULL, h, 4, T0, &a), SIGV4_INVALID_ACCESS_KEY);
	CHECK(strcmp(sigv4_status_code(a.status), "InvalidAccessKeyId") == 0);
	sign_simple("DISABLEDKEY", "us-east-1", NULL, authz, sizeof(authz), h, 3);
	CHECK_ST(verify("GET", "/b/k", NULL, h, 4, T0, &a), SIGV4_ACCESS_DENIED);
	sign_simple("ERRORKEY", "us-east-1", NULL, authz, sizeof(authz), h, 3);
	CHECK_ST(verify("GET", "/b/k", NULL, h, 4, T0, &a), SIGV4_INTERNAL_ERROR);
	CHECK(sigv4_status_http(a.status) == 500);
	sign_simple(AKID, "us-east-1", "ec2", authz, sizeof(authz), h, 3);
	CHECK_ST(verify("GET", "/b/k", NULL, h, 4, T0, &a), SIGV4_AUTH_HEADER_MALFORMED);

	/* scope date differs from x-amz-date */
	sign_simple(AKID, "us-east-1", NULL, authz, sizeof(authz), h, 3);
	char *d = strstr(authz, "/20130524/");
	CHECK(d != NULL);
	if (d)
		memcpy(d + 1, "20130523", 8);
	CHECK_ST(verify("GET", "/b/k", NULL, h, 4, T0, &a), SIGV4_AUTH_HEADER_MALFORMED);

	/* the signature: flip one hex digit */
	sign_simple(AKID, "us-east-1", NULL, authz, sizeof(authz), h, 3);
	size_t L = strlen(authz);
	authz[L - 1] = authz[L - 1] == '0' ? '1' : '0';
	CHECK_ST(verify("GET", "/b/k", NULL, h, 4, T0, &a), SIGV4_SIGNATURE_MISMATCH);
	CHECK(sigv4_status_http(a.status) == 403);
	/* uppercase hex signature is not accepted */
	sign_simple(AKID, "us-east-1", NULL, authz, sizeof(authz), h, 3);
	for (char *s = strstr(authz, "Signature=") + 10; *s; s++)
		if (*s >= 'a' && *s <= 'f')
			*s = (char)(*s - 32);
	CHECK_ST(verify("GET", "/b/k", NULL, h, 4, T0, &a), SIGV4_SIGNATURE_MISMATCH);

	/* malformed Authorization headers */
	const char *bad[] = {
		"AWS4-HMAC-SHA256",
		"AWS4-HMAC-SHA256 ",
		"AWS4-HMAC-SHA256 "
		"Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request",
		"AWS4-HMAC-SHA256 "
		"Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
		"SignedHeaders=host",
		"AWS4-HMAC-SHA256 "
		"Credential=AKIAIOSFODNN7EXAMPLE/2013052/us-east-1/s3/aws4_request, "
		"SignedHeaders=host, Signature=00",
		"AWS4-HMAC-SHA256 Credential=/20130524/us-east-1/s3/aws4_request, "
		"SignedHeaders=host, Signature=00",
		"AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/s3/aws5_request, "
		"SignedHeaders=host, Signature=00",
		"AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/s3/aws4_request, "
		"SignedHeaders=Host;X-Amz-Date, Signature=00",
		"AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/s3/aws4_request, "
		"SignedHeaders=;;, Signature=00",
		"AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/s3/aws4_request, "
		"SignedHeaders=x-amz-date, Signature=00",
		"AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/s3/aws4_request, "
		"SignedHeaders=host, Signature=00, Extra=1",
		"AWS4-HMAC-SHA256 Credential, SignedHeaders=host, Signature=00",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		h[3].value = bad[i];
		int st = verify("GET", "/b/k", NULL, h, 4, T0, &a);
		CHECK_ST(st, SIGV4_AUTH_HEADER_MALFORMED);
		CHECK(a.message[0] != '\0');
	}
	h[3].value = "AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=";
	CHECK_ST(verify("GET", "/b/k", NULL, h, 4, T0, &a), SIGV4_INVALID_REQUEST);
	h[3].value = "Bearer abc";
	CHECK_ST(verify("GET", "/b/k", NULL, h, 4, T0, &a), SIGV4_INVALID_ARGUMENT);

	/* dates */
	sign_simple(AKID, "us-east-1", NULL, authz, sizeof(authz), h, 3);
	h[3].value = authz;
	sigv4_header nodate[3] = { h[0], h[2], h[3] };
	CHECK_ST(verify("GET", "/b/k", NULL, nodate, 3, T0, &a), SIGV4_ACCESS_DENIED);
	h[1].value = "20130532T000000Z";
	CHECK_ST(verify("GET", "/b/k", NULL, h, 4, T0, &a), SIGV4_ACCESS_DENIED);
	h[1].value = "20130524T000000Z";

	/* x-amz-content-sha256 */
	h[2].value = "not-a-hash";
	CHECK_ST(verify("GET", "/b/k", NULL, h, 4, T0, &a), SIGV4_INVALID_ARGUMENT);
	h[2].value = "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD";
	CHECK_ST(verify("GET", "/b/k", NULL, h, 4, T0, &a), SIGV4_INVALID_ARGUMENT);
	h[2].value = "UNSIGNED-PAYLOAD";

	/* missing x-amz-content-sha256: fine without a body, required with one */
	sigv4_header nh[4] = { { "host", "localhost:9000" },
			       { "x-amz-date", "20130524T000000Z" },
			       { "authorization", NULL },
			       { "content-length", "5" } };
	sigv4_sign_params p = { .method = "GET",
				.raw_path = "/b/k",
				.headers = nh,
				.n_headers = 2,
				.access_key = AKID,
				.secret = SECRET,
				.region = "us-east-1",
				.amz_date = "20130524T000000Z",
				.payload_hash = EMPTY_SHA };
	CHECK(sigv4_sign(&p, authz, sizeof(authz), NULL) == 0);
	nh[2].value = authz;
	CHECK_ST(verify("GET", "/b/k", NULL, nh, 3, T0, &a), SIGV4_OK);
	CHECK(a.payload_mode == SIGV4_PAYLOAD_HASH && strcmp(a.payload_hash, EMPTY_SHA) == 0);
	/* ...and with a body, a signature over sha256("") (curl -T) is unsigned payload */
	CHECK_ST(verify("GET", "/b/k", NULL, nh, 4, T0, &a), SIGV4_OK);
	CHECK(a.payload_mode == SIGV4_PAYLOAD_UNSIGNED);
	CHECK(sigv4_status_http(SIGV4_MISSING_SECURITY_HEADER) == 400);

	/* curl < 8 style: body hash signed, no x-amz-content-sha256 header */
	{
		unsigned char bh[32];
		char bhex[65];
		SHA256((const unsigned char *)"hello", 5, bh);
		for (int i = 0; i < 32; i++)
			snprintf(bhex + 2 * i, 3, "%02x", bh[i]);
		sigv4_header ch[4] = { { "host", "localhost:9000" },
				       { "x-amz-date", "20130524T000000Z" },
				       { "content-length", "5" },
				       { "authorization", NULL } };
		sigv4_sign_params cp = { .method = "PUT",
					 .raw_path = "/b/k",
					 .headers = ch,
					 .n_headers = 2,
					 .access_key = AKID,
					 .secret = SECRET,
					 .region = "us-east-1",
					 .amz_date = "20130524T000000Z",
					 .payload_hash = bhex };
		CHECK(sigv4_sign(&cp, authz, sizeof(authz), NULL) == 0);
		ch[3].value = authz;
		sigv4_request cr = { .method = "PUT",
				     .raw_path = "/b/k",
				     .headers = ch,
				     .n_headers = 4,
				     .now = T0 };
		CHECK_ST(sigv4_verify(&cfg, &cr, &a), SIGV4_MISSING_SECURITY_HEADER);
		CHECK(strcmp(a.access_key, AKID) == 0);
		CHECK_ST(sigv4_verify_with_payload(&cfg, &cr, bh, &a), SIGV4_OK);
		CHECK(a.payload_mode == SIGV4_PAYLOAD_HASH && strcmp(a.payload_hash, bhex) == 0);
		CHECK_ST(sigv4_payload_check(&a, bh), SIGV4_OK);
		bh[0] ^= 1;
		CHECK_ST(sigv4_verify_with_payload(&cfg, &cr, bh, &a), SIGV4_SIGNATURE_MISMATCH);
		cr.now = T0 + 3600;
		CHECK_ST(sigv4_verify(&cfg, &cr, &a), SIGV4_TIME_SKEWED);
	}

	/* Date header instead of x-amz-date */
	sigv4_header dh[3] = { { "host", "h" },
			       { "date", "Fri, 24 May 2013 00:00:00 GMT" },
			       { "authorization", NULL } };
	p.headers = dh;
	p.n_headers = 2;
	CHECK(sigv4_sign(&p, authz, sizeof(authz), NULL) == 0);
	dh[2].value = authz;
	CHECK_ST(verify("GET", "/b/k", NULL, dh, 3, T0 + 60, &a), SIGV4_OK);
	CHECK(strcmp(a.amz_date, "20130524T000000Z") == 0);
}

/* ---- round trips: paths and queries as clients encode them -------------------------- */

static int roundtrip(const char *signed_path, const char *wire_path, const char *signed_q,
		     const char *wire_q)
{
	sigv4_header h[4] = { { "Host", "127.0.0.1:9000" },
			      { "X-Amz-Date", "20130524T000000Z" },
			      { "X-Amz-Content-SHA256", EMPTY_SHA },
			      { "Authorization", NULL } };
	char authz[512];
	sigv4_sign_params p = { .method = "GET",
				.raw_path = signed_path,
				.raw_query = signed_q,
				.headers = h,
				.n_headers = 3,
				.access_key = AKID,
				.secret = SECRET,
				.region = "us-east-1",
				.amz_date = "20130524T000000Z",
				.payload_hash = EMPTY_SHA };
	if (sigv4_sign(&p, authz, sizeof(authz), NULL) != 0)
		return -100;
	h[3].value = authz;
	sigv4_auth a;
	return verify("GET", wire_path, wire_q, h, 4, T0, &a);
}

static void test_roundtrips(void)
{
	/* botocore-style: key percent-encoded, '/' kept */
	CHECK_ST(roundtrip("/bucket/a%20b/c", "/bucket/a%20b/c", NULL, NULL), SIGV4_OK);
	/* differently encoded on the wire: ~ = + and unicode */
	CHECK_ST(roundtrip("/b/%7Euser/x%3Dy", "/b/~user/x=y", NULL, NULL), SIGV4_OK);
	CHECK_ST(roundtrip("/b/a%2Bb", "/b/a+b", NULL, NULL), SIGV4_OK);
	CHECK_ST(roundtrip("/b/%C3%BC", "/b/%c3%bc", NULL, NULL), SIGV4_OK);
	/* '+' in a path is a plus, not a space */
	CHECK_ST(roundtrip("/b/a%20b", "/b/a+b", NULL, NULL), SIGV4_SIGNATURE_MISMATCH);
	/* no normalisation of // or .. */
	CHECK_ST(roundtrip("/b//x/../y", "/b//x/../y", NULL, NULL), SIGV4_OK);
	CHECK_ST(roundtrip("/b//x/../y", "/b/y", NULL, NULL), SIGV4_SIGNATURE_MISMATCH);
	/* an encoded slash in a key stays distinct from a path separator */
	CHECK_ST(roundtrip("/b/a%2Fb", "/b/a%2Fb", NULL, NULL), SIGV4_OK);
	/* a client that signs the raw path literally (non-AWS encoding) still verifies */
	CHECK_ST(roundtrip("/b/a%2Fb", "/b/a/b", NULL, NULL), SIGV4_SIGNATURE_MISMATCH);
	/* queries: order, params without '=', encoded vs raw, '+' as space */
	CHECK_ST(roundtrip("/b", "/b", "prefix=a%2Fb&delimiter=%2F&list-type=2",
			   "list-type=2&delimiter=/&prefix=a/b"),
		 SIGV4_OK);
	CHECK_ST(roundtrip("/b", "/b", "versions", "versions="), SIGV4_OK);
	CHECK_ST(roundtrip("/b", "/b", "uploads&prefix=x", "prefix=x&uploads"), SIGV4_OK);
	CHECK_ST(roundtrip("/b", "/b", "prefix=a%20b", "prefix=a+b"), SIGV4_OK);
	CHECK_ST(roundtrip("/b", "/b", "prefix=a%2Bb", "prefix=a%2Bb"), SIGV4_OK);
	CHECK_ST(roundtrip("/b", "/b", "a=1&a=2", "a=2&a=1"), SIGV4_OK);
	CHECK_ST(roundtrip("/b", "/b", "a=1&a=2", "a=1&a=3"), SIGV4_SIGNATURE_MISMATCH);
	CHECK_ST(roundtrip("/b", "/b", "a=1", "a=1&&"), SIGV4_OK);
	CHECK_ST(roundtrip("/b", "/b", "prefix=%E2%82%AC", "prefix=%e2%82%ac"), SIGV4_OK);

	/* duplicate headers are joined with ',' */
	sigv4_header h[5] = { { "host", "h" },
			      { "x-amz-date", "20130524T000000Z" },
			      { "x-amz-meta-a", "1" },
			      { "x-amz-meta-a", " 2  3 " },
			      { "authorization", NULL } };
	sigv4_header one[3] = { { "host", "h" },
				{ "x-amz-date", "20130524T000000Z" },
				{ "x-amz-meta-a", "1,2 3" } };
	char authz[512];
	sigv4_sign_params p = { .method = "PUT",
				.raw_path = "/b/k",
				.headers = one,
				.n_headers = 3,
				.access_key = AKID,
				.secret = SECRET,
				.region = "us-east-1",
				.amz_date = "20130524T000000Z",
				.payload_hash = "UNSIGNED-PAYLOAD" };
	CHECK(sigv4_sign(&p, authz, sizeof(authz), NULL) == 0);
	h[4].value = authz;
	sigv4_header full[6];
	memcpy(full, h, sizeof(h));
	full[5].name = "x-amz-content-sha256";
	full[5].value = "UNSIGNED-PAYLOAD";
	sigv4_auth a;
	/* content-sha256 present but unsigned -> denied; sign it as well */
	CHECK_ST(verify("PUT", "/b/k", NULL, full, 6, T0, &a), SIGV4_ACCESS_DENIED);
	sigv4_header one2[4] = {
		one[0], one[1], one[2], { "x-amz-content-sha256", "UNSIGNED-PAYLOAD" }
	};
	p.headers = one2;
	p.n_headers = 4;
	CHECK(sigv4_sign(&p, authz, sizeof(authz), NULL) == 0);
	full[4].value = authz;
	CHECK_ST(verify("PUT", "/b/k", NULL, full, 6, T0, &a), SIGV4_OK);

	/* presign round trip with an existing query and an encoded key */
	sigv4_header ph[1] = { { "host", "127.0.0.1:9000" } };
	sigv4_sign_params pp = { .method = "PUT",
				 .raw_path = "/b/dir/a%20b.txt",
				 .raw_query = "partNumber=1&uploadId=xyz",
				 .headers = ph,
				 .n_headers = 1,
				 .access_key = AKID,
				 .secret = SECRET,
				 .region = "us-east-1",
				 .amz_date = "20130524T000000Z" };
	char q[1024];
	CHECK(sigv4_presign(&pp, 600, q, sizeof(q)) == 0);
	CHECK_ST(verify("PUT", "/b/dir/a%20b.txt", q, ph, 1, T0 + 599, &a), SIGV4_OK);
	CHECK_ST(verify("PUT", "/b/dir/a%20b.txt", q, ph, 1, T0 + 601, &a), SIGV4_ACCESS_DENIED);
	CHECK_ST(verify("GET", "/b/dir/a%20b.txt", q, ph, 1, T0 + 1, &a), SIGV4_SIGNATURE_MISMATCH);
	/* X-Amz-Signature may appear anywhere in the query */
	char moved[1200];
	char *sp = strstr(q, "&X-Amz-Signature=");
	CHECK(sp != NULL);
	if (sp) {
		snprintf(moved, sizeof(moved), "%s&%.*s", sp + 1, (int)(sp - q), q);
		CHECK_ST(verify("PUT", "/b/dir/a%20b.txt", moved, ph, 1, T0 + 1, &a), SIGV4_OK);
	}
}

static void test_encode_and_status(void)
{
	char out[64];
	CHECK(sigv4_uri_encode("a b/~c+", 7, 1, out, sizeof(out)) == 11);
	CHECK(strcmp(out, "a%20b/~c%2B") == 0);
	CHECK(sigv4_uri_encode("a/b", 3, 0, out, sizeof(out)) == 5);
	CHECK(strcmp(out, "a%2Fb") == 0);
	CHECK(sigv4_uri_encode("abcdef", 6, 0, out, 4) == -1);
	char ds[17];
	sigv4_format_date(T0, ds);
	CHECK(strcmp(ds, "20130524T000000Z") == 0);

	struct {
		int st;
		const char *code;
		int http;
	} m[] = {
		{ SIGV4_OK, "OK", 200 },
		{ SIGV4_SIGNATURE_MISMATCH, "SignatureDoesNotMatch", 403 },
		{ SIGV4_INVALID_ACCESS_KEY, "InvalidAccessKeyId", 403 },
		{ SIGV4_AUTH_HEADER_MALFORMED, "AuthorizationHeaderMalformed", 400 },
		{ SIGV4_AUTH_QUERY_ERROR, "AuthorizationQueryParametersError", 400 },
		{ SIGV4_ACCESS_DENIED, "AccessDenied", 403 },
		{ SIGV4_TIME_SKEWED, "RequestTimeTooSkewed", 403 },
		{ SIGV4_MISSING_SECURITY_HEADER, "MissingSecurityHeader", 400 },
		{ SIGV4_INVALID_ARGUMENT, "InvalidArgument", 400 },
		{ SIGV4_CONTENT_SHA256_MISMATCH, "XAmzContentSHA256Mismatch", 400 },
		{ SIGV4_INCOMPLETE_BODY, "IncompleteBody", 400 },
		{ SIGV4_INVALID_REQUEST, "InvalidRequest", 400 },
		{ SIGV4_BAD_DIGEST, "BadDigest", 400 },
		{ SIGV4_INTERNAL_ERROR, "InternalError", 500 },
		{ 12345, "InternalError", 500 },
	};
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		CHECK(strcmp(sigv4_status_code(m[i].st), m[i].code) == 0);
		CHECK(sigv4_status_http(m[i].st) == m[i].http);
		CHECK(sigv4_status_message(m[i].st)[0] != '\0');
	}
}

/* ---- garbage ---------------------------------------------------------------------- */

static void rand_str(char *s, size_t cap, const char *alphabet)
{
	size_t n = rnd() % (cap - 1);
	size_t al = strlen(alphabet);
	for (size_t i = 0; i < n; i++)
		s[i] = alphabet[rnd() % al];
	s[n] = '\0';
}

static void test_garbage(void)
{
	const char *alpha = "AWS4-HMAC-SHA256 Credential=/;,= SignedHeaders "
			    "Signature0123456789abcdef"
			    "%+&\t\r\nxyz";
	char authz[300], path[100], query[200], v1[40], v2[40];
	int ok_count = 0;
	for (int i = 0; i < 30000; i++) {
		rand_str(authz, sizeof(authz), alpha);
		rand_str(path, sizeof(path), "/%aZ09+~.-_ \x80\xff");
		rand_str(query, sizeof(query), "X-Amz-Algorithm=&Credential%2F0123456789ZT");
		rand_str(v1, sizeof(v1), "0123456789TZ ,:GMTFri");
		rand_str(v2, sizeof(v2), "UNSIGNED-PAYLOADSTREAMING0abcdef");
		if (i % 3 == 0)
			memcpy(authz, "AWS4-HMAC-SHA256 Credential=", 28);
		sigv4_header h[5] = { { "host", "h" },
				      { "x-amz-date", v1 },
				      { "x-amz-content-sha256", v2 },
				      { "Authorization", authz },
				      { "date", v1 } };
		sigv4_auth a;
		int st = verify(i % 5 ? "GET" : "PUT", path, query, h, (i % 4) ? 5 : 3, T0, &a);
		if (st == SIGV4_OK)
			ok_count++;
		if (a.message[sizeof(a.message) - 1] != '\0')
			ok_count += 1000;
	}
	CHECK(ok_count == 0);

	/* mutating one byte of a valid request never crashes; a signature
	 * byte mutation always fails */
	sigv4_header h[4] = { { "host", "h" },
			      { "x-amz-date", "20130524T000000Z" },
			      { "x-amz-content-sha256", "UNSIGNED-PAYLOAD" },
			      { "authorization", NULL } };
	char base[512], m[512];
	sign_simple(AKID, "us-east-1", NULL, base, sizeof(base), h, 3);
	size_t L = strlen(base);
	int sig_fail = 1;
	for (size_t pos = 0; pos < L; pos++) {
		for (int k = 0; k < 4; k++) {
			memcpy(m, base, L + 1);
			m[pos] = (char)(rnd() % 254 + 1);
			if (m[pos] == base[pos])
				continue;
			h[3].value = m;
			sigv4_auth a;
			int st = verify("GET", "/b/k", NULL, h, 4, T0, &a);
			if (pos >= L - 64 && st == SIGV4_OK)
				sig_fail = 0;
		}
	}
	CHECK(sig_fail);
}

int main(void)
{
	test_aws_get_object();
	test_aws_put_object();
	test_aws_get_lifecycle_and_list();
	test_aws_presigned();
	test_aws_chunked_seed();
	test_get_vanilla();
	test_rejections();
	test_roundtrips();
	test_encode_and_status();
	test_garbage();
	return check_done("sigv4");
}
