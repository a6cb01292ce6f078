/*
 * router.c - picks the S3 operation for an authenticated request from the
 * method, the presence of bucket/key and the sub-resource query parameters.
 * Unknown sub-resources get NotImplemented, wrong methods MethodNotAllowed.
 * Not here: parsing (server.c) or doing the operation (op files).
 */
#include <string.h>

#include "s3d/s3d_int.h"

/* Sub-resources we do not implement: answered NotImplemented (or the AWS
 * "not configured" answer for GETs that clients probe). */
static const struct {
	const char *arg;
	const char *get_code; /* GET answer when unset, NULL = NotImplemented */
} s3d_unsupported[] = {
	{ "policy", "NoSuchBucketPolicy" },
	{ "lifecycle", "NoSuchLifecycleConfiguration" },
	{ "tagging", NULL },
	{ "encryption", "ServerSideEncryptionConfigurationNotFoundError" },
	{ "object-lock", "ObjectLockConfigurationNotFoundError" },
	{ "website", "NoSuchWebsiteConfiguration" },
	{ "replication", NULL },
	{ "notification", NULL },
	{ "requestPayment", NULL },
	{ "accelerate", NULL },
	{ "analytics", NULL },
	{ "inventory", NULL },
	{ "metrics", NULL },
	{ "intelligent-tiering", NULL },
	{ "ownershipControls", NULL },
	{ "publicAccessBlock", NULL },
	{ "policyStatus", NULL },
	{ "legal-hold", NULL },
	{ "retention", NULL },
	{ "restore", NULL },
	{ "select", NULL },
	{ "torrent", NULL },
	{ "attributes", NULL },
};

static int s3d_route_unsupported(s3d_req *r)
{
	for (size_t i = 0; i < sizeof(s3d_unsupported) / sizeof(s3d_unsupported[0]); i++) {
		if (!s3d_arg_has(r, s3d_unsupported[i].arg))
			continue;
		if (strcmp(r->method, "GET") == 0 &&
		    strcmp(s3d_unsupported[i].arg, "tagging") == 0) {
			/* No tags are ever stored: an empty tag set. */
			s3d_buf b = { 0 };
			s3d_buf_puts(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
					 "<Tagging "
					 "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
					 "<TagSet></TagSet></Tagging>");
			s3d_respond_xml(r, 200, &b);
			return 1;
		}
		if (strcmp(r->method, "GET") == 0 && s3d_unsupported[i].get_code && !r->key) {
			s3d_error(r, s3d_unsupported[i].get_code, 0, NULL);
			return 1;
		}
		s3d_error(r, "NotImplemented", 501, NULL);
		return 1;
	}
	return 0;
}

static void s3d_route_service(s3d_req *r)
{
	if (strcmp(r->method, "GET") == 0)
		s3d_op_list_buckets(r);
	else
		s3d_error(r, "MethodNotAllowed", 405, NULL);
}

static void s3d_route_bucket(s3d_req *r)
{
	const char *m = r->method;
	if (strcmp(m, "GET") == 0) {
		if (s3d_arg_has(r, "versioning"))
			s3d_op_get_versioning(r);
		else if (s3d_arg_has(r, "cors"))
			s3d_op_get_cors(r);
		else if (s3d_arg_has(r, "location"))
			s3d_op_get_location(r);
		else if (s3d_arg_has(r, "versions"))
			s3d_op_list_versions(r);
		else if (s3d_arg_has(r, "uploads"))
			s3d_op_list_uploads(r);
		else if (s3d_arg_has(r, "acl"))
			s3d_op_get_acl(r);
		else if (s3d_arg_has(r, "policy"))
			s3d_op_get_policy(r); /* access.c */
		else if (s3d_route_unsupported(r))
			;
		else if (s3d_arg_has(r, "logging")) {
			s3d_buf b = { 0 };
			s3d_buf_puts(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
					 "<BucketLoggingStatus "
					 "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"/>");
			s3d_respond_xml(r, 200, &b);
		} else {
			const char *lt = s3d_arg_get(r, "list-type");
			if (lt && strcmp(lt, "2") == 0)
				s3d_op_list_objects(r, 1);
			else if (lt)
				s3d_error(r, "InvalidArgument", 400, "Invalid list-type.");
			else
				s3d_op_list_objects(r, 0);
		}
	} else if (strcmp(m, "PUT") == 0) {
		if (s3d_arg_has(r, "versioning"))
			s3d_op_put_versioning(r);
		else if (s3d_arg_has(r, "cors"))
			s3d_op_put_cors(r);
		else if (s3d_arg_has(r, "acl"))
			s3d_error(r, "NotImplemented", 501,
				  "ACLs are not supported; buckets are private.");
		else if (s3d_arg_has(r, "policy"))
			s3d_op_put_policy(r);
		else if (s3d_route_unsupported(r))
			;
		else
			s3d_op_create_bucket(r);
	} else if (strcmp(m, "HEAD") == 0) {
		s3d_op_head_bucket(r);
	} else if (strcmp(m, "DELETE") == 0) {
		if (s3d_arg_has(r, "cors"))
			s3d_op_delete_cors(r);
		else if (s3d_arg_has(r, "policy"))
			s3d_op_delete_policy(r);
		else if (s3d_route_unsupported(r))
			;
		else
			s3d_op_delete_bucket(r);
	} else if (strcmp(m, "POST") == 0) {
		if (s3d_arg_has(r, "delete"))
			s3d_op_delete_objects(r);
		else
			s3d_error(r, "NotImplemented", 501, NULL);
	} else {
		s3d_error(r, "MethodNotAllowed", 405, NULL);
	}
}

static void s3d_route_object(s3d_req *r)
{
	const char *m = r->method;
	if (strcmp(m, "GET") == 0) {
		if (s3d_arg_has(r, "uploadId"))
			s3d_op_mpu_list_parts(r);
		else if (s3d_arg_has(r, "acl"))
			s3d_op_get_acl(r);
		else if (s3d_route_unsupported(r))
			;
		else
			s3d_op_get_object(r, 0);
	} else if (strcmp(m, "HEAD") == 0) {
		s3d_op_get_object(r, 1);
	} else if (strcmp(m, "PUT") == 0) {
		if (s3d_arg_has(r, "uploadId") || s3d_arg_has(r, "partNumber")) {
			if (s3d_hdr(r, "x-amz-copy-source"))
				s3d_op_mpu_part_copy(r);
			else
				s3d_op_mpu_part(r);
		} else if (s3d_arg_has(r, "acl")) {
			s3d_error(r, "NotImplemented", 501,
				  "ACLs are not supported; objects are private.");
		} else if (s3d_route_unsupported(r)) {
			;
		} else if (s3d_hdr(r, "x-amz-copy-source")) {
			s3d_op_copy_object(r);
		} else {
			s3d_op_put_object(r);
		}
	} else if (strcmp(m, "DELETE") == 0) {
		if (s3d_arg_has(r, "uploadId"))
			s3d_op_mpu_abort(r);
		else if (s3d_route_unsupported(r))
			;
		else
			s3d_op_delete_object(r);
	} else if (strcmp(m, "POST") == 0) {
		if (s3d_arg_has(r, "uploads"))
			s3d_op_mpu_create(r);
		else if (s3d_arg_has(r, "uploadId"))
			s3d_op_mpu_complete(r);
		else
			s3d_error(r, "NotImplemented", 501, NULL);
	} else {
		s3d_error(r, "MethodNotAllowed", 405, NULL);
	}
}

void s3d_route(s3d_req *r)
{
	if (s3d_access_route(r)) /* /metrics, /v1/meta/stats (access.c) */
		return;
	if (r->srv->o.repl_route && strncmp(r->raw_path, "/v1/repl/", 9) == 0 && r->bucket &&
	    strcmp(r->bucket, "v1") == 0 && r->key && strncmp(r->key, "repl/", 5) == 0) {
		r->srv->o.repl_route(r->srv->o.repl_ctx, r); /* replication (repl/) */
		return;
	}
	if (!r->bucket)
		s3d_route_service(r);
	else if (!r->key)
		s3d_route_bucket(r);
	else
		s3d_route_object(r);
}
