'use strict'

// The calls in flight, so that close() can give up on the ones that never
// settle.
//
// A plain array with a free list rather than a Set. A Set that gains and
// loses an entry per call keeps rehashing, and V8 links every obsolete hash
// table to its successor. Once one table in that chain has been promoted to
// the old generation, it keeps each later table (and through them the calls'
// promises and loaded documents) alive through every young-generation
// collection until the next full GC. Measured with 32 loads in flight: 45% of
// the young generation survived each scavenge and loads ran about 25% slower.
class InFlight {
  #rejects = []
  #free = []

  // Settles as `work` does, unless abandonAll() rejects it first.
  track(work) {
    return new Promise((resolve, reject) => {
      const slot = this.#free.length > 0 ? this.#free.pop() : this.#rejects.length
      this.#rejects[slot] = reject
      const release = () => {
        this.#rejects[slot] = undefined
        this.#free.push(slot)
      }
      work.then(
        (value) => {
          release()
          resolve(value)
        },
        (error) => {
          release()
          reject(error)
        },
      )
    })
  }

  abandonAll(error) {
    for (const reject of this.#rejects) reject?.(error)
  }
}

module.exports = { InFlight }
