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
	int64_t offset_ms;    /* added to the wall clock (tests simulate skew with it) */
	int64_t max_drift_ms; /* remote timestamps further ahead of our clock are refused */
} hlc_clock;

#define HLC_MS(h) ((int64_t)((h) >> 16))

/* Initialises with the highest timestamp already issued or seen. The wall
 * clock offset is read from SEGLAKE_TEST_CLOCK_OFFSET_MS if set, the allowed
 * drift of remote clocks from SEGLAKE_MAX_CLOCK_DRIFT_MS (default 1 hour). */
void hlc_init(hlc_clock *c, uint64_t floor);
/* Issues a new timestamp for a local event, using wall ms `wall` (or the
 * real clock plus offset if wall < 0). */
uint64_t hlc_tick(hlc_clock *c, int64_t wall);
/* Absorbs a timestamp received from another node: 0, or -1 (and nothing
 * absorbed) if it lies more than max_drift_ms ahead of our wall clock, so
 * one host with a wrong clock cannot drag every other host into the future. */
int hlc_observe(hlc_clock *c, uint64_t remote);
/* Absorbs a timestamp this node already accepted once (journal replay). */
void hlc_observe_trusted(hlc_clock *c, uint64_t remote);
/* Wall clock in unix ms including the test offset. */
int64_t hlc_wall_ms(const hlc_clock *c);

#endif
