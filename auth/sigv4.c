/*
 * sigv4.c - AWS Signature Version 4 verification and signing for S3 (header
 * and presigned-query forms). See sigv4.h for the contract and the daemon's
 * flow. Not here: the aws-chunked body (chunked.c), checksums, key storage.
 *
 * Canonicalisation follows S3 (not the generic SigV4 services): the path is
 * not normalised ("//" and ".." stay) and not double-encoded. The raw path is
 * percent-decoded and re-encoded with the RFC 3986 unreserved set so clients
 * that encode differently ('~', '=', '+', unicode) still match; if that does
 * not match, the path exactly as sent is tried (it authenticates the very
 * bytes received, so it is no weaker).
 */
#include "auth/sigv4.h"

#include "common/hex.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ALGO "AWS4-HMAC-SHA256"
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define MAX_PRESIGN_EXPIRES 604800L
#define MAX_SIGNED_HEADERS 128

/* ---- status table ------------------------------------------------------------ */

static const struct {
	int st;
	const char *code;
	int http;
	const char *msg;
} status_table[] = {
	{ SIGV4_OK, "OK", 200, "OK" },
	{ SIGV4_ANONYMOUS, "AccessDenied", 403, "Access Denied" },
	{ SIGV4_SIGNATURE_MISMATCH, "SignatureDoesNotMatch", 403,
	  "The request signature we calculated does not match the signature you provided. "
	  "Check your key and signing method." },
	{ SIGV4_INVALID_ACCESS_KEY, "InvalidAccessKeyId", 403,
	  "The AWS Access Key Id you provided does not exist in our records." },
	{ SIGV4_AUTH_HEADER_MALFORMED, "AuthorizationHeaderMalformed", 400,
	  "The authorization header is malformed." },
	{ SIGV4_AUTH_QUERY_ERROR, "AuthorizationQueryParametersError", 400,
	  "Error parsing the X-Amz-Credential parameter." },
	{ SIGV4_ACCESS_DENIED, "AccessDenied", 403, "Access Denied" },
	{ SIGV4_TIME_SKEWED, "RequestTimeTooSkewed", 403,
	  "The difference between the request time and the current time is too large." },
	{ SIGV4_MISSING_SECURITY_HEADER, "MissingSecurityHeader", 400,
	  "Your request is missing a required header." },
	{ SIGV4_INVALID_ARGUMENT, "InvalidArgument", 400, "Invalid Argument" },
	{ SIGV4_CONTENT_SHA256_MISMATCH, "XAmzContentSHA256Mismatch", 400,
	  "The provided 'x-amz-content-sha256' header does not match what was computed." },
	{ SIGV4_INCOMPLETE_BODY, "IncompleteBody", 400,
	  "You did not provide the number of bytes specified by the Content-Length HTTP header." },
	{ SIGV4_INVALID_REQUEST, "InvalidRequest", 400, "Invalid Request" },
	{ SIGV4_BAD_DIGEST, "BadDigest", 400,
	  "The checksum you specified did not match the calculated checksum." },
	{ SIGV4_INTERNAL_ERROR, "InternalError", 500,
	  "We encountered an internal error. Please try again." },
	{ SIGV4_ABORTED, "InternalError", 500, "The request body could not be processed." },
};
#define N_STATUS (sizeof(status_table) / sizeof(status_table[0]))

static size_t status_index(int st)
{
	for (size_t i = 0; i < N_STATUS; i++)
		if (status_table[i].st == st)
			return i;
	return N_STATUS - 2; /* InternalError */
}

const char *sigv4_status_code(int st)
{
	return status_table[status_index(st)].code;
}

int sigv4_status_http(int st)
{
	return status_table[status_index(st)].http;
}

const char *sigv4_status_message(int st)
{
	return status_table[status_index(st)].msg;
}

/* ---- small helpers ----------------------------------------------------------- */

static int fail(sigv4_auth *out, int st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(sigv4_auth *out, int st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(out->message, sizeof(out->message), fmt, ap);
	va_end(ap);
	out->status = st;
	out->payload_mode = SIGV4_PAYLOAD_NONE;
	OPENSSL_cleanse(out->signing_key, sizeof(out->signing_key));
	return st;
}

static int is_hex64(const char *s, int lower_only)
{
	if (!s || strlen(s) != 64)
		return 0;
	for (int i = 0; i < 64; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		      (!lower_only && c >= 'A' && c <= 'F')))
			return 0;
	}
	return 1;
}

static void sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char d[32];
	SHA256(data, len, d);
	sl_hex(d, 32, out);
}

static void hmac256(const void *key, size_t keylen, const void *data, size_t len,
		    unsigned char out[32])
{
	unsigned int olen = 32;
	HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &olen);
}

/* Growable string; on allocation failure it goes into an error state. */
typedef struct sbuf {
	char *p;
	size_t len, cap;
	int oom;
} sbuf;

static void sb_addn(sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t nc = b->cap ? b->cap : 256;
		while (nc < b->len + n + 1)
			nc *= 2;
		char *np = realloc(b->p, nc);
		if (!np) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_add(sbuf *b, const char *s)
{
	sb_addn(b, s, strlen(s));
}

static void sb_free(sbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static int unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '.' || c == '~';
}

static void sb_uri_encode(sbuf *b, const char *s, size_t n, int keep_slash)
{
	static const char hx[] = "0123456789ABCDEF";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (unreserved(c) || (keep_slash && c == '/')) {
			char ch = (char)c;
			sb_addn(b, &ch, 1);
		} else {
			char e[3] = { '%', hx[c >> 4], hx[c & 15] };
			sb_addn(b, e, 3);
		}
	}
}

int sigv4_uri_encode(const char *src, size_t len, int keep_slash, char *out, size_t cap)
{
	sbuf b = { 0 };
	sb_uri_encode(&b, src, len, keep_slash);
	sb_addn(&b, "", 0);
	if (b.oom || !b.p || b.len + 1 > cap) {
		sb_free(&b);
		return -1;
	}
	memcpy(out, b.p, b.len + 1);
	int n = (int)b.len;
	sb_free(&b);
	return n;
}

/* Percent-decodes s[0..n) into b (a malformed escape stays literal). '+'
 * becomes a space when plus_space. */
static void sb_pct_decode(sbuf *b, const char *s, size_t n, int plus_space)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '%' && i + 2 < n && sl_hexval(s[i + 1]) >= 0 && sl_hexval(s[i + 2]) >= 0) {
			char d = (char)(sl_hexval(s[i + 1]) * 16 + sl_hexval(s[i + 2]));
			sb_addn(b, &d, 1);
			i += 2;
		} else if (c == '+' && plus_space) {
			sb_addn(b, " ", 1);
		} else {
			sb_addn(b, &c, 1);
		}
	}
}

/* Re-encodes a raw (wire) string the AWS way: decode then encode. */
static void sb_reencode(sbuf *b, const char *s, size_t n, int keep_slash, int plus_space)
{
	sbuf tmp = { 0 };
	sb_pct_decode(&tmp, s, n, plus_space);
	if (tmp.oom) {
		b->oom = 1;
	} else if (tmp.len) {
		sb_uri_encode(b, tmp.p, tmp.len, keep_slash);
	}
	sb_free(&tmp);
}

/* Re-encodes a raw path segment by segment (split on the '/' sent), so an
 * encoded slash (%2F) inside a key stays distinct from a separator. */
static void sb_path_reencode(sbuf *b, const char *path)
{
	const char *p = path;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		sb_reencode(b, p, n, 0, 0);
		if (!slash)
			break;
		sb_addn(b, "/", 1);
		p = slash + 1;
	}
}

/* Trims s[0..n) and collapses runs of spaces/tabs into one space. */
static void sb_trimall(sbuf *b, const char *s, size_t n)
{
	size_t i = 0;
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	while (n > i && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	int sp = 0;
	for (; i < n; i++) {
		if (s[i] == ' ' || s[i] == '\t') {
			sp = 1;
			continue;
		}
		if (sp)
			sb_addn(b, " ", 1);
		sp = 0;
		sb_addn(b, &s[i], 1);
	}
}

const char *sigv4_header_get(const sigv4_header *h, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (h[i].name && strcasecmp(h[i].name, name) == 0)
			return h[i].value ? h[i].value : "";
	return NULL;
}

void sigv4_format_date(time_t t, char out[17])
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

/* Parses "YYYYMMDDTHHMMSSZ"; returns 0 and sets *t, or -1. */
static int parse_amz_date(const char *s, time_t *t)
{
	if (!s || strlen(s) != 16 || s[8] != 'T' || s[15] != 'Z')
		return -1;
	for (int i = 0; i < 15; i++)
		if (i != 8 && !isdigit((unsigned char)s[i]))
			return -1;
	struct tm tm = { 0 };
	tm.tm_year =
		(s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0') - 1900;
	tm.tm_mon = (s[4] - '0') * 10 + (s[5] - '0') - 1;
	tm.tm_mday = (s[6] - '0') * 10 + (s[7] - '0');
	tm.tm_hour = (s[9] - '0') * 10 + (s[10] - '0');
	tm.tm_min = (s[11] - '0') * 10 + (s[12] - '0');
	tm.tm_sec = (s[13] - '0') * 10 + (s[14] - '0');
	struct tm chk = tm;
	time_t v = timegm(&tm);
	struct tm back;
	if (v == (time_t)-1 || !gmtime_r(&v, &back) || back.tm_year != chk.tm_year ||
	    back.tm_mon != chk.tm_mon || back.tm_mday != chk.tm_mday ||
	    back.tm_hour != chk.tm_hour || back.tm_min != chk.tm_min || back.tm_sec != chk.tm_sec)
		return -1;
	*t = v;
	return 0;
}

/* Parses an RFC 1123 Date header ("Fri, 24 May 2013 00:00:00 GMT"). */
static int parse_http_date(const char *s, time_t *t)
{
	struct tm tm = { 0 };
	const char *e = strptime(s, "%a, %d %b %Y %H:%M:%S", &tm);
	if (!e)
		return -1;
	while (*e == ' ')
		e++;
	if (*e && strcmp(e, "GMT") != 0 && strcmp(e, "UTC") != 0 && strcmp(e, "+0000") != 0 &&
	    strcmp(e, "Z") != 0)
		return -1;
	time_t v = timegm(&tm);
	if (v == (time_t)-1)
		return -1;
	*t = v;
	return 0;
}

void sigv4_signing_key(const char *secret, const char *yyyymmdd, const char *region,
		       const char *service, unsigned char key[32])
{
	char k0[4 + SIGV4_MAX_SECRET + 1];
	size_t sl = strlen(secret);
	if (sl > SIGV4_MAX_SECRET)
		sl = SIGV4_MAX_SECRET;
	memcpy(k0, "AWS4", 4);
	memcpy(k0 + 4, secret, sl);
	unsigned char a[32], b[32];
	hmac256(k0, 4 + sl, yyyymmdd, strlen(yyyymmdd), a);
	hmac256(a, 32, region, strlen(region), b);
	hmac256(b, 32, service, strlen(service), a);
	hmac256(a, 32, "aws4_request", 12, key);
	OPENSSL_cleanse(k0, sizeof(k0));
	OPENSSL_cleanse(a, sizeof(a));
	OPENSSL_cleanse(b, sizeof(b));
}

/* ---- canonical request ---------------------------------------------------------- */

typedef struct qparam {
	char *name;  /* encoded */
	char *value; /* encoded */
} qparam;

static int qparam_cmp(const void *a, const void *b)
{
	const qparam *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : strcmp(x->value, y->value);
}

/* Appends the canonical query string of raw to b. skip_sig drops
 * X-Amz-Signature (presigned). raw_form keeps names/values as sent. */
static void canon_query(sbuf *b, const char *raw, int skip_sig, int plus_space, int raw_form)
{
	if (!raw || !*raw)
		return;
	size_t n = 1;
	for (const char *p = raw; *p; p++)
		if (*p == '&')
			n++;
	qparam *qs = calloc(n, sizeof(*qs));
	if (!qs) {
		b->oom = 1;
		return;
	}
	size_t nq = 0;
	const char *p = raw;
	while (*p) {
		const char *amp = strchr(p, '&');
		size_t len = amp ? (size_t)(amp - p) : strlen(p);
		if (len > 0) {
			const char *eq = memchr(p, '=', len);
			size_t nl = eq ? (size_t)(eq - p) : len;
			const char *v = eq ? eq + 1 : p + len;
			size_t vl = eq ? len - nl - 1 : 0;
			sbuf nb = { 0 }, vb = { 0 };
			if (raw_form) {
				sb_addn(&nb, p, nl);
				sb_addn(&vb, v, vl);
			} else {
				sb_reencode(&nb, p, nl, 0, plus_space);
				sb_reencode(&vb, v, vl, 0, plus_space);
			}
			sb_addn(&nb, "", 0);
			sb_addn(&vb, "", 0);
			if (nb.oom || vb.oom) {
				b->oom = 1;
				sb_free(&nb);
				sb_free(&vb);
			} else if (skip_sig && strcmp(nb.p, "X-Amz-Signature") == 0) {
				sb_free(&nb);
				sb_free(&vb);
			} else {
				qs[nq].name = nb.p;
				qs[nq].value = vb.p;
				nq++;
			}
		}
		if (!amp)
			break;
		p = amp + 1;
	}
	qsort(qs, nq, sizeof(*qs), qparam_cmp);
	for (size_t i = 0; i < nq; i++) {
		if (i)
			sb_addn(b, "&", 1);
		sb_add(b, qs[i].name);
		sb_addn(b, "=", 1);
		sb_add(b, qs[i].value);
		free(qs[i].name);
		free(qs[i].value);
	}
	free(qs);
}

/* Appends "name:value\n" for each signed header name (semicolon list). */
static void canon_headers(sbuf *b, const sigv4_header *h, size_t nh, const char *signed_list)
{
	const char *p = signed_list;
	while (*p) {
		const char *semi = strchr(p, ';');
		size_t nl = semi ? (size_t)(semi - p) : strlen(p);
		sb_addn(b, p, nl);
		sb_addn(b, ":", 1);
		int first = 1;
		for (size_t i = 0; i < nh; i++) {
			if (!h[i].name || strlen(h[i].name) != nl ||
			    strncasecmp(h[i].name, p, nl) != 0)
				continue;
			if (!first)
				sb_addn(b, ",", 1);
			first = 0;
			const char *v = h[i].value ? h[i].value : "";
			sb_trimall(b, v, strlen(v));
		}
		sb_addn(b, "\n", 1);
		if (!semi)
			break;
		p = semi + 1;
	}
}

struct canon_opts {
	int raw_path;	/* path exactly as sent instead of decode+re-encode */
	int plus_space; /* '+' in the query means space */
	int skip_sig;	/* drop X-Amz-Signature from the query */
};

/* Builds the canonical request into b. */
static void canon_request(sbuf *b, const char *method, const char *raw_path, const char *raw_query,
			  const sigv4_header *h, size_t nh, const char *signed_list,
			  const char *payload, const struct canon_opts *o)
{
	sb_add(b, method);
	sb_addn(b, "\n", 1);
	if (!raw_path || !*raw_path)
		sb_addn(b, "/", 1);
	else if (o->raw_path)
		sb_add(b, raw_path);
	else
		sb_path_reencode(b, raw_path);
	sb_addn(b, "\n", 1);
	canon_query(b, raw_query, o->skip_sig, o->plus_space, 0);
	sb_addn(b, "\n", 1);
	canon_headers(b, h, nh, signed_list);
	sb_addn(b, "\n", 1);
	sb_add(b, signed_list);
	sb_addn(b, "\n", 1);
	sb_add(b, payload);
}

/* string-to-sign from a canonical request; writes the signature hex. */
static void sign_canonical(const char *canon, size_t len, const char *amz_date, const char *scope,
			   const unsigned char key[32], char sts[512], char creq_hash[65],
			   char sig[65])
{
	sha256_hex(canon, len, creq_hash);
	snprintf(sts, 512, ALGO "\n%s\n%s\n%s", amz_date, scope, creq_hash);
	unsigned char mac[32];
	hmac256(key, 32, sts, strlen(sts), mac);
	sl_hex(mac, 32, sig);
}

/* ---- parsing the credentials ------------------------------------------------------ */

/* Splits "AKID/YYYYMMDD/region/service/aws4_request". 0 or -1. */
static int parse_credential(const char *cred, size_t len, char *akid, char *date, char *region,
			    char *service)
{
	const char *end = cred + len;
	const char *parts[4];
	const char *q = end;
	for (int i = 3; i >= 0; i--) {
		while (q > cred && q[-1] != '/')
			q--;
		if (q == cred)
			return -1;
		parts[i] = q;
		q--; /* at '/' */
	}
	size_t aklen = (size_t)(q - cred);
	size_t dlen = (size_t)(parts[1] - parts[0] - 1);
	size_t rlen = (size_t)(parts[2] - parts[1] - 1);
	size_t slen = (size_t)(parts[3] - parts[2] - 1);
	size_t tlen = (size_t)(end - parts[3]);
	if (aklen == 0 || aklen > SIGV4_MAX_KEY_ID || dlen != 8 || rlen == 0 || rlen >= 64 ||
	    slen == 0 || slen >= 32 || tlen != 12 || memcmp(parts[3], "aws4_request", 12) != 0)
		return -1;
	for (size_t i = 0; i < 8; i++)
		if (!isdigit((unsigned char)parts[0][i]))
			return -1;
	for (size_t i = 0; i < aklen; i++)
		if (!isgraph((unsigned char)cred[i]))
			return -1;
	for (size_t i = 0; i < rlen; i++)
		if (!isalnum((unsigned char)parts[1][i]) && parts[1][i] != '-' &&
		    parts[1][i] != '_')
			return -1;
	memcpy(akid, cred, aklen);
	akid[aklen] = '\0';
	memcpy(date, parts[0], 8);
	date[8] = '\0';
	memcpy(region, parts[1], rlen);
	region[rlen] = '\0';
	memcpy(service, parts[2], slen);
	service[slen] = '\0';
	return 0;
}

/* Signed header list: lowercase names of token chars separated by ';'. */
static int signed_list_valid(const char *s)
{
	if (!s || !*s)
		return 0;
	size_t n = 0, count = 1;
	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == ';') {
			if (n == 0)
				return 0;
			n = 0;
			count++;
			continue;
		}
		if (!(islower(c) || isdigit(c) || c == '-' || c == '_' || c == '.'))
			return 0;
		n++;
	}
	return n > 0 && count <= MAX_SIGNED_HEADERS;
}

static int signed_list_has(const char *list, const char *name)
{
	size_t nl = strlen(name);
	const char *p = list;
	while (*p) {
		const char *semi = strchr(p, ';');
		size_t l = semi ? (size_t)(semi - p) : strlen(p);
		if (l == nl && strncasecmp(p, name, nl) == 0)
			return 1;
		if (!semi)
			break;
		p = semi + 1;
	}
	return 0;
}

/* Finds a query parameter (exact, case-sensitive name) and percent-decodes its
 * value into out. Returns 1 found, 0 absent, -1 too long. */
static int query_get(const char *raw, const char *name, char *out, size_t cap)
{
	if (!raw)
		return 0;
	size_t nl = strlen(name);
	const char *p = raw;
	while (*p) {
		const char *amp = strchr(p, '&');
		size_t len = amp ? (size_t)(amp - p) : strlen(p);
		if (len >= nl && strncmp(p, name, nl) == 0 && (len == nl || p[nl] == '=')) {
			sbuf b = { 0 };
			if (len > nl)
				sb_pct_decode(&b, p + nl + 1, len - nl - 1, 0);
			sb_addn(&b, "", 0);
			int r = 1;
			if (b.oom || b.len + 1 > cap)
				r = -1;
			else
				memcpy(out, b.p, b.len + 1);
			sb_free(&b);
			return r;
		}
		if (!amp)
			break;
		p = amp + 1;
	}
	return 0;
}

static int query_has(const char *raw, const char *name)
{
	char tmp[8];
	return query_get(raw, name, tmp, sizeof(tmp)) != 0;
}

/* ---- verification --------------------------------------------------------------- */

struct parsed {
	char akid[SIGV4_MAX_KEY_ID + 1];
	char date[9];
	char region[64];
	char service[32];
	char signed_list[2048];
	char signature[80];
	char amz_date[17];
	time_t t;
	long expires; /* presigned */
};

/* Parses "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...". */
static int parse_auth_header(const char *v, struct parsed *ps, sigv4_auth *out)
{
	while (*v == ' ')
		v++;
	if (strncmp(v, "AWS ", 4) == 0)
		return fail(out, SIGV4_INVALID_REQUEST,
			    "The authorization mechanism you have provided is not supported. "
			    "Please use AWS4-HMAC-SHA256.");
	if (strcmp(v, ALGO) == 0)
		return fail(out, SIGV4_AUTH_HEADER_MALFORMED,
			    "The authorization header is malformed; it needs Credential, "
			    "SignedHeaders and Signature.");
	if (strncmp(v, ALGO, strlen(ALGO)) != 0 ||
	    (v[strlen(ALGO)] != ' ' && v[strlen(ALGO)] != '\t'))
		return fail(out, SIGV4_INVALID_ARGUMENT, "Unsupported Authorization Type");
	const char *p = v + strlen(ALGO);
	int have_c = 0, have_h = 0, have_s = 0;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			break;
		const char *eq = strchr(p, '=');
		if (!eq)
			return fail(out, SIGV4_AUTH_HEADER_MALFORMED,
				    "The authorization header is malformed; the authorization "
				    "component \"%.40s\" is malformed.",
				    p);
		const char *vend = eq + 1;
		while (*vend && *vend != ',' && *vend != ' ' && *vend != '\t')
			vend++;
		size_t kl = (size_t)(eq - p), vl = (size_t)(vend - eq - 1);
		const char *val = eq + 1;
		if (kl == 10 && strncmp(p, "Credential", 10) == 0 && !have_c) {
			if (parse_credential(val, vl, ps->akid, ps->date, ps->region,
					     ps->service) != 0)
				return fail(out, SIGV4_AUTH_HEADER_MALFORMED,
					    "The authorization header is malformed; the Credential "
					    "is "
					    "mal-formed; expecting "
					    "\"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/"
					    "aws4_request\".");
			have_c = 1;
		} else if (kl == 13 && strncmp(p, "SignedHeaders", 13) == 0 && !have_h) {
			if (vl >= sizeof(ps->signed_list))
				return fail(out, SIGV4_AUTH_HEADER_MALFORMED,
					    "The authorization header is malformed; SignedHeaders "
					    "is too long.");
			memcpy(ps->signed_list, val, vl);
			ps->signed_list[vl] = '\0';
			have_h = 1;
		} else if (kl == 9 && strncmp(p, "Signature", 9) == 0 && !have_s) {
			if (vl >= sizeof(ps->signature))
				vl = sizeof(ps->signature) - 1;
			memcpy(ps->signature, val, vl);
			ps->signature[vl] = '\0';
			have_s = 1;
		} else {
			return fail(out, SIGV4_AUTH_HEADER_MALFORMED,
				    "The authorization header is malformed; unexpected component "
				    "\"%.*s\".",
				    (int)(kl > 40 ? 40 : kl), p);
		}
		p = vend;
	}
	if (!have_c || !have_h || !have_s)
		return fail(out, SIGV4_AUTH_HEADER_MALFORMED,
			    "The authorization header is malformed; it needs Credential, "
			    "SignedHeaders and Signature.");
	if (!signed_list_valid(ps->signed_list))
		return fail(out, SIGV4_AUTH_HEADER_MALFORMED,
			    "The authorization header is malformed; SignedHeaders is invalid.");
	return SIGV4_OK;
}

static int parse_presign(const char *q, struct parsed *ps, sigv4_auth *out)
{
	char algo[32], cred[512], date[32], exp[32];
	int ra = query_get(q, "X-Amz-Algorithm", algo, sizeof(algo));
	int rc = query_get(q, "X-Amz-Credential", cred, sizeof(cred));
	int rd = query_get(q, "X-Amz-Date", date, sizeof(date));
	int re = query_get(q, "X-Amz-Expires", exp, sizeof(exp));
	int rh = query_get(q, "X-Amz-SignedHeaders", ps->signed_list, sizeof(ps->signed_list));
	int rs = query_get(q, "X-Amz-Signature", ps->signature, sizeof(ps->signature));
	if (ra <= 0 || rc <= 0 || rd <= 0 || re <= 0 || rh <= 0 || rs <= 0)
		return fail(out, SIGV4_AUTH_QUERY_ERROR,
			    "Query-string authentication version 4 requires the X-Amz-Algorithm, "
			    "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, "
			    "and X-Amz-Expires parameters.");
	if (strcmp(algo, ALGO) != 0)
		return fail(out, SIGV4_AUTH_QUERY_ERROR,
			    "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"");
	if (parse_credential(cred, strlen(cred), ps->akid, ps->date, ps->region, ps->service) != 0)
		return fail(out, SIGV4_AUTH_QUERY_ERROR,
			    "Error parsing the X-Amz-Credential parameter; the Credential is "
			    "mal-formed; expecting "
			    "\"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".");
	if (parse_amz_date(date, &ps->t) != 0)
		return fail(out, SIGV4_AUTH_QUERY_ERROR,
			    "X-Amz-Date must be in the ISO8601 Long Format "
			    "\"yyyyMMdd'T'HHmmss'Z'\"");
	memcpy(ps->amz_date, date, 17);
	char *end = NULL;
	long e = strtol(exp, &end, 10);
	if (!*exp || *end || !isdigit((unsigned char)exp[0]) || strlen(exp) > 7)
		return fail(out, SIGV4_AUTH_QUERY_ERROR, "X-Amz-Expires should be a number");
	if (e < 1)
		return fail(out, SIGV4_AUTH_QUERY_ERROR, "X-Amz-Expires must be non-negative");
	if (e > MAX_PRESIGN_EXPIRES)
		return fail(out, SIGV4_AUTH_QUERY_ERROR,
			    "X-Amz-Expires must be less than a week (in seconds) that is 604800");
	ps->expires = e;
	if (!signed_list_valid(ps->signed_list))
		return fail(out, SIGV4_AUTH_QUERY_ERROR, "X-Amz-SignedHeaders is invalid.");
	return SIGV4_OK;
}

static int payload_from_header(const char *v, sigv4_auth *out)
{
	if (strcmp(v, "UNSIGNED-PAYLOAD") == 0)
		out->payload_mode = SIGV4_PAYLOAD_UNSIGNED;
	else if (strcmp(v, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD") == 0)
		out->payload_mode = SIGV4_PAYLOAD_STREAMING_SIGNED;
	else if (strcmp(v, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER") == 0)
		out->payload_mode = SIGV4_PAYLOAD_STREAMING_SIGNED_TRAILER;
	else if (strcmp(v, "STREAMING-UNSIGNED-PAYLOAD-TRAILER") == 0)
		out->payload_mode = SIGV4_PAYLOAD_STREAMING_UNSIGNED_TRAILER;
	else if (is_hex64(v, 0)) {
		out->payload_mode = SIGV4_PAYLOAD_HASH;
		for (int i = 0; i < 64; i++)
			out->payload_hash[i] = (char)tolower((unsigned char)v[i]);
		out->payload_hash[64] = '\0';
	} else if (strncmp(v, "STREAMING-", 10) == 0) {
		return fail(out, SIGV4_INVALID_ARGUMENT,
			    "x-amz-content-sha256 value %.60s is not supported (SigV4a streaming).",
			    v);
	} else {
		return fail(out, SIGV4_INVALID_ARGUMENT,
			    "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, "
			    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, "
			    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, "
			    "STREAMING-UNSIGNED-PAYLOAD-TRAILER or a valid sha256 value.");
	}
	return SIGV4_OK;
}

static int parse_decoded_length(const char *v, int64_t *out)
{
	if (!v)
		return 0;
	while (*v == ' ')
		v++;
	if (!*v || strlen(v) > 18)
		return -1;
	int64_t n = 0;
	for (const char *p = v; *p; p++) {
		if (*p == ' ')
			break;
		if (!isdigit((unsigned char)*p))
			return -1;
		n = n * 10 + (*p - '0');
	}
	*out = n;
	return 0;
}

static int verify_impl(const sigv4_config *cfg, const sigv4_request *req, const char *body_hex,
		       sigv4_auth *out)
{
	int deferred = 0;
	memset(out, 0, sizeof(*out));
	out->decoded_length = -1;
	if (!cfg || !req || !req->method || (!req->headers && req->n_headers))
		return fail(out, SIGV4_INTERNAL_ERROR, "sigv4_verify: missing argument");

	const sigv4_header *h = req->headers;
	size_t nh = req->n_headers;
	const char *authz = sigv4_header_get(h, nh, "authorization");
	const char *q = req->raw_query ? req->raw_query : "";
	int qauth = query_has(q, "X-Amz-Algorithm") || query_has(q, "X-Amz-Signature") ||
		    query_has(q, "X-Amz-Credential");
	int qv2 = query_has(q, "AWSAccessKeyId") && query_has(q, "Signature");

	if (authz && (qauth || qv2))
		return fail(out, SIGV4_INVALID_ARGUMENT,
			    "Only one auth mechanism allowed; "
			    "only the X-Amz-Algorithm query parameter or the Authorization header "
			    "should be specified");
	if (!authz && qv2 && !qauth)
		return fail(out, SIGV4_INVALID_REQUEST,
			    "The authorization mechanism you have provided is not supported. "
			    "Please use AWS4-HMAC-SHA256.");
	if (!authz && !qauth) {
		out->status = SIGV4_ANONYMOUS;
		out->form = SIGV4_FORM_NONE;
		snprintf(out->message, sizeof(out->message), "Anonymous request");
		return SIGV4_ANONYMOUS;
	}

	struct parsed *ps = calloc(1, sizeof(*ps));
	if (!ps)
		return fail(out, SIGV4_INTERNAL_ERROR, "out of memory");
	int st;
	int presigned = !authz;
	int bad_st = presigned ? SIGV4_AUTH_QUERY_ERROR : SIGV4_AUTH_HEADER_MALFORMED;
	const char *bad_pre = presigned ? "Error parsing the X-Amz-Credential parameter;"
					: "The authorization header is malformed;";
	out->form = presigned ? SIGV4_FORM_QUERY : SIGV4_FORM_HEADER;

	if (presigned) {
		st = parse_presign(q, ps, out);
		if (st)
			goto done;
	} else {
		st = parse_auth_header(authz, ps, out);
		if (st)
			goto done;
		const char *xd = sigv4_header_get(h, nh, "x-amz-date");
		const char *dd = sigv4_header_get(h, nh, "date");
		if (xd) {
			char tmp[32];
			size_t l = strlen(xd);
			while (l && xd[l - 1] == ' ')
				l--;
			while (*xd == ' ' && l)
				xd++, l--;
			if (l >= sizeof(tmp))
				l = sizeof(tmp) - 1;
			memcpy(tmp, xd, l);
			tmp[l] = '\0';
			if (parse_amz_date(tmp, &ps->t) != 0) {
				st = fail(out, SIGV4_ACCESS_DENIED,
					  "AWS authentication requires a valid Date or x-amz-date "
					  "header");
				goto done;
			}
			memcpy(ps->amz_date, tmp, 17);
		} else if (dd && parse_http_date(dd, &ps->t) == 0) {
			sigv4_format_date(ps->t, ps->amz_date);
		} else {
			st = fail(out, SIGV4_ACCESS_DENIED,
				  "AWS authentication requires a valid Date or x-amz-date header");
			goto done;
		}
	}

	snprintf(out->access_key, sizeof(out->access_key), "%s", ps->akid);
	snprintf(out->region, sizeof(out->region), "%s", ps->region);
	memcpy(out->amz_date, ps->amz_date, 17);
	snprintf(out->scope, sizeof(out->scope), "%s/%s/%s/aws4_request", ps->date, ps->region,
		 ps->service);

	if (strncmp(ps->date, ps->amz_date, 8) != 0) {
		st = fail(out, bad_st,
			  "%s Invalid credential date \"%s\". This date is not the same "
			  "as X-Amz-Date: \"%.8s\".",
			  bad_pre, ps->date, ps->amz_date);
		goto done;
	}
	if (strcmp(ps->service, "s3") != 0) {
		st = fail(out, bad_st,
			  "%s incorrect service \"%s\". This endpoint belongs to \"s3\".", bad_pre,
			  ps->service);
		goto done;
	}
	if (cfg->region && *cfg->region && strcmp(cfg->region, ps->region) != 0) {
		st = fail(out, bad_st, "%s the region '%s' is wrong; expecting '%s'", bad_pre,
			  ps->region, cfg->region);
		goto done;
	}
	if (!signed_list_has(ps->signed_list, "host")) {
		st = fail(out, presigned ? SIGV4_AUTH_QUERY_ERROR : SIGV4_AUTH_HEADER_MALFORMED,
			  "%s the SignedHeaders must include 'host'.", bad_pre);
		goto done;
	}

	/* time */
	if (presigned) {
		long skew = cfg->max_skew_sec ? (long)cfg->max_skew_sec : 900;
		if ((long long)req->now > (long long)ps->t + ps->expires) {
			st = fail(out, SIGV4_ACCESS_DENIED, "Request has expired");
			goto done;
		}
		if ((long long)ps->t > (long long)req->now + skew) {
			st = fail(out, SIGV4_ACCESS_DENIED, "Request is not valid yet");
			goto done;
		}
	} else {
		long long skew = cfg->max_skew_sec ? (long long)cfg->max_skew_sec : 900;
		long long d = (long long)req->now - (long long)ps->t;
		if (d > skew || d < -skew) {
			char now_s[17];
			sigv4_format_date(req->now, now_s);
			st = fail(out, SIGV4_TIME_SKEWED,
				  "The difference between the request time (%s) and the server's "
				  "time (%s) is too large.",
				  ps->amz_date, now_s);
			goto done;
		}
	}

	/* payload */
	const char *payload_line;
	if (presigned) {
		out->payload_mode = SIGV4_PAYLOAD_UNSIGNED;
		payload_line = "UNSIGNED-PAYLOAD";
	} else {
		const char *cs = sigv4_header_get(h, nh, "x-amz-content-sha256");
		if (cs) {
			st = payload_from_header(cs, out);
			if (st)
				goto done;
			payload_line = cs;
		} else {
			/* Some clients (curl before 8) omit it and sign the body's
			 * hash: fine without a body; with one, the signature can
			 * only be checked once the body's hash is known. */
			const char *cl = sigv4_header_get(h, nh, "content-length");
			const char *te = sigv4_header_get(h, nh, "transfer-encoding");
			out->payload_mode = SIGV4_PAYLOAD_HASH;
			if (body_hex) {
				memcpy(out->payload_hash, body_hex, 65);
			} else if (te || (cl && strcmp(cl, "0") != 0)) {
				/* curl 7.x with -T signs the empty hash whatever
				 * the body: tried first, taken as UNSIGNED-PAYLOAD */
				deferred = 1;
				memcpy(out->payload_hash, EMPTY_SHA256, 65);
			} else {
				memcpy(out->payload_hash, EMPTY_SHA256, 65);
			}
			payload_line = out->payload_hash;
		}
		/* every x-amz-* header present must be signed */
		for (size_t i = 0; i < nh; i++) {
			if (h[i].name && strncasecmp(h[i].name, "x-amz-", 6) == 0 &&
			    !signed_list_has(ps->signed_list, h[i].name)) {
				st = fail(out, SIGV4_ACCESS_DENIED,
					  "There were headers present in the request which were "
					  "not "
					  "signed: %.100s",
					  h[i].name);
				goto done;
			}
		}
	}
	if (out->payload_mode >= SIGV4_PAYLOAD_STREAMING_SIGNED) {
		const char *dl = sigv4_header_get(h, nh, "x-amz-decoded-content-length");
		if (parse_decoded_length(dl, &out->decoded_length) != 0) {
			st = fail(out, SIGV4_INVALID_ARGUMENT,
				  "x-amz-decoded-content-length is not a valid length");
			goto done;
		}
		const char *tr = sigv4_header_get(h, nh, "x-amz-trailer");
		if (tr) {
			size_t i = 0;
			for (; tr[i] && i + 1 < sizeof(out->trailer); i++)
				out->trailer[i] = (char)tolower((unsigned char)tr[i]);
			out->trailer[i] = '\0';
		}
	}

	/* key */
	char *secret = calloc(1, SIGV4_MAX_SECRET + 1);
	if (!secret) {
		st = fail(out, SIGV4_INTERNAL_ERROR, "out of memory");
		goto done;
	}
	int lr = cfg->lookup ? cfg->lookup(cfg->lookup_ctx, ps->akid, secret, SIGV4_MAX_SECRET + 1)
			     : SIGV4_KEY_NOT_FOUND;
	secret[SIGV4_MAX_SECRET] = '\0';
	if (lr == SIGV4_KEY_FOUND)
		sigv4_signing_key(secret, ps->date, ps->region, ps->service, out->signing_key);
	OPENSSL_cleanse(secret, SIGV4_MAX_SECRET + 1);
	free(secret);
	if (lr == SIGV4_KEY_NOT_FOUND) {
		st = fail(out, SIGV4_INVALID_ACCESS_KEY,
			  "The AWS Access Key Id you provided does not exist in our records.");
		goto done;
	}
	if (lr == SIGV4_KEY_DISABLED) {
		st = fail(out, SIGV4_ACCESS_DENIED, "The access key is disabled.");
		goto done;
	}
	if (lr != SIGV4_KEY_FOUND) {
		st = fail(out, SIGV4_INTERNAL_ERROR, "The key lookup failed.");
		goto done;
	}

	/* signature: try the AWS canonical form, then the tolerated variants */
	int sig_ok = is_hex64(ps->signature, 1);
	int matched = 0;
	struct canon_opts variants[3] = {
		{ .raw_path = 0, .plus_space = 0, .skip_sig = presigned },
		{ .raw_path = 1, .plus_space = 0, .skip_sig = presigned },
		{ .raw_path = 0, .plus_space = 1, .skip_sig = presigned },
	};
	int nvar = 1;
	if (req->raw_path && *req->raw_path)
		nvar = 2;
	if (strchr(q, '+'))
		nvar = 3;
	for (int v = 0; v < nvar && sig_ok && !matched; v++) {
		sbuf b = { 0 };
		canon_request(&b, req->method, req->raw_path, q, h, nh, ps->signed_list,
			      payload_line, &variants[v]);
		if (b.oom) {
			sb_free(&b);
			st = fail(out, SIGV4_INTERNAL_ERROR, "out of memory");
			goto done;
		}
		char sts[512], ch[65], sig[65];
		sign_canonical(b.p, b.len, ps->amz_date, out->scope, out->signing_key, sts, ch,
			       sig);
		sb_free(&b);
		if (v == 0) {
			snprintf(out->string_to_sign, sizeof(out->string_to_sign), "%s", sts);
			memcpy(out->canonical_request_hash, ch, 65);
		}
		if (CRYPTO_memcmp(sig, ps->signature, 64) == 0)
			matched = 1;
	}
	if (!matched && deferred) {
		st = fail(out, SIGV4_MISSING_SECURITY_HEADER,
			  "Missing required header for this request: x-amz-content-sha256");
		goto done;
	}
	if (!matched) {
		st = fail(out, SIGV4_SIGNATURE_MISMATCH, "%s",
			  sigv4_status_message(SIGV4_SIGNATURE_MISMATCH));
		goto done;
	}
	if (deferred) {
		out->payload_mode = SIGV4_PAYLOAD_UNSIGNED;
		out->payload_hash[0] = '\0';
	}
	memcpy(out->signature, ps->signature, 65);
	out->status = SIGV4_OK;
	snprintf(out->message, sizeof(out->message), "OK");
	st = SIGV4_OK;
done:
	OPENSSL_cleanse(ps, sizeof(*ps));
	free(ps);
	return st;
}

int sigv4_verify(const sigv4_config *cfg, const sigv4_request *req, sigv4_auth *out)
{
	return verify_impl(cfg, req, NULL, out);
}

int sigv4_verify_with_payload(const sigv4_config *cfg, const sigv4_request *req,
			      const unsigned char body_sha256[32], sigv4_auth *out)
{
	char hx[65];
	if (!body_sha256)
		return verify_impl(cfg, req, NULL, out);
	sl_hex(body_sha256, 32, hx);
	return verify_impl(cfg, req, hx, out);
}

int sigv4_payload_check(const sigv4_auth *a, const unsigned char body_sha256[32])
{
	if (!a || a->payload_mode != SIGV4_PAYLOAD_HASH)
		return SIGV4_OK;
	char hx[65];
	sl_hex(body_sha256, 32, hx);
	return CRYPTO_memcmp(hx, a->payload_hash, 64) == 0 ? SIGV4_OK
							   : SIGV4_CONTENT_SHA256_MISMATCH;
}

void sigv4_auth_clear(sigv4_auth *a)
{
	if (a)
		OPENSSL_cleanse(a->signing_key, sizeof(a->signing_key));
}

/* ---- signing ----------------------------------------------------------------------- */

typedef struct hname {
	char name[128];
} hname;

static int hname_cmp(const void *a, const void *b)
{
	return strcmp(((const hname *)a)->name, ((const hname *)b)->name);
}

/* Sorted, deduplicated, lowercased signed-header list. */
static int build_signed_list(const sigv4_header *h, size_t nh, int host_only, char *out, size_t cap)
{
	hname *names = calloc(nh ? nh : 1, sizeof(*names));
	if (!names)
		return -1;
	size_t n = 0;
	for (size_t i = 0; i < nh; i++) {
		if (!h[i].name || strlen(h[i].name) >= sizeof(names[0].name))
			continue;
		if (host_only && strcasecmp(h[i].name, "host") != 0)
			continue;
		for (size_t k = 0; h[i].name[k]; k++)
			names[n].name[k] = (char)tolower((unsigned char)h[i].name[k]);
		n++;
	}
	qsort(names, n, sizeof(*names), hname_cmp);
	size_t len = 0;
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (i && strcmp(names[i].name, names[i - 1].name) == 0)
			continue;
		size_t l = strlen(names[i].name);
		if (len + l + 2 > cap) {
			free(names);
			return -1;
		}
		if (len)
			out[len++] = ';';
		memcpy(out + len, names[i].name, l + 1);
		len += l;
	}
	free(names);
	return len ? 0 : -1;
}

static int sign_common(const sigv4_sign_params *p, const char *signed_list, const char *query,
		       int skip_sig, char sig[65], char scope[160])
{
	const char *service = p->service ? p->service : "s3";
	if (strlen(p->amz_date) != 16)
		return -1;
	char day[9];
	memcpy(day, p->amz_date, 8);
	day[8] = '\0';
	snprintf(scope, 160, "%s/%s/%s/aws4_request", day, p->region, service);
	unsigned char key[32];
	sigv4_signing_key(p->secret, day, p->region, service, key);
	sbuf b = { 0 };
	struct canon_opts o = { .raw_path = 0, .plus_space = 0, .skip_sig = skip_sig };
	const char *payload = skip_sig ? "UNSIGNED-PAYLOAD"
				       : (p->payload_hash ? p->payload_hash : "UNSIGNED-PAYLOAD");
	canon_request(&b, p->method, p->raw_path, query, p->headers, p->n_headers, signed_list,
		      payload, &o);
	if (b.oom) {
		sb_free(&b);
		OPENSSL_cleanse(key, sizeof(key));
		return -1;
	}
	char sts[512], ch[65];
	sign_canonical(b.p, b.len, p->amz_date, scope, key, sts, ch, sig);
	sb_free(&b);
	OPENSSL_cleanse(key, sizeof(key));
	return 0;
}

int sigv4_sign(const sigv4_sign_params *p, char *out, size_t cap, char signature[65])
{
	if (!p || !p->method || !p->access_key || !p->secret || !p->region || !p->amz_date || !out)
		return -1;
	char list[2048], sig[65], scope[160];
	if (build_signed_list(p->headers, p->n_headers, 0, list, sizeof(list)) != 0)
		return -1;
	if (sign_common(p, list, p->raw_query, 0, sig, scope) != 0)
		return -1;
	int n = snprintf(out, cap, ALGO " Credential=%s/%s, SignedHeaders=%s, Signature=%s",
			 p->access_key, scope, list, sig);
	if (n < 0 || (size_t)n >= cap)
		return -1;
	if (signature)
		memcpy(signature, sig, 65);
	return 0;
}

int sigv4_presign(const sigv4_sign_params *p, unsigned expires_sec, char *out, size_t cap)
{
	if (!p || !p->method || !p->access_key || !p->secret || !p->region || !p->amz_date ||
	    !out || expires_sec == 0)
		return -1;
	char list[64];
	if (build_signed_list(p->headers, p->n_headers, 1, list, sizeof(list)) != 0)
		return -1;
	const char *service = p->service ? p->service : "s3";
	char cred[512];
	int cn = snprintf(cred, sizeof(cred), "%s/%.8s/%s/%s/aws4_request", p->access_key,
			  p->amz_date, p->region, service);
	if (cn < 0 || (size_t)cn >= sizeof(cred))
		return -1;
	sbuf q = { 0 };
	if (p->raw_query && *p->raw_query) {
		sb_add(&q, p->raw_query);
		sb_addn(&q, "&", 1);
	}
	sb_add(&q, "X-Amz-Algorithm=" ALGO "&X-Amz-Credential=");
	sb_uri_encode(&q, cred, strlen(cred), 0);
	sb_add(&q, "&X-Amz-Date=");
	sb_add(&q, p->amz_date);
	char num[32];
	snprintf(num, sizeof(num), "%u", expires_sec);
	sb_add(&q, "&X-Amz-Expires=");
	sb_add(&q, num);
	sb_add(&q, "&X-Amz-SignedHeaders=");
	sb_uri_encode(&q, list, strlen(list), 0);
	if (q.oom) {
		sb_free(&q);
		return -1;
	}
	char sig[65], scope[160];
	if (sign_common(p, list, q.p, 1, sig, scope) != 0) {
		sb_free(&q);
		return -1;
	}
	sb_add(&q, "&X-Amz-Signature=");
	sb_add(&q, sig);
	int r = -1;
	if (!q.oom && q.len + 1 <= cap) {
		memcpy(out, q.p, q.len + 1);
		r = 0;
	}
	sb_free(&q);
	return r;
}
