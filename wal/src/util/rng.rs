//! The one seeded RNG of ringraft (SplitMix64).
//!
//! The Raft core must not use ambient randomness, and every seeded test must replay from its
//! seed on any machine and toolchain, forever. A crate's generator may change its stream between
//! versions, so ringraft keeps its own: SplitMix64 (Steele, Lea, Flood, "Fast splittable
//! pseudorandom number generators", OOPSLA 2014) is eight lines, passes BigCrush, and its whole
//! state is one `u64`, which makes a stream trivial to derive ([`Rng::fork`]). It is not
//! cryptographic and need not be: it chooses election jitter and test schedules.
//!
//! Stream guarantee: [`Rng::next_u64`] and [`Rng::below`] produce exactly the values the
//! core's and the fuzz targets' earlier copies produced from the same seed, so their seeds
//! replay as before.

/// A SplitMix64 generator: the same seed yields the same stream forever.
#[derive(Clone, Debug)]
pub struct Rng {
    /// The Weyl sequence position; each draw advances it by the golden-ratio increment.
    state: u64,
}

/// The golden-ratio increment of the Weyl sequence (2^64 / phi, made odd).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

impl Rng {
    /// A generator whose whole stream is determined by `seed` (any value, zero included).
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// An independent generator derived from this one (for a sub-component), so that adding
    /// draws in one component does not shift the stream of another.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`; `below(0)` is 0, the only offset into an empty range (the mutators
    /// cut empty inputs at 0). It still consumes one draw, so streams do not depend on `n`.
    ///
    /// A modulo, not a multiply-shift: its bias (below `n / 2^64`) is irrelevant here, and the
    /// modulo is what the earlier copies used, so their seeds replay unchanged.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `0..len` (an index into a slice of `len`; 0 when `len` is 0).
    pub fn index(&mut self, len: usize) -> usize {
        // A usize always fits in u64 on the platforms ringraft supports (64-bit Linux), and the
        // result is below `len`, so both conversions are lossless.
        self.below(len as u64) as usize
    }

    /// Uniform in the inclusive range `lo..=hi`. Panics if `lo > hi` (a programmer error).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(lo <= hi, "Rng::range({lo}, {hi}): empty range");
        // `hi - lo + 1` overflows only for the full u64 range, where every draw is in range.
        match (hi - lo).checked_add(1) {
            Some(n) => lo + self.below(n),
            None => self.next_u64(),
        }
    }

    /// True with probability `ppm / 1_000_000`.
    pub fn chance_ppm(&mut self, ppm: u64) -> bool {
        self.below(1_000_000) < ppm
    }

    /// True with probability `percent / 100`.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// A uniformly chosen element of a non-empty slice. Panics on an empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        assert!(!items.is_empty(), "Rng::pick on an empty slice");
        &items[self.index(items.len())]
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.index(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    /// The reference SplitMix64 stream for seed 1234567 (Vigna's splitmix64.c), so that a
    /// change to the generator, which would break every recorded seed, cannot pass unnoticed.
    #[test]
    fn matches_the_reference_stream() {
        let mut r = Rng::new(1_234_567);
        let want = [
            6_457_827_717_110_365_317,
            3_203_168_211_198_807_973,
            9_817_491_932_198_370_423,
            4_593_380_528_125_082_431,
            16_408_922_859_458_223_821,
        ];
        for w in want {
            assert_eq!(r.next_u64(), w);
        }
    }

    #[test]
    fn same_seed_same_stream() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        let xs: Vec<u64> = (0..16).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..16).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(Rng::new(43).next_u64(), xs[0]);
    }

    #[test]
    fn below_and_range_stay_in_range_and_cover_it() {
        let mut r = Rng::new(7);
        let mut seen = [false; 5];
        for _ in 0..1000 {
            let x = r.below(5);
            assert!(x < 5);
            seen[x as usize] = true;
            let y = r.range(10, 14);
            assert!((10..=14).contains(&y), "{y} outside 10..=14");
        }
        assert!(seen.iter().all(|s| *s), "all of 0..5 drawn in 1000 tries");
        assert_eq!(r.below(0), 0);
        assert_eq!(r.range(3, 3), 3);
        let _ = r.range(0, u64::MAX);
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut r = Rng::new(9);
        let mut v: Vec<u32> = (0..50).collect();
        r.shuffle(&mut v);
        let mut sorted = v.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    }
}
