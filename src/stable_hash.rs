//! A stable 64-bit hash (FNV-1a): the same bytes give the same number in every
//! build and on every machine, unlike `std`'s randomly seeded hasher.

/// FNV-1a of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
