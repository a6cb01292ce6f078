/*
 * util.c - small text helpers of the S3 daemon: percent coding, HTTP and
 * ISO dates, ETag lists, number parsing. Pure functions, no I/O.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "common/hex.h"
#include "s3d/s3d_int.h"

char *s3d_url_decode(const char *src, size_t len, int plus_space)
{
	char *out = malloc(len + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		char c = src[i];
		if (c == '%') {
			if (i + 2 >= len) {
				free(out);
				return NULL;
			}
			int h = sl_hexval((unsigned char)src[i + 1]);
			int l = sl_hexval((unsigned char)src[i + 2]);
			if (h < 0 || l < 0 || (h == 0 && l == 0)) {
				free(out);
				return NULL;
			}
			out[o++] = (char)(h * 16 + l);
			i += 2;
		} else if (c == '+' && plus_space) {
			out[o++] = ' ';
		} else {
			out[o++] = c;
		}
	}
	out[o] = '\0';
	return out;
}

char *s3d_url_encode(const char *s)
{
	size_t n = strlen(s);
	char *out = malloc(n * 3 + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~' || *p == '/') {
			out[o++] = (char)*p;
		} else {
			static const char hx[] = "0123456789ABCDEF";
			out[o++] = '%';
			out[o++] = hx[*p >> 4];
			out[o++] = hx[*p & 15];
		}
	}
	out[o] = '\0';
	return out;
}

void s3d_http_date(int64_t ms, char out[40])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	static const char *wd[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *mo[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
				    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	snprintf(out, 40, "%s, %02d %s %04d %02d:%02d:%02d GMT", wd[tm.tm_wday], tm.tm_mday,
		 mo[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

void s3d_iso_date(int64_t ms, char out[40])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(out, 40, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (tm.tm_year + 1900) % 10000,
		 (tm.tm_mon + 1) % 100, tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100,
		 tm.tm_sec % 100, (int)(ms % 1000 + 1000) % 1000);
}

int64_t s3d_parse_http_date(const char *s)
{
	static const char *fmts[] = {
		"%a, %d %b %Y %H:%M:%S GMT", /* RFC 1123 */
		"%A, %d-%b-%y %H:%M:%S GMT", /* RFC 850 */
		"%a %b %e %H:%M:%S %Y",	     /* asctime */
		"%Y-%m-%dT%H:%M:%S",	     /* ISO 8601 (some SDKs) */
	};
	for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
		struct tm tm;
		memset(&tm, 0, sizeof(tm));
		const char *end = strptime(s, fmts[i], &tm);
		if (end) {
			time_t t = timegm(&tm);
			if (t != (time_t)-1)
				return (int64_t)t;
		}
	}
	return -1;
}

void s3d_etag_unquote(const char *in, char *out, size_t cap)
{
	while (*in == ' ')
		in++;
	if (strncmp(in, "W/", 2) == 0)
		in += 2;
	size_t n = strlen(in);
	while (n && in[n - 1] == ' ')
		n--;
	if (n >= 2 && in[0] == '"' && in[n - 1] == '"') {
		in++;
		n -= 2;
	}
	if (n >= cap)
		n = cap - 1;
	memcpy(out, in, n);
	out[n] = '\0';
}

int s3d_etag_list_match(const char *list, const char *etag)
{
	const char *p = list;
	while (*p) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		char item[128], clean[128];
		if (n < sizeof(item)) {
			memcpy(item, p, n);
			item[n] = '\0';
			s3d_etag_unquote(item, clean, sizeof(clean));
			if (strcmp(clean, "*") == 0 || strcmp(clean, etag) == 0)
				return 1;
		}
		if (!comma)
			break;
		p = comma + 1;
	}
	return 0;
}

int64_t s3d_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int s3d_parse_u64(const char *s, uint64_t *out)
{
	if (!s || !*s)
		return -1;
	uint64_t v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*out = v;
	return 0;
}

int s3d_utf8_valid(const char *s)
{
	if (!s)
		return 1;
	json_t *j = json_string(s); /* jansson refuses invalid UTF-8 */
	if (!j)
		return 0;
	json_decref(j);
	return 1;
}
