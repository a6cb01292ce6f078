/* segment.c - encode/decode of segment headers and record headers (see segment.h). */
#include "store/segment.h"

#include <string.h>

#include "common/crc32c.h"

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

void seg_header_encode(const seg_header *h, uint8_t out[SEG_HEADER_SIZE])
{
	memset(out, 0, SEG_HEADER_SIZE);
	memcpy(out, SEG_MAGIC, 8);
	put32(out + 8, SEG_VERSION);
	put32(out + 12, SEG_HEADER_SIZE);
	put64(out + 16, h->id);
	put64(out + 24, (uint64_t)h->created_ms);
	memcpy(out + 32, h->node, strnlen(h->node, 16));
	put32(out + 60, sl_crc32c(0, out, 60));
}

int seg_header_decode(const uint8_t *buf, size_t len, seg_header *h)
{
	if (len < SEG_HEADER_SIZE || memcmp(buf, SEG_MAGIC, 8) != 0)
		return -1;
	if (get32(buf + 60) != sl_crc32c(0, buf, 60))
		return -1;
	if (get32(buf + 8) != SEG_VERSION || get32(buf + 12) != SEG_HEADER_SIZE)
		return -1;
	h->id = get64(buf + 16);
	h->created_ms = (int64_t)get64(buf + 24);
	memcpy(h->node, buf + 32, 16);
	h->node[16] = '\0';
	return 0;
}

void seg_rec_encode(int type, uint32_t payload_len, uint32_t payload_crc,
		    uint8_t out[SEG_REC_HEADER])
{
	memset(out, 0, SEG_REC_HEADER);
	put32(out, SEG_REC_MAGIC);
	out[4] = (uint8_t)type;
	put32(out + 8, payload_len);
	put32(out + 12, payload_crc);
	put32(out + 20, sl_crc32c(0, out, 20));
}

int seg_rec_decode(const uint8_t *buf, size_t len, seg_rec *r)
{
	if (len < SEG_REC_HEADER || get32(buf) != SEG_REC_MAGIC)
		return -1;
	if (get32(buf + 20) != sl_crc32c(0, buf, 20))
		return -1;
	r->type = buf[4];
	r->payload_len = get32(buf + 8);
	r->payload_crc = get32(buf + 12);
	if (r->type < SEG_REC_CHUNK || r->type > SEG_REC_FOOTER)
		return -1;
	if (r->payload_len > SEG_MAX_PAYLOAD)
		return -1;
	if (r->type == SEG_REC_CHUNK && r->payload_len < 32)
		return -1;
	return 0;
}

int seg_rec_verify(const seg_rec *r, const uint8_t *payload)
{
	return sl_crc32c(0, payload, r->payload_len) == r->payload_crc ? 0 : -1;
}
