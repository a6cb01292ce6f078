/* hex.c - hex encoding and decoding (see hex.h). */
#include "common/hex.h"

#include <string.h>

void sl_hex(const uint8_t *in, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[in[i] >> 4];
		out[2 * i + 1] = d[in[i] & 15];
	}
	out[2 * n] = '\0';
}

int sl_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int sl_unhex_n(const char *in, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int hi = sl_hexval((unsigned char)in[2 * i]);
		int lo = hi < 0 ? -1 : sl_hexval((unsigned char)in[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int sl_unhex(const char *in, uint8_t *out, size_t n)
{
	return strlen(in) == 2 * n ? sl_unhex_n(in, out, n) : -1;
}
