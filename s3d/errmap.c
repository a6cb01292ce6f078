/*
 * errmap.c - the one place where failures become S3 errors: SL_E* codes
 * from the core map to an S3 code and HTTP status, and every S3 code has
 * its usual status and message. Answers are the AWS XML error document
 * (Code, Message, Resource, RequestId). Not here: deciding what failed.
 */
#include <string.h>

#include "s3d/s3d_int.h"

typedef struct s3d_code {
	const char *code;
	unsigned status;
	const char *msg;
} s3d_code;

static const s3d_code s3d_codes[] = {
	{ "AccessDenied", 403, "Access Denied" },
	{ "AccessForbidden", 403, "CORSResponse: This CORS request is not allowed." },
	{ "AuthorizationHeaderMalformed", 400, "The authorization header is malformed." },
	{ "AuthorizationQueryParametersError", 400,
	  "Error parsing the X-Amz-Credential parameter." },
	{ "BadDigest", 400,
	  "The Content-MD5 or checksum you specified did not match what we received." },
	{ "BucketAlreadyExists", 409, "The requested bucket name is not available." },
	{ "BucketAlreadyOwnedByYou", 409,
	  "Your previous request to create the named bucket succeeded and you already own it." },
	{ "BucketNotEmpty", 409, "The bucket you tried to delete is not empty" },
	{ "EntityTooLarge", 400, "Your proposed upload exceeds the maximum allowed object size." },
	{ "EntityTooSmall", 400,
	  "Your proposed upload is smaller than the minimum allowed object size." },
	{ "IllegalVersioningConfigurationException", 400,
	  "The versioning configuration specified in the request is invalid." },
	{ "IncompleteBody", 400,
	  "You did not provide the number of bytes specified by the Content-Length HTTP header." },
	{ "InternalError", 500, "We encountered an internal error. Please try again." },
	{ "InvalidAccessKeyId", 403,
	  "The AWS Access Key Id you provided does not exist in our records." },
	{ "InvalidArgument", 400, "Invalid Argument" },
	{ "InvalidBucketName", 400, "The specified bucket is not valid." },
	{ "InvalidBucketState", 409,
	  "The request is not valid with the current state of the bucket." },
	{ "InvalidDigest", 400, "The Content-MD5 you specified is not valid." },
	{ "InvalidLocationConstraint", 400, "The specified location-constraint is not valid" },
	{ "InvalidURI", 400, "Couldn't parse the specified URI." },
	{ "InvalidPart", 400,
	  "One or more of the specified parts could not be found. The part may not have been "
	  "uploaded, or the specified entity tag may not match the part's entity tag." },
	{ "InvalidPartNumber", 416, "The requested partnumber is not satisfiable" },
	{ "InvalidPartOrder", 400,
	  "The list of parts was not in ascending order. Parts must be ordered by part number." },
	{ "InvalidRange", 416, "The requested range is not satisfiable" },
	{ "InvalidRequest", 400, "Invalid Request" },
	{ "KeyTooLongError", 400, "Your key is too long" },
	{ "MalformedXML", 400,
	  "The XML you provided was not well-formed or did not validate against our published "
	  "schema" },
	{ "MaxMessageLengthExceeded", 400, "Your request was too big." },
	{ "MetadataTooLarge", 400,
	  "Your metadata headers exceed the maximum allowed metadata size." },
	{ "MethodNotAllowed", 405, "The specified method is not allowed against this resource." },
	{ "MissingContentLength", 411, "You must provide the Content-Length HTTP header." },
	{ "MissingSecurityHeader", 400, "Your request is missing a required header." },
	{ "NoSuchBucket", 404, "The specified bucket does not exist" },
	{ "NoSuchBucketPolicy", 404, "The bucket policy does not exist" },
	{ "NoSuchCORSConfiguration", 404, "The CORS configuration does not exist" },
	{ "NoSuchKey", 404, "The specified key does not exist." },
	{ "NoSuchLifecycleConfiguration", 404, "The lifecycle configuration does not exist" },
	{ "NoSuchTagSet", 404, "The TagSet does not exist" },
	{ "NoSuchUpload", 404,
	  "The specified upload does not exist. The upload ID may be invalid, or the upload may "
	  "have been aborted or completed." },
	{ "NoSuchVersion", 404, "The specified version does not exist." },
	{ "NoSuchWebsiteConfiguration", 404,
	  "The specified bucket does not have a website configuration" },
	{ "NotImplemented", 501,
	  "A header or query you provided implies functionality that is not implemented." },
	{ "ObjectLockConfigurationNotFoundError", 404,
	  "Object Lock configuration does not exist for this bucket" },
	{ "PreconditionFailed", 412,
	  "At least one of the pre-conditions you specified did not hold" },
	{ "RequestHeaderSectionTooLarge", 400,
	  "Your request header section exceeds the maximum allowed size." },
	{ "RequestTimeTooSkewed", 403,
	  "The difference between the request time and the current time is too large." },
	{ "ServerSideEncryptionConfigurationNotFoundError", 404,
	  "The server side encryption configuration was not found" },
	{ "ServiceUnavailable", 503, "Please reduce your request rate." },
	{ "SignatureDoesNotMatch", 403,
	  "The request signature we calculated does not match the signature you provided. Check "
	  "your key and signing method." },
	{ "SlowDown", 503, "Please reduce your request rate." },
	{ "XAmzContentSHA256Mismatch", 400,
	  "The provided 'x-amz-content-sha256' header does not match what was computed." },
	{ "InsufficientStorage", 507,
	  "The server does not have enough free disk space to store the object." },
	{ "NoSuchResource", 404, "The specified resource does not exist." },
};

static const s3d_code *s3d_code_find(const char *code)
{
	for (size_t i = 0; i < sizeof(s3d_codes) / sizeof(s3d_codes[0]); i++)
		if (strcmp(s3d_codes[i].code, code) == 0)
			return &s3d_codes[i];
	return NULL;
}

const char *s3d_sl_code(int code, unsigned *status)
{
	const char *c;
	switch (code) {
	case SL_EINVAL:
		c = "InvalidArgument";
		break;
	case SL_ENOBUCKET:
		c = "NoSuchBucket";
		break;
	case SL_ENOKEY:
		c = "NoSuchKey";
		break;
	case SL_ENOVERSION:
		c = "NoSuchVersion";
		break;
	case SL_EBUCKETEXISTS:
		c = "BucketAlreadyOwnedByYou";
		break;
	case SL_ENOTEMPTY:
		c = "BucketNotEmpty";
		break;
	case SL_EPRECOND:
		c = "PreconditionFailed";
		break;
	case SL_ENOUPLOAD:
		c = "NoSuchUpload";
		break;
	case SL_EINVALPART:
		c = "InvalidPart";
		break;
	case SL_EPARTORDER:
		c = "InvalidPartOrder";
		break;
	case SL_ETOOSMALL:
		c = "EntityTooSmall";
		break;
	case SL_ETOOLARGE:
		c = "EntityTooLarge";
		break;
	case SL_ENOSPC:
		c = "InsufficientStorage";
		break;
	case SL_ELOCKED:
		c = "ServiceUnavailable";
		break;
	case SL_EBADDIGEST:
		c = "BadDigest";
		break;
	case SL_EEXIST:
		c = "PreconditionFailed";
		break;
	case SL_ENOTSUP:
		c = "NotImplemented";
		break;
	case SL_ENOMEM:
		c = "SlowDown";
		break;
	case SL_EMAINT:
		c = "ServiceUnavailable";
		break;
	case SL_EISPREFIX:
		c = "InvalidRequest";
		break;
	default:
		c = "InternalError";
		break; /* SL_EIO, SL_ECORRUPT, SL_EINTERNAL */
	}
	if (status) {
		const s3d_code *e = s3d_code_find(c);
		*status = e ? e->status : 500;
	}
	return c;
}

void s3d_error(s3d_req *r, const char *code, unsigned status, const char *msg)
{
	const s3d_code *e = s3d_code_find(code);
	if (!status)
		status = e ? e->status : 500;
	if (!msg)
		msg = e ? e->msg : code;
	snprintf(r->errcode, sizeof(r->errcode), "%s", code);
	s3d_buf b = { 0 };
	s3d_buf_puts(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>");
	s3d_buf_elem(&b, "Code", code);
	s3d_buf_elem(&b, "Message", msg);
	if (r->bucket)
		s3d_buf_elem(&b, "BucketName", r->bucket);
	if (r->key)
		s3d_buf_elem(&b, "Key", r->key);
	/* The decoded path, as AWS shows it. */
	if (r->bucket) {
		s3d_buf_puts(&b, "<Resource>/");
		s3d_buf_xml(&b, r->bucket);
		if (r->key) {
			s3d_buf_puts(&b, "/");
			s3d_buf_xml(&b, r->key);
		}
		s3d_buf_puts(&b, "</Resource>");
	} else {
		s3d_buf_elem(&b, "Resource", "/");
	}
	if (strcmp(code, "SignatureDoesNotMatch") == 0 && r->auth.string_to_sign[0]) {
		s3d_buf_elem(&b, "AWSAccessKeyId", r->auth.access_key);
		s3d_buf_elem(&b, "StringToSign", r->auth.string_to_sign);
		s3d_buf_elem(&b, "CanonicalRequestHash", r->auth.canonical_request_hash);
	}
	s3d_buf_elem(&b, "RequestId", r->id);
	s3d_buf_elem(&b, "HostId", r->srv->owner_id);
	s3d_buf_puts(&b, "</Error>");
	s3d_respond_xml(r, status, &b);
}

void s3d_error_sl(s3d_req *r, int code, const sl_err *err)
{
	unsigned status;
	const char *c = s3d_sl_code(code, &status);
	const char *msg = NULL;
	/* Internal details stay in the log; clients get the generic message. */
	if (err && err->msg[0] && status < 500)
		msg = err->msg;
	if (code == SL_EMAINT) /* say why, so operators and clients can tell */
		msg = "The server is in maintenance mode: writes are refused, reads continue.";
	if (err && err->msg[0] && status >= 500)
		fprintf(r->srv->o.log, "s3d: %s internal: %s (%s)\n", r->id, err->msg,
			sl_code_name(code));
	s3d_error(r, c, status, msg);
}
