/*
 * bucket.c - bucket-level S3 operations: ListBuckets, Create/Delete/Head
 * Bucket, GetBucketLocation, Get/PutBucketVersioning, Get/Put/DeleteBucket
 * Cors, DeleteObjects and a fixed private ACL. Each is a translation to one
 * or a few core calls plus the XML AWS clients parse. Not here: listing
 * objects (list.c), CORS matching (cors.c).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "s3d/s3d_int.h"

void s3d_op_list_buckets(s3d_req *r)
{
	core_bucket *bs = NULL;
	size_t n = 0;
	sl_err e = { 0 };
	int rc = core_bucket_list(r->srv->core, &bs, &n, &e);
	if (rc != 0) {
		s3d_error_sl(r, rc, &e);
		return;
	}
	s3d_buf b = { 0 };
	s3d_buf_puts(&b, S3D_XML_HEAD "<ListAllMyBucketsResult " S3D_XMLNS ">");
	s3d_buf_owner(r, &b, "Owner");
	s3d_buf_puts(&b, "<Buckets>");
	for (size_t i = 0; i < n; i++) {
		s3d_buf_puts(&b, "<Bucket>");
		s3d_buf_elem(&b, "Name", bs[i].name);
		s3d_buf_elem_time(&b, "CreationDate", bs[i].created_ms);
		s3d_buf_puts(&b, "</Bucket>");
	}
	s3d_buf_puts(&b, "</Buckets></ListAllMyBucketsResult>");
	free(bs);
	s3d_respond_xml(r, 200, &b);
}

/* Answers NoSuchBucket (or another error) if the bucket is missing. */
static int s3d_bucket_need(s3d_req *r, core_bucket *out)
{
	core_bucket tmp;
	sl_err e = { 0 };
	int rc = core_bucket_get(r->srv->core, r->bucket, out ? out : &tmp, &e);
	if (rc != 0) {
		s3d_error_sl(r, rc, &e);
		return -1;
	}
	return 0;
}

/* ---- CreateBucket ---------------------------------------------------------- */

typedef struct create_ctx {
	char location[64];
	int bad;
} create_ctx;

static int s3d_create_xml(void *ctx, int depth, const char *const *path, const char *text)
{
	create_ctx *c = ctx;
	if (depth == 1 && strcmp(path[0], "CreateBucketConfiguration") != 0)
		return -1;
	if (text && depth == 2 && strcmp(path[1], "LocationConstraint") == 0) {
		if (strlen(text) >= sizeof(c->location))
			return -1;
		strcpy(c->location, text);
	}
	return 0;
}

static void s3d_create_finish(s3d_req *r)
{
	create_ctx c = { 0 };
	if (r->mem.len > 0 && s3d_xml_parse(r->mem.p, r->mem.len, s3d_create_xml, &c) != 0) {
		s3d_error(r, "MalformedXML", 400, NULL);
		return;
	}
	const char *region = r->srv->region;
	if (c.location[0] && strcmp(c.location, region) != 0 &&
	    !(strcmp(region, "us-east-1") == 0 && strcmp(c.location, "US") == 0)) {
		s3d_error(r, "InvalidLocationConstraint", 400,
			  "The specified location-constraint is not valid for this endpoint.");
		return;
	}
	int vers = CORE_VERS_UNVERSIONED;
	const char *unv = s3d_hdr(r, "x-seglake-unversioned");
	if (unv && strcasecmp(unv, "true") == 0)
		vers = CORE_VERS_DISABLED;
	sl_err e = { 0 };
	int rc = core_bucket_create(r->srv->core, r->bucket, vers, &e);
	if (rc == SL_EBUCKETEXISTS && strcmp(region, "us-east-1") == 0) {
		/* AWS us-east-1 answers an owner's repeated create with 200. */
		rc = 0;
	}
	if (rc != 0) {
		s3d_error_sl(r, rc, &e);
		return;
	}
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (resp) {
		char loc[80];
		snprintf(loc, sizeof(loc), "/%s", r->bucket);
		s3d_hadd(resp, "Location", loc);
	}
	s3d_respond(r, 200, resp);
}

void s3d_op_create_bucket(s3d_req *r)
{
	if (!core_bucket_name_valid(r->bucket)) {
		s3d_error(r, "InvalidBucketName", 400, NULL);
		return;
	}
	if (s3d_body_setup(r, S3D_BODY_MEM, S3D_MAX_SMALL_XML) != 0)
		return;
	r->finish = s3d_create_finish;
}

void s3d_op_delete_bucket(s3d_req *r)
{
	sl_err e = { 0 };
	int rc = core_bucket_delete(r->srv->core, r->bucket, &e);
	if (rc != 0) {
		s3d_error_sl(r, rc, &e);
		return;
	}
	s3d_respond_empty(r, 204);
}

void s3d_op_head_bucket(s3d_req *r)
{
	core_bucket b;
	if (s3d_bucket_need(r, &b) != 0)
		return;
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (resp) {
		s3d_hadd(resp, "x-amz-bucket-region", r->srv->region);
		if (b.versioning == CORE_VERS_DISABLED)
			s3d_hadd(resp, "x-seglake-unversioned", "true");
	}
	s3d_respond(r, 200, resp);
}

void s3d_op_get_location(s3d_req *r)
{
	if (s3d_bucket_need(r, NULL) != 0)
		return;
	s3d_buf b = { 0 };
	s3d_buf_puts(&b, S3D_XML_HEAD "<LocationConstraint " S3D_XMLNS ">");
	/* AWS writes an empty constraint for us-east-1. */
	if (strcmp(r->srv->region, "us-east-1") != 0)
		s3d_buf_xml(&b, r->srv->region);
	s3d_buf_puts(&b, "</LocationConstraint>");
	s3d_respond_xml(r, 200, &b);
}

void s3d_op_get_acl(s3d_req *r)
{
	if (r->key) {
		core_objinfo oi = { 0 };
		sl_err e = { 0 };
		int rc = core_head(r->srv->core, r->bucket, r->key, s3d_arg_get(r, "versionId"),
				   &oi, &e);
		core_objinfo_clear(&oi);
		if (rc != 0) {
			s3d_error_sl(r, rc, &e);
			return;
		}
	} else if (s3d_bucket_need(r, NULL) != 0) {
		return;
	}
	s3d_buf b = { 0 };
	s3d_buf_puts(&b, S3D_XML_HEAD "<AccessControlPolicy " S3D_XMLNS ">");
	s3d_buf_owner(r, &b, "Owner");
	s3d_buf_printf(&b,
		       "<AccessControlList><Grant><Grantee "
		       "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
		       "xsi:type=\"CanonicalUser\"><ID>%s</ID><DisplayName>seglake</DisplayName>"
		       "</Grantee><Permission>FULL_CONTROL</Permission></Grant></AccessControlList>"
		       "</AccessControlPolicy>",
		       r->srv->owner_id);
	s3d_respond_xml(r, 200, &b);
}

/* ---- versioning ------------------------------------------------------------ */

void s3d_op_get_versioning(s3d_req *r)
{
	core_bucket bk;
	if (s3d_bucket_need(r, &bk) != 0)
		return;
	s3d_buf b = { 0 };
	s3d_buf_puts(&b, S3D_XML_HEAD "<VersioningConfiguration " S3D_XMLNS ">");
	if (bk.versioning == CORE_VERS_ENABLED)
		s3d_buf_puts(&b, "<Status>Enabled</Status>");
	else if (bk.versioning == CORE_VERS_SUSPENDED)
		s3d_buf_puts(&b, "<Status>Suspended</Status>");
	s3d_buf_puts(&b, "</VersioningConfiguration>");
	struct MHD_Response *resp = s3d_xml_response(r, &b);
	if (resp && bk.versioning == CORE_VERS_DISABLED)
		s3d_hadd(resp, "x-seglake-unversioned", "true");
	s3d_respond(r, 200, resp);
}

typedef struct vers_ctx {
	char status[32];
	char mfa[32];
} vers_ctx;

static int s3d_vers_xml(void *ctx, int depth, const char *const *path, const char *text)
{
	vers_ctx *c = ctx;
	if (depth == 1 && strcmp(path[0], "VersioningConfiguration") != 0)
		return -1;
	if (text && depth == 2) {
		if (strcmp(path[1], "Status") == 0)
			snprintf(c->status, sizeof(c->status), "%s", text);
		else if (strcmp(path[1], "MfaDelete") == 0 || strcmp(path[1], "MFADelete") == 0)
			snprintf(c->mfa, sizeof(c->mfa), "%s", text);
	}
	return 0;
}

int s3d_parse_versioning(const char *doc, size_t len, char status[32])
{
	vers_ctx c = { 0 };
	status[0] = '\0';
	if (!doc || s3d_xml_parse(doc, len, s3d_vers_xml, &c) != 0)
		return -1;
	memcpy(status, c.status, sizeof(c.status));
	return 0;
}

static void s3d_put_versioning_finish(s3d_req *r)
{
	vers_ctx c = { 0 };
	if (s3d_parse_versioning(r->mem.p, r->mem.len, c.status) != 0) {
		s3d_error(r, "MalformedXML", 400, NULL);
		return;
	}
	int state;
	if (strcmp(c.status, "Enabled") == 0)
		state = CORE_VERS_ENABLED;
	else if (strcmp(c.status, "Suspended") == 0)
		state = CORE_VERS_SUSPENDED;
	else {
		s3d_error(r, "IllegalVersioningConfigurationException", 400,
			  "The versioning Status must be Enabled or Suspended.");
		return;
	}
	if (strcmp(c.mfa, "Enabled") == 0) {
		s3d_error(r, "NotImplemented", 501, "MFA delete is not supported.");
		return;
	}
	sl_err e = { 0 };
	int rc = core_bucket_set_versioning(r->srv->core, r->bucket, state, &e);
	if (rc == SL_ENOTSUP) {
		s3d_error(r, "InvalidBucketState", 409,
			  "This bucket was created unversioned; versioning cannot be enabled.");
		return;
	}
	if (rc != 0) {
		s3d_error_sl(r, rc, &e);
		return;
	}
	s3d_respond_empty(r, 200);
}

void s3d_op_put_versioning(s3d_req *r)
{
	if (s3d_bucket_need(r, NULL) != 0)
		return;
	if (s3d_body_setup(r, S3D_BODY_MEM, S3D_MAX_SMALL_XML) != 0)
		return;
	r->finish = s3d_put_versioning_finish;
}

/* ---- CORS configuration ---------------------------------------------------- */

void s3d_op_get_cors(s3d_req *r)
{
	char *doc = NULL;
	sl_err e = { 0 };
	int rc = core_bucket_config_get(r->srv->core, r->bucket, "cors", &doc, &e);
	if (rc == SL_ENOKEY) {
		s3d_error(r, "NoSuchCORSConfiguration", 404, NULL);
		return;
	}
	if (rc != 0) {
		s3d_error_sl(r, rc, &e);
		return;
	}
	s3d_buf b = { 0 };
	s3d_buf_puts(&b, doc);
	free(doc);
	s3d_respond_xml(r, 200, &b);
}

static void s3d_put_cors_finish(s3d_req *r)
{
	char msg[160];
	int v = r->mem.p ? s3d_cors_validate(r->mem.p, r->mem.len, msg, sizeof(msg)) : -1;
	if (v != 0) {
		s3d_error(r, v == -2 ? "InvalidRequest" : "MalformedXML", 400,
			  r->mem.p ? msg : NULL);
		return;
	}
	sl_err e = { 0 };
	int rc = core_bucket_config_set(r->srv->core, r->bucket, "cors", r->mem.p, &e);
	if (rc != 0) {
		s3d_error_sl(r, rc, &e);
		return;
	}
	s3d_respond_empty(r, 200);
}

void s3d_op_put_cors(s3d_req *r)
{
	if (s3d_bucket_need(r, NULL) != 0)
		return;
	if (s3d_body_setup(r, S3D_BODY_MEM, S3D_MAX_SMALL_XML) != 0)
		return;
	r->finish = s3d_put_cors_finish;
}

void s3d_op_delete_cors(s3d_req *r)
{
	if (s3d_bucket_need(r, NULL) != 0)
		return;
	sl_err e = { 0 };
	int rc = core_bucket_config_set(r->srv->core, r->bucket, "cors", NULL, &e);
	if (rc != 0 && rc != SL_ENOKEY) {
		s3d_error_sl(r, rc, &e);
		return;
	}
	s3d_respond_empty(r, 204);
}

/* ---- DeleteObjects --------------------------------------------------------- */

#define S3D_MAX_DELETE 1000

typedef s3d_del_obj del_obj;

typedef struct del_ctx {
	del_obj *objs;
	size_t n;
	int quiet;
	int in_object;
	int bad;
} del_ctx;

static int s3d_del_xml(void *ctx, int depth, const char *const *path, const char *text)
{
	del_ctx *c = ctx;
	if (depth == 1 && strcmp(path[0], "Delete") != 0)
		return -1;
	if (depth == 2 && strcmp(path[1], "Object") == 0) {
		if (!text) {
			if (c->n >= S3D_MAX_DELETE)
				return -1;
			c->objs[c->n].key = NULL;
			c->objs[c->n].version = NULL;
			c->in_object = 1;
		} else {
			if (!c->objs[c->n].key)
				return -1; /* every Object needs a Key */
			c->n++;
			c->in_object = 0;
		}
		return 0;
	}
	if (!text)
		return 0;
	if (depth == 2 && strcmp(path[1], "Quiet") == 0) {
		if (strcasecmp(text, "true") == 0)
			c->quiet = 1;
		else if (strcasecmp(text, "false") != 0)
			return -1;
	} else if (depth == 3 && c->in_object && strcmp(path[2], "Key") == 0) {
		free(c->objs[c->n].key);
		c->objs[c->n].key = strdup(text);
		if (!c->objs[c->n].key)
			return -1;
	} else if (depth == 3 && c->in_object && strcmp(path[2], "VersionId") == 0) {
		free(c->objs[c->n].version);
		c->objs[c->n].version = strdup(text);
		if (!c->objs[c->n].version)
			return -1;
	}
	return 0;
}

int s3d_parse_delete(const char *doc, size_t len, s3d_del_list *out)
{
	del_ctx c = { 0 };
	memset(out, 0, sizeof(*out));
	c.objs = calloc(S3D_MAX_DELETE + 1, sizeof(*c.objs));
	if (!c.objs)
		return -2;
	int bad = !doc || s3d_xml_parse(doc, len, s3d_del_xml, &c) != 0 || c.n == 0;
	out->objs = c.objs;
	/* a partly parsed Object may hold strings too: free up to it */
	out->n = c.n;
	out->quiet = c.quiet;
	if (bad && c.n < S3D_MAX_DELETE + 1 && (c.objs[c.n].key || c.objs[c.n].version))
		out->n = c.n + 1;
	return bad ? -1 : 0;
}

void s3d_del_list_free(s3d_del_list *l)
{
	for (size_t i = 0; l->objs && i < l->n; i++) {
		free(l->objs[i].key);
		free(l->objs[i].version);
	}
	free(l->objs);
	memset(l, 0, sizeof(*l));
}

static void s3d_delete_objects_finish(s3d_req *r)
{
	s3d_del_list c = { 0 };
	int pr = s3d_parse_delete(r->mem.p, r->mem.len, &c);
	if (pr == -2) {
		s3d_del_list_free(&c);
		s3d_error(r, "SlowDown", 503, "out of memory");
		return;
	}
	int bad = pr < 0;
	if (bad) {
		s3d_error(r, "MalformedXML", 400, NULL);
	} else {
		s3d_buf b = { 0 };
		s3d_buf_puts(&b, S3D_XML_HEAD "<DeleteResult " S3D_XMLNS ">");
		for (size_t i = 0; i < c.n; i++) {
			core_del_result res = { 0 };
			sl_err e = { 0 };
			const char *ver = c.objs[i].version;
			int rc = strlen(c.objs[i].key) > CORE_MAX_KEY
					 ? SL_EINVAL
					 : core_delete(r->srv->core, r->bucket, c.objs[i].key, ver,
						       &res, &e);
			if (rc == SL_ENOKEY || (rc == SL_ENOVERSION && ver))
				rc = 0; /* deleting what is not there succeeds, as on AWS */
			if (rc != 0) {
				unsigned st;
				const char *code = s3d_sl_code(rc, &st);
				s3d_buf_puts(&b, "<Error>");
				s3d_buf_elem(&b, "Key", c.objs[i].key);
				s3d_buf_elem(&b, "VersionId", ver);
				s3d_buf_elem(&b, "Code", code);
				s3d_buf_elem(&b, "Message", e.msg[0] ? e.msg : code);
				s3d_buf_puts(&b, "</Error>");
				continue;
			}
			if (c.quiet)
				continue;
			s3d_buf_puts(&b, "<Deleted>");
			s3d_buf_elem(&b, "Key", c.objs[i].key);
			if (ver) {
				s3d_buf_elem(&b, "VersionId", ver);
				if (res.delete_marker) {
					s3d_buf_puts(&b, "<DeleteMarker>true</DeleteMarker>");
					s3d_buf_elem(&b, "DeleteMarkerVersionId", ver);
				}
			} else if (res.delete_marker) {
				s3d_buf_puts(&b, "<DeleteMarker>true</DeleteMarker>");
				s3d_buf_elem(&b, "DeleteMarkerVersionId", res.version_id);
			}
			s3d_buf_puts(&b, "</Deleted>");
		}
		s3d_buf_puts(&b, "</DeleteResult>");
		s3d_respond_xml(r, 200, &b);
	}
	s3d_del_list_free(&c);
}

void s3d_op_delete_objects(s3d_req *r)
{
	if (s3d_bucket_need(r, NULL) != 0)
		return;
	if (s3d_body_setup(r, S3D_BODY_MEM, S3D_MAX_XML_BODY) != 0)
		return;
	r->finish = s3d_delete_objects_finish;
}
