/* hex.h - lowercase hex encoding and decoding of byte strings. */
#ifndef SL_COMMON_HEX_H
#define SL_COMMON_HEX_H

#include <stddef.h>
#include <stdint.h>

/* Writes 2n lowercase hex digits and a NUL to out (2n + 1 bytes). */
void sl_hex(const uint8_t *in, size_t n, char *out);
/* Value of one hex digit (either case), or -1. */
int sl_hexval(int c);
/* Decodes the first 2n characters of in (no terminator needed): 0, or -1 if
 * any is not a hex digit. */
int sl_unhex_n(const char *in, uint8_t *out, size_t n);
/* Decodes a string of exactly 2n hex digits: 0, or -1. */
int sl_unhex(const char *in, uint8_t *out, size_t n);

#endif
