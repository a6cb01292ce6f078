/* crc32c.h - CRC-32C (Castagnoli), hardware-accelerated where the CPU has SSE4.2. */
#ifndef SL_COMMON_CRC32C_H
#define SL_COMMON_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continues a CRC: pass 0 to start. sl_crc32c(0, "123456789", 9) == 0xE3069283. */
uint32_t sl_crc32c(uint32_t crc, const void *buf, size_t len);

/* The same CRC from the table code alone: for tests of the fast path. */
uint32_t sl_crc32c_soft(uint32_t crc, const void *buf, size_t len);

#endif
