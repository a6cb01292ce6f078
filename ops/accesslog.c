/*
 * accesslog.c - formats access log lines as JSON (see accesslog.h) with
 * jansson, so every value is escaped. Not here: writing or rotating logs.
 */
#include "ops/accesslog.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static int redact_name(const char *name, size_t len)
{
	static const char *const secret[] = { "X-Amz-Signature", "X-Amz-Security-Token",
					      "Signature", "X-Amz-Credential-Secret", NULL };
	for (int i = 0; secret[i]; i++)
		if (strlen(secret[i]) == len && strncasecmp(name, secret[i], len) == 0)
			return 1;
	return 0;
}

void ops_redact_query(const char *q, char *out, size_t cap)
{
	size_t o = 0;
	if (!cap)
		return;
	out[0] = '\0';
	if (!q)
		return;
	while (*q) {
		const char *amp = strchr(q, '&');
		size_t plen = amp ? (size_t)(amp - q) : strlen(q);
		const char *eq = memchr(q, '=', plen);
		size_t nlen = eq ? (size_t)(eq - q) : plen;
		const char *val = q;
		size_t vlen = plen;
		char buf[160];
		if (eq && redact_name(q, nlen)) {
			snprintf(buf, sizeof(buf), "%.*s=REDACTED", (int)(nlen > 100 ? 100 : nlen),
				 q);
			val = buf;
			vlen = strlen(buf);
		}
		if (o + vlen + 2 >= cap)
			break;
		memcpy(out + o, val, vlen);
		o += vlen;
		if (amp)
			out[o++] = '&';
		out[o] = '\0';
		if (!amp)
			break;
		q = amp + 1;
	}
}

char *ops_access_line(const ops_access *a)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char when[96];
	snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
	json_t *o = json_object();
	if (!o)
		return NULL;
	json_object_set_new(o, "time", json_string(when));
	json_object_set_new(o, "request_id", json_string(a->request_id ? a->request_id : ""));
	json_object_set_new(o, "remote", json_string(a->remote ? a->remote : ""));
	json_object_set_new(o, "key_id",
			    a->key_id && *a->key_id ? json_string(a->key_id)
						    : json_string("anonymous"));
	json_object_set_new(o, "op", json_string(a->op ? a->op : ""));
	if (a->method)
		json_object_set_new(o, "method", json_string(a->method));
	if (a->bucket && *a->bucket)
		json_object_set_new(o, "bucket", json_stringn(a->bucket, strlen(a->bucket)));
	if (a->key && *a->key)
		json_object_set_new(o, "key", json_stringn(a->key, strlen(a->key)));
	if (a->query && *a->query) {
		size_t cap = strlen(a->query) + 64;
		char *q = malloc(cap);
		if (q) {
			ops_redact_query(a->query, q, cap);
			json_object_set_new(o, "query", json_string(q));
			free(q);
		}
	}
	json_object_set_new(o, "status", json_integer(a->status));
	if (a->error && *a->error)
		json_object_set_new(o, "error", json_string(a->error));
	json_object_set_new(o, "bytes_in", json_integer((json_int_t)a->bytes_in));
	json_object_set_new(o, "bytes_out", json_integer((json_int_t)a->bytes_out));
	json_object_set_new(o, "duration_ms", json_real(a->duration_ms));
	if (a->user_agent && *a->user_agent)
		json_object_set_new(o, "user_agent", json_string(a->user_agent));
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return s;
}
