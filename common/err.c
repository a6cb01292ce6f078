/* err.c - sl_err helpers: setting, naming and errno mapping of SL_E* codes. */
#include "common/err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int sl_err_set(sl_err *err, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		err->code = code;
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return code;
}

void sl_err_clear(sl_err *err)
{
	if (err) {
		err->code = 0;
		err->msg[0] = '\0';
	}
}

static const struct {
	int code;
	const char *name;
	int eno;
} codes[] = {
	{ SL_OK, "OK", 0 },
	{ SL_EINVAL, "EINVAL", EINVAL },
	{ SL_ENOBUCKET, "ENOBUCKET", ENOENT },
	{ SL_ENOKEY, "ENOKEY", ENOENT },
	{ SL_ENOVERSION, "ENOVERSION", ENOENT },
	{ SL_EBUCKETEXISTS, "EBUCKETEXISTS", EEXIST },
	{ SL_ENOTEMPTY, "ENOTEMPTY", ENOTEMPTY },
	{ SL_EPRECOND, "EPRECOND", EEXIST },
	{ SL_ENOUPLOAD, "ENOUPLOAD", ENOENT },
	{ SL_EINVALPART, "EINVALPART", EINVAL },
	{ SL_EPARTORDER, "EPARTORDER", EINVAL },
	{ SL_ETOOSMALL, "ETOOSMALL", EINVAL },
	{ SL_ETOOLARGE, "ETOOLARGE", EFBIG },
	{ SL_EIO, "EIO", EIO },
	{ SL_ENOSPC, "ENOSPC", ENOSPC },
	{ SL_ECORRUPT, "ECORRUPT", EIO },
	{ SL_ELOCKED, "ELOCKED", EBUSY },
	{ SL_EBADDIGEST, "EBADDIGEST", EINVAL },
	{ SL_EEXIST, "EEXIST", EEXIST },
	{ SL_ENOTSUP, "ENOTSUP", ENOTSUP },
	{ SL_ENOMEM, "ENOMEM", ENOMEM },
	{ SL_EMAINT, "EMAINT", EROFS },
	{ SL_EINTERNAL, "EINTERNAL", EIO },
	{ SL_EISPREFIX, "EISPREFIX", EISDIR },
};

const char *sl_code_name(int code)
{
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (codes[i].code == code)
			return codes[i].name;
	return "EUNKNOWN";
}

int sl_code_errno(int code)
{
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (codes[i].code == code)
			return codes[i].eno;
	return EIO;
}

int sl_code_from_errno(int e)
{
	switch (e) {
	case 0:
		return SL_OK;
	case ENOSPC:
	case EDQUOT:
		return SL_ENOSPC;
	case ENOMEM:
		return SL_ENOMEM;
	case EINVAL:
		return SL_EINVAL;
	case EEXIST:
		return SL_EEXIST;
	default:
		return SL_EIO;
	}
}
