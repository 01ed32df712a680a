//! The source of fresh ids and secret randomness.

#[cfg(feature = "testing")]
use std::sync::{Arc, Mutex};

use rand::RngCore;
#[cfg(feature = "testing")]
use rand::SeedableRng;
use rand::rand_core::block::{BlockRng, BlockRngCore};
#[cfg(feature = "testing")]
use rand::rngs::StdRng;

/// Random bytes for ids and secrets. Must be a CSPRNG in production ([`OsRandom`]).
pub trait RandomSource: Send + Sync {
    /// Fills `dest` with random bytes.
    fn fill_bytes(&self, dest: &mut [u8]);

    /// A fresh aggregate id: a random UUID in simple (32 hex digits) form.
    fn new_id(&self) -> String {
        let mut bytes = [0u8; 16];
        self.fill_bytes(&mut bytes);
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .simple()
            .to_string()
    }
}

super::forward_port!(RandomSource {
    fn fill_bytes(&self, dest: &mut [u8]);
});

/// A [`RandomSource`] over one seeded generator (a keyed command's derived randomness, drawn
/// again).
pub(crate) struct RngSource<G>(pub(crate) std::sync::Mutex<G>);

impl<G: RngCore + Send> RandomSource for RngSource<G> {
    fn fill_bytes(&self, dest: &mut [u8]) {
        self.0
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .fill_bytes(dest);
    }
}

/// Operating-system-seeded CSPRNG (rand's thread RNG).
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill_bytes(&self, dest: &mut [u8]) {
        rand::rng().fill_bytes(dest);
    }
}

/// A deterministic source from a seed (tests only: never in production; feature `testing`).
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
#[derive(Debug, Clone)]
pub struct SeededRandom {
    rng: Arc<Mutex<StdRng>>,
}

#[cfg(feature = "testing")]
impl SeededRandom {
    /// A source that always yields the same sequence for `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Arc::new(Mutex::new(StdRng::seed_from_u64(seed))),
        }
    }
}

#[cfg(feature = "testing")]
impl RandomSource for SeededRandom {
    fn fill_bytes(&self, dest: &mut [u8]) {
        self.rng
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .fill_bytes(dest);
    }
}

/// Lets a [`RandomSource`] drive rand's samplers, a block of 64 bytes per call to the source:
/// a sampler draws a few bytes per symbol, and each call to a source may cost a thread-local
/// lookup or a lock.
pub(crate) fn source_rng<R: RandomSource + ?Sized>(source: &R) -> BlockRng<SourceBlocks<'_, R>> {
    BlockRng::new(SourceBlocks(source))
}

/// Blocks of random words from a [`RandomSource`] (see [`source_rng`]).
pub(crate) struct SourceBlocks<'a, R: RandomSource + ?Sized>(&'a R);

impl<R: RandomSource + ?Sized> BlockRngCore for SourceBlocks<'_, R> {
    type Item = u32;
    type Results = [u32; 16];

    fn generate(&mut self, results: &mut Self::Results) {
        let mut bytes = [0u8; 64];
        self.0.fill_bytes(&mut bytes);
        for (word, chunk) in results.iter_mut().zip(bytes.chunks_exact(4)) {
            *word = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
    }
}
