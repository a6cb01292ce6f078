/*
 * hlc.h - hybrid logical clock: 48 bits of wall-clock milliseconds and 16 bits
 * of logical counter in one uint64. Strictly increasing per node, never
 * behind any timestamp it has observed, so causally later writes order later
 * on every host even when wall clocks disagree. Not thread-safe by itself:
 * the commit leader owns it.
 */
#ifndef SL_META_HLC_H
#define SL_META_HLC_H

#include <stdint.h>

typedef struct hlc_clock {
	uint64_t last;
	int64_t offset_ms; /* added to the wall clock (tests simulate skew with it) */
} hlc_clock;

#define HLC_MS(h) ((int64_t)((h) >> 16))

/* Initialises with the highest timestamp already issued or seen. The wall
 * clock offset is read from SEGLAKE_TEST_CLOCK_OFFSET_MS if set. */
void hlc_init(hlc_clock *c, uint64_t floor);
/* Issues a new timestamp for a local event, using wall ms `wall` (or the
 * real clock plus offset if wall < 0). */
uint64_t hlc_tick(hlc_clock *c, int64_t wall);
/* Absorbs a timestamp received from another node. */
void hlc_observe(hlc_clock *c, uint64_t remote);
/* Wall clock in unix ms including the test offset. */
int64_t hlc_wall_ms(const hlc_clock *c);

#endif
