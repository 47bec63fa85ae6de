//! Inputs the coverage-guided fuzzer (`fuzz/fuzz_targets/identity_code.rs`) found, kept as
//! regression tests on stable.

use ikkuna_hetu::{IdentityCode, IdentityCodeError};

/// `compose` with a day or month beyond two digits formatted an eight-digit date whose check
/// arithmetic overflowed `u32` (a panic in debug builds). It is now refused as the wrong length.
#[test]
fn compose_with_out_of_range_parts_is_refused_not_a_panic() {
    // The fuzzer's input (bytes 32 b9 30 32 30 30 41): day 50, month 185, sign '0'.
    assert_eq!(
        IdentityCode::compose(50, 185, 0x3230, '0', 0x4130),
        Err(IdentityCodeError::Length)
    );
    assert_eq!(
        IdentityCode::compose(255, 255, 99, '-', u16::MAX),
        Err(IdentityCodeError::Length)
    );
    assert_eq!(
        IdentityCode::compose(1, 1, 1990, '-', 1000),
        Err(IdentityCodeError::Length)
    );
    assert!(IdentityCode::compose(15, 3, 1985, '-', 904).is_ok());
}
