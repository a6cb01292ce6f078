/*
 * xml.c - XML for the S3 daemon: a growable text buffer that writes escaped
 * XML by hand (responses), and a bounded expat wrapper that reports element
 * paths and text (request bodies). Not here: the meaning of any document.
 */
#include <expat.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3d/s3d_int.h"

void s3d_buf_free(s3d_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

static int s3d_buf_reserve(s3d_buf *b, size_t more)
{
	if (b->oom)
		return -1;
	if (b->len + more + 1 <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 512;
	while (cap < b->len + more + 1)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p) {
		b->oom = 1;
		return -1;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

void s3d_buf_add(s3d_buf *b, const void *data, size_t len)
{
	if (s3d_buf_reserve(b, len) != 0)
		return;
	memcpy(b->p + b->len, data, len);
	b->len += len;
	b->p[b->len] = '\0';
}

void s3d_buf_puts(s3d_buf *b, const char *s)
{
	s3d_buf_add(b, s, strlen(s));
}

void s3d_buf_printf(s3d_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || s3d_buf_reserve(b, (size_t)n) != 0)
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void s3d_buf_xml(s3d_buf *b, const char *s)
{
	const char *run = s;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		const char *rep = NULL;
		char tmp[8];
		switch (*p) {
		case '&':
			rep = "&amp;";
			break;
		case '<':
			rep = "&lt;";
			break;
		case '>':
			rep = "&gt;";
			break;
		case '"':
			rep = "&quot;";
			break;
		case '\'':
			rep = "&apos;";
			break;
		default:
			if (*p < 0x20 && *p != '\t' && *p != '\n') {
				/* \r would be normalised away by parsers; others are not XML 1.0
				 * characters at all. AWS writes them as references too. */
				snprintf(tmp, sizeof(tmp), "&#x%X;", *p);
				rep = tmp;
			}
		}
		if (rep) {
			s3d_buf_add(b, run, (size_t)((const char *)p - run));
			s3d_buf_puts(b, rep);
			run = (const char *)p + 1;
		}
	}
	s3d_buf_puts(b, run);
}

void s3d_buf_elem(s3d_buf *b, const char *name, const char *text)
{
	if (!text)
		return;
	s3d_buf_printf(b, "<%s>", name);
	s3d_buf_xml(b, text);
	s3d_buf_printf(b, "</%s>", name);
}

void s3d_buf_elem_enc(s3d_buf *b, const char *name, const char *text, int url)
{
	if (!text)
		return;
	if (!url) {
		s3d_buf_elem(b, name, text);
		return;
	}
	char *e = s3d_url_encode(text);
	if (!e) {
		b->oom = 1;
		return;
	}
	s3d_buf_elem(b, name, e);
	free(e);
}

void s3d_buf_elem_time(s3d_buf *b, const char *name, int64_t ms)
{
	char t[40];
	s3d_iso_date(ms, t);
	s3d_buf_elem(b, name, t);
}

/* ---- parsing -------------------------------------------------------------- */

#define XML_MAX_DEPTH 16
#define XML_MAX_TEXT 8192

typedef struct xml_state {
	XML_Parser p;
	s3d_xml_fn fn;
	void *ctx;
	int depth;
	char *path[XML_MAX_DEPTH];
	char text[XML_MAX_TEXT + 1];
	size_t tlen;
	int failed;
} xml_state;

static void xml_fail(xml_state *s)
{
	s->failed = 1;
	XML_StopParser(s->p, XML_FALSE);
}

static void XMLCALL xml_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
	(void)atts;
	xml_state *s = ud;
	if (s->failed)
		return;
	if (s->depth >= XML_MAX_DEPTH) {
		xml_fail(s);
		return;
	}
	/* Namespace prefixes ("s3:Key") are dropped; S3 documents use a default namespace. */
	const char *colon = strrchr(name, ':');
	s->path[s->depth] = strdup(colon ? colon + 1 : name);
	if (!s->path[s->depth]) {
		xml_fail(s);
		return;
	}
	s->depth++;
	s->tlen = 0;
	if (s->fn(s->ctx, s->depth, (const char *const *)s->path, NULL) != 0)
		xml_fail(s);
}

static void XMLCALL xml_end(void *ud, const XML_Char *name)
{
	(void)name;
	xml_state *s = ud;
	if (s->failed)
		return;
	s->text[s->tlen] = '\0';
	char *t = s->text;
	/* Keys may legitimately carry spaces at the ends; trim only line breaks
	 * and tabs used for pretty printing. */
	while (*t == '\n' || *t == '\r' || *t == '\t')
		t++;
	size_t n = strlen(t);
	while (n && (t[n - 1] == '\n' || t[n - 1] == '\r' || t[n - 1] == '\t'))
		t[--n] = '\0';
	if (s->fn(s->ctx, s->depth, (const char *const *)s->path, t) != 0)
		xml_fail(s);
	s->depth--;
	free(s->path[s->depth]);
	s->path[s->depth] = NULL;
	s->tlen = 0;
}

static void XMLCALL xml_chars(void *ud, const XML_Char *data, int len)
{
	xml_state *s = ud;
	if (s->failed || len <= 0)
		return;
	if (s->tlen + (size_t)len > XML_MAX_TEXT) {
		xml_fail(s);
		return;
	}
	memcpy(s->text + s->tlen, data, (size_t)len);
	s->tlen += (size_t)len;
}

/* Refuses DTDs (and with them entity expansion tricks). */
static void XMLCALL xml_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
				const XML_Char *pubid, int has_internal)
{
	(void)name;
	(void)sysid;
	(void)pubid;
	(void)has_internal;
	xml_fail(ud);
}

int s3d_xml_parse(const char *doc, size_t len, s3d_xml_fn fn, void *ctx)
{
	xml_state *s = calloc(1, sizeof(*s));
	if (!s)
		return -1;
	s->p = XML_ParserCreate("UTF-8");
	if (!s->p) {
		free(s);
		return -1;
	}
	s->fn = fn;
	s->ctx = ctx;
	XML_SetUserData(s->p, s);
	XML_SetElementHandler(s->p, xml_start, xml_end);
	XML_SetCharacterDataHandler(s->p, xml_chars);
	XML_SetStartDoctypeDeclHandler(s->p, xml_doctype);
	int ok = len > 0 && len <= INT32_MAX &&
		 XML_Parse(s->p, doc, (int)len, XML_TRUE) == XML_STATUS_OK && !s->failed;
	for (int i = 0; i < s->depth; i++)
		free(s->path[i]);
	XML_ParserFree(s->p);
	free(s);
	return ok ? 0 : -1;
}
