/*
 * cors.c - bucket CORS: validating a CORSConfiguration document, answering
 * preflight OPTIONS requests from its rules and adding Access-Control-*
 * headers to actual requests that carry an Origin. The document itself is
 * stored verbatim as the bucket's "cors" configuration by bucket.c.
 * Not here: storage of the document (core/).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "s3d/s3d_int.h"

#define CORS_MAX_RULES 100
#define CORS_MAX_ITEMS 64

enum { CORS_ORIGIN, CORS_METHOD, CORS_HEADER, CORS_EXPOSE, CORS_NLISTS };

typedef struct cors_rule {
	char *items[CORS_NLISTS][CORS_MAX_ITEMS];
	int n[CORS_NLISTS];
	long max_age; /* -1 if unset */
} cors_rule;

typedef struct cors_cfg {
	cors_rule *rules;
	int n;
	int bad; /* 1 malformed, 2 invalid value */
	char msg[160];
} cors_cfg;

static void cors_free(cors_cfg *c)
{
	for (int i = 0; i < c->n && c->rules; i++)
		for (int l = 0; l < CORS_NLISTS; l++)
			for (int k = 0; k < c->rules[i].n[l]; k++)
				free(c->rules[i].items[l][k]);
	free(c->rules);
	c->rules = NULL;
	c->n = 0;
}

static int cors_xml(void *ctx, int depth, const char *const *path, const char *text)
{
	cors_cfg *c = ctx;
	if (depth == 1 && strcmp(path[0], "CORSConfiguration") != 0)
		return -1;
	if (depth == 2 && strcmp(path[1], "CORSRule") == 0) {
		if (!text) {
			if (c->n >= CORS_MAX_RULES) {
				snprintf(c->msg, sizeof(c->msg), "too many CORS rules (max %d)",
					 CORS_MAX_RULES);
				return -1;
			}
			cors_rule *ru = &c->rules[c->n];
			memset(ru, 0, sizeof(*ru));
			ru->max_age = -1;
		} else {
			cors_rule *ru = &c->rules[c->n];
			c->n++;
			if (ru->n[CORS_ORIGIN] == 0 || ru->n[CORS_METHOD] == 0) {
				snprintf(c->msg, sizeof(c->msg),
					 "every CORSRule needs an AllowedOrigin and an "
					 "AllowedMethod");
				return -1;
			}
		}
		return 0;
	}
	if (depth == 2 && !text)
		return -1; /* only CORSRule under the root */
	if (!text || depth != 3 || strcmp(path[1], "CORSRule") != 0)
		return 0;
	cors_rule *ru = &c->rules[c->n];
	int list = -1;
	if (strcmp(path[2], "AllowedOrigin") == 0)
		list = CORS_ORIGIN;
	else if (strcmp(path[2], "AllowedMethod") == 0)
		list = CORS_METHOD;
	else if (strcmp(path[2], "AllowedHeader") == 0)
		list = CORS_HEADER;
	else if (strcmp(path[2], "ExposeHeader") == 0)
		list = CORS_EXPOSE;
	else if (strcmp(path[2], "MaxAgeSeconds") == 0) {
		uint64_t v;
		if (s3d_parse_u64(text, &v) != 0 || v > 0x7fffffff)
			return -1;
		ru->max_age = (long)v;
		return 0;
	} else if (strcmp(path[2], "ID") == 0) {
		return 0;
	} else {
		return -1;
	}
	if (list == CORS_METHOD && strcmp(text, "GET") != 0 && strcmp(text, "PUT") != 0 &&
	    strcmp(text, "POST") != 0 && strcmp(text, "DELETE") != 0 && strcmp(text, "HEAD") != 0) {
		snprintf(c->msg, sizeof(c->msg),
			 "Found unsupported HTTP method in CORS config. Unsupported method is "
			 "%.60s",
			 text);
		c->bad = 2;
		return -1;
	}
	if (list == CORS_ORIGIN || list == CORS_HEADER) {
		const char *star = strchr(text, '*');
		if (star && strchr(star + 1, '*')) {
			snprintf(c->msg, sizeof(c->msg), "%s can not have more than one wildcard.",
				 path[2]);
			c->bad = 2;
			return -1;
		}
	}
	if (ru->n[list] >= CORS_MAX_ITEMS || !*text)
		return -1;
	ru->items[list][ru->n[list]] = strdup(text);
	if (!ru->items[list][ru->n[list]])
		return -1;
	ru->n[list]++;
	return 0;
}

/* 0 ok; -1 malformed; -2 invalid value. */
static int cors_parse(const char *doc, size_t len, cors_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->rules = calloc(CORS_MAX_RULES + 1, sizeof(*c->rules));
	if (!c->rules)
		return -1;
	int rc = s3d_xml_parse(doc, len, cors_xml, c);
	/* A rule interrupted mid-way still owns its strings. */
	if (rc != 0 && c->n < CORS_MAX_RULES + 1)
		c->n++;
	if (rc != 0 || c->n == 0) {
		if (!c->msg[0])
			snprintf(c->msg, sizeof(c->msg), "%s",
				 "The XML you provided was not well-formed or did not validate "
				 "against our published schema");
		return c->bad == 2 ? -2 : -1;
	}
	return 0;
}

int s3d_cors_validate(const char *doc, size_t len, char *msg, size_t cap)
{
	cors_cfg c;
	int rc = cors_parse(doc, len, &c);
	snprintf(msg, cap, "%s", c.msg);
	cors_free(&c);
	return rc;
}

/* Pattern with at most one '*'. */
static int cors_wild(const char *pat, const char *s, int icase)
{
	const char *star = strchr(pat, '*');
	if (!star)
		return icase ? strcasecmp(pat, s) == 0 : strcmp(pat, s) == 0;
	size_t pre = (size_t)(star - pat), post = strlen(star + 1), n = strlen(s);
	if (n < pre + post)
		return 0;
	if (icase)
		return strncasecmp(pat, s, pre) == 0 && strcasecmp(star + 1, s + n - post) == 0;
	return strncmp(pat, s, pre) == 0 && strcmp(star + 1, s + n - post) == 0;
}

static int cors_list_has(const cors_rule *ru, int list, const char *s, int icase)
{
	for (int k = 0; k < ru->n[list]; k++)
		if (cors_wild(ru->items[list][k], s, icase))
			return 1;
	return 0;
}

/* Every comma-separated header requested must be allowed. */
static int cors_headers_ok(const cors_rule *ru, const char *req)
{
	if (!req)
		return 1;
	const char *p = req;
	while (*p) {
		while (*p == ' ' || *p == ',')
			p++;
		if (!*p)
			break;
		size_t n = strcspn(p, ",");
		char h[128];
		size_t hn = n;
		while (hn && p[hn - 1] == ' ')
			hn--;
		if (hn >= sizeof(h))
			return 0;
		memcpy(h, p, hn);
		h[hn] = '\0';
		if (!cors_list_has(ru, CORS_HEADER, h, 1))
			return 0;
		p += n;
	}
	return 1;
}

static const cors_rule *cors_match(const cors_cfg *c, const char *origin, const char *method,
				   const char *req_headers)
{
	for (int i = 0; i < c->n; i++) {
		const cors_rule *ru = &c->rules[i];
		if (cors_list_has(ru, CORS_ORIGIN, origin, 0) &&
		    cors_list_has(ru, CORS_METHOD, method, 0) && cors_headers_ok(ru, req_headers))
			return ru;
	}
	return NULL;
}

static void cors_join(const cors_rule *ru, int list, char *out, size_t cap)
{
	out[0] = '\0';
	for (int k = 0; k < ru->n[list]; k++) {
		if (k)
			strncat(out, ", ", cap - strlen(out) - 1);
		strncat(out, ru->items[list][k], cap - strlen(out) - 1);
	}
}

static void cors_rule_headers(struct MHD_Response *resp, const cors_rule *ru, const char *origin)
{
	char buf[2048];
	int any = cors_list_has(ru, CORS_ORIGIN, "*", 0) && ru->n[CORS_ORIGIN] == 1 &&
		  strcmp(ru->items[CORS_ORIGIN][0], "*") == 0;
	s3d_hadd(resp, "Access-Control-Allow-Origin", any ? "*" : origin);
	if (!any)
		s3d_hadd(resp, "Access-Control-Allow-Credentials", "true");
	cors_join(ru, CORS_METHOD, buf, sizeof(buf));
	s3d_hadd(resp, "Access-Control-Allow-Methods", buf);
	if (ru->n[CORS_EXPOSE]) {
		cors_join(ru, CORS_EXPOSE, buf, sizeof(buf));
		s3d_hadd(resp, "Access-Control-Expose-Headers", buf);
	}
	if (ru->max_age >= 0) {
		snprintf(buf, sizeof(buf), "%ld", ru->max_age);
		s3d_hadd(resp, "Access-Control-Max-Age", buf);
	}
	s3d_hadd(resp, "Vary",
		 "Origin, Access-Control-Request-Headers, Access-Control-Request-Method");
}

/* Loads the bucket's rules; 0 ok, SL_ENOKEY if none, other SL_E*. */
static int cors_load(s3d_req *r, cors_cfg *c)
{
	char *doc = NULL;
	int rc = core_bucket_config_get(r->srv->core, r->bucket, "cors", &doc, NULL);
	if (rc != 0)
		return rc;
	rc = cors_parse(doc, strlen(doc), c) == 0 ? 0 : SL_EINTERNAL;
	free(doc);
	if (rc != 0)
		cors_free(c);
	return rc;
}

void s3d_op_cors_preflight(s3d_req *r)
{
	const char *origin = s3d_hdr(r, "Origin");
	const char *method = s3d_hdr(r, "Access-Control-Request-Method");
	if (!r->bucket) {
		s3d_error(r, "InvalidRequest", 400, "CORS preflight needs a bucket.");
		return;
	}
	if (!origin) {
		s3d_error(r, "InvalidRequest", 400,
			  "Insufficient information. Origin request header needed.");
		return;
	}
	if (!method) {
		s3d_error(r, "InvalidRequest", 400, "Invalid Access-Control-Request-Method: null");
		return;
	}
	cors_cfg c;
	int rc = cors_load(r, &c);
	if (rc == SL_ENOBUCKET) {
		s3d_error(r, "AccessForbidden", 403, "CORSResponse: Bucket not found");
		return;
	}
	if (rc != 0) {
		s3d_error(r, "AccessForbidden", 403,
			  "CORSResponse: CORS is not enabled for this bucket.");
		return;
	}
	const char *reqh = s3d_hdr(r, "Access-Control-Request-Headers");
	const cors_rule *ru = cors_match(&c, origin, method, reqh);
	if (!ru) {
		cors_free(&c);
		s3d_error(r, "AccessForbidden", 403, NULL);
		return;
	}
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (resp) {
		cors_rule_headers(resp, ru, origin);
		if (reqh)
			s3d_hadd(resp, "Access-Control-Allow-Headers", reqh);
	}
	cors_free(&c);
	s3d_respond(r, 200, resp);
}

void s3d_cors_headers(s3d_req *r, struct MHD_Response *resp)
{
	const char *origin = s3d_hdr(r, "Origin");
	cors_cfg c;
	if (!origin || cors_load(r, &c) != 0)
		return;
	const cors_rule *ru = cors_match(&c, origin, r->method, NULL);
	if (ru)
		cors_rule_headers(resp, ru, origin);
	cors_free(&c);
}
