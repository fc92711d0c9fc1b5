// A fixed-size log-linear latency histogram (HDR-like) in microseconds: exact
// below 128 µs, then 64 sub-buckets per power of two (< 0.8% error at the
// bucket midpoint). Constant memory whatever the number of samples, so it does
// not move the RSS it sits next to.

const HALF = 64
const SIZE = HALF * 42

function indexOf(us) {
  const msb = 31 - Math.clz32(us)
  const shift = msb < 7 ? 0 : msb - 6
  return Math.min(SIZE - 1, shift * HALF + (us >>> shift))
}

/** Midpoint (µs) of bucket i. */
function midpoint(i) {
  if (i < 2 * HALF) return i
  const shift = Math.floor(i / HALF) - 1
  const top = i - shift * HALF
  return top * 2 ** shift + (2 ** shift - 1) / 2
}

export class Histogram {
  counts = new Float64Array(SIZE)
  total = 0
  sum = 0
  max = 0

  /** Records one latency in milliseconds. */
  record(ms) {
    const us = Math.min(2 ** 31 - 1, Math.max(0, Math.round(ms * 1000)))
    this.total++
    this.sum += ms
    if (ms > this.max) this.max = ms
    this.counts[indexOf(us)]++
  }

  /** Records a latency given in microseconds, `count` times. */
  recordMicros(us, count = 1) {
    const ms = us / 1000
    this.total += count
    this.sum += ms * count
    if (ms > this.max) this.max = ms
    this.counts[indexOf(Math.min(2 ** 31 - 1, Math.max(0, Math.round(us))))] += count
  }

  /** Latency (ms) at quantile q (0..1). */
  quantile(q) {
    if (this.total === 0) return null
    const rank = Math.max(1, Math.ceil(q * this.total))
    let seen = 0
    for (let i = 0; i < SIZE; i++) {
      seen += this.counts[i]
      if (seen >= rank) return Math.min(this.max, midpoint(i) / 1000)
    }
    return this.max
  }

  mean() {
    return this.total ? this.sum / this.total : null
  }
}
